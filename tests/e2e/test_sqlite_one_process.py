"""SQLite serves one bot process: a second one on the same file is refused with a clear message,
while the owner's command line still works beside the running bot."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.processes import BotProcess, process_env
from tests.e2e.test_console import run_bot
from tests.fakes.minitoolai import FakeMiniToolAI


async def test_a_second_process_on_the_same_sqlite_file_is_refused(tmp_path: Path) -> None:
    async with FakeMiniToolAI() as ai:
        env = process_env(
            f"sqlite:///{tmp_path / 'bot.sqlite3'}",
            MINITOOLAI_API_KEY=ai.api_key,
            MINITOOLAI_BASE_URL=ai.base_url,
        )
        first = await BotProcess.start("first", tmp_path, env)
        try:
            await first.wait_for_line(r"bot: starting console")

            code, out, err = await run_bot(tmp_path, env, "")
            admin_code, admin_out, admin_err = await run_bot(
                tmp_path, env, "", "credits", "grant", "telegram:42", "$1"
            )

            assert 0 == await first.stop()
        finally:
            await first.close()

    assert 1 == code
    assert "Another bot process (pid" in err
    assert "use PostgreSQL" in err
    assert "Traceback" not in err + out
    assert 0 == admin_code, admin_err
    assert "1.25" in admin_out  # the CLI is not a bot process: it works beside the running bot
