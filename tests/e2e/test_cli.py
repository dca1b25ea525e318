"""The owner's command line: --help, db migrate / backup, and credits administration."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tests.e2e.test_console import bot_env, run_bot


async def test_help_describes_commands_and_every_setting(tmp_path: Path) -> None:
    """--help names the subcommands and every setting variable the code reads."""
    from bot.settings import Settings

    code, out, _ = await run_bot(tmp_path, bot_env(tmp_path), "", "--help")

    assert 0 == code
    for word in ("db", "credits", "migrate", "backup"):
        assert word in out
    for name in Settings.model_fields:
        assert name.upper() in out


def test_env_example_documents_every_setting() -> None:
    """.env.example has a line for every setting, and no setting the code does not read."""
    from bot.settings import Settings

    example = (Path(__file__).resolve().parents[2] / ".env.example").read_text()
    documented = {line.split("=", 1)[0] for line in example.splitlines() if line and not line.startswith("#")}

    assert {name.upper() for name in Settings.model_fields} == documented


async def test_db_migrate_then_backup_gives_a_consistent_copy(tmp_path: Path) -> None:
    """db migrate creates the schema; db backup copies it into a file SQLite opens with the data."""
    env = bot_env(tmp_path)
    code, out, err = await run_bot(tmp_path, env, "", "db", "migrate")
    assert 0 == code, err
    assert "Schema version" in out
    code, _, err = await run_bot(tmp_path, env, "", "credits", "grant", "telegram:42", "$2")
    assert 0 == code, err

    code, out, err = await run_bot(tmp_path, env, "", "db", "backup", str(tmp_path / "copy.sqlite3"))

    assert 0 == code, err
    with sqlite3.connect(tmp_path / "copy.sqlite3") as copy:
        balance = copy.execute("SELECT balance FROM accounts WHERE holder = '42'").fetchone()
    assert (2_250_000,) == balance  # the $0.25 starting grant plus $2


async def test_credits_commands_grant_take_and_show(tmp_path: Path) -> None:
    """The owner grants and takes from the command line; show reports the result exactly."""
    env = bot_env(tmp_path, STARTING_GRANT_USD="0")
    assert 0 == (await run_bot(tmp_path, env, "", "credits", "grant", "discord:7", "5"))[0]
    code, out, err = await run_bot(tmp_path, env, "", "credits", "take", "discord:7", "$1.50")
    assert 0 == code, err

    code, out, err = await run_bot(tmp_path, env, "", "credits", "show", "discord:7")

    assert 0 == code, err
    assert "$3.50" in out


async def test_credits_command_with_a_bad_user_explains_the_format(tmp_path: Path) -> None:
    """A user id without a platform gets one clear line and exit code 2, no traceback."""
    code, _, err = await run_bot(tmp_path, bot_env(tmp_path), "", "credits", "grant", "12345", "5")

    assert 2 == code
    assert "platform:id" in err
    assert "Traceback" not in err


async def test_credits_limits_shows_spending_and_grants_against_the_limits(tmp_path: Path) -> None:
    """credits limits reports the day's and month's spending with their limits and the day's grants."""
    env = bot_env(tmp_path, SPENDING_LIMIT_DAILY_USD="5", NEW_USER_GRANTS_PER_DAY="3")
    assert 0 == (await run_bot(tmp_path, env, "", "credits", "grant", "telegram:1", "1"))[0]  # opens one

    code, out, err = await run_bot(tmp_path, env, "", "credits", "limits")

    assert 0 == code, err
    assert "Spent today (UTC): $0.00 (limit $5.00)" in out
    assert "Spent this month (UTC): $0.00 (no limit)" in out
    assert "Starting grants today: 1 of 3" in out


async def test_access_commands_allow_block_unblock_and_list(tmp_path: Path) -> None:
    """python -m bot access: rules are stored and listed; a subject without a platform is explained."""
    env = bot_env(tmp_path, ALLOWED_USERS="telegram:1", BLOCKED_CHATS="discord:5")
    steps = [
        ("block", "user", "telegram:42"),
        ("allow", "chat", "telegram:-1001234"),
        ("unblock", "chat", "discord:5"),
        ("allow", "role", "discord:77"),
    ]
    said = []
    for step in steps:
        code, out, err = await run_bot(tmp_path, env, "", "access", *step)
        assert 0 == code, err
        said.append(out.strip())
    code, listed, err = await run_bot(tmp_path, env, "", "access", "list")
    assert 0 == code, err
    bad, _, bad_err = await run_bot(tmp_path, env, "", "access", "block", "user", "42")

    assert said[0].startswith("User telegram:42 is blocked now.")
    assert said[1].startswith("Chat telegram:-1001234 is allowed now.")
    assert said[2].startswith("Chat discord:5 is neither allowed nor blocked now.")
    assert "Allowed users: telegram:1" in listed
    assert "Allowed chats: telegram:-1001234" in listed
    assert "Allowed roles: discord:77" in listed
    assert "Blocked users: telegram:42" in listed
    assert "Blocked chats: none" in listed
    assert 2 == bad
    assert "platform:id" in bad_err
