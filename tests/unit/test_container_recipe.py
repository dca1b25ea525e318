"""The container recipe stays true to the project: the Dockerfile installs exactly as the
Makefile does, and compose.yaml gives the bot only settings that .env.example documents."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _makefile_install_commands() -> list[str]:
    """The Makefile's install recipe lines that create the venv and run pip, variables expanded."""
    text = (ROOT / "Makefile").read_text()
    variables = dict(re.findall(r"^(\w+) \??:?= ?(.+)$", text, flags=re.M))
    recipe = text.split("$(STAMP): pyproject.toml", 1)[1].split("\n\n", 1)[0]
    commands = []
    for line in recipe.splitlines()[1:]:
        command = line.strip()
        for _ in range(3):  # PY is defined through VENV
            command = re.sub(r"\$\((\w+)\)", lambda m: variables.get(m.group(1), m.group(0)), command)
        if " -m venv " in command or "pip install" in command:
            commands.append(command)
    return commands


def _dockerfile_run_commands() -> list[str]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    commands = []
    for line in text.splitlines():
        if line.startswith("RUN "):
            commands.extend(part.strip() for part in line[4:].split("&&"))
    return [" ".join(c.split()) for c in commands]


def test_dockerfile_installs_with_the_makefiles_commands() -> None:
    """Every venv and pip command of `make install` is a RUN step of the Dockerfile, word for word."""
    make = _makefile_install_commands()
    docker = _dockerfile_run_commands()

    assert any("pip install" in c and ".[dev]" in c for c in make)
    assert [c for c in make if c not in docker] == []


def test_dockerfile_runs_the_bot_as_a_user_with_the_data_volume() -> None:
    text = (ROOT / "Dockerfile").read_text()

    assert re.search(r"^FROM python:3\.\d+-slim$", text, flags=re.M)
    assert re.search(r"^USER (?!root)\w+$", text, flags=re.M)
    assert 'VOLUME ["/app/data"]' in text
    assert 'CMD [".venv/bin/python", "-m", "bot"]' in text
    # The owner's secrets and local virtualenv never go into the image.
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".env", ".venv", "data"} <= set(ignored)


def test_compose_names_only_settings_the_env_example_documents() -> None:
    """The bot service's environment names only variables of .env.example, and it has the
    database and Redis beside it."""
    compose = (ROOT / "compose.yaml").read_text()
    example = (ROOT / ".env.example").read_text()
    documented = {line.split("=", 1)[0] for line in example.splitlines() if line and not line.startswith("#")}
    bot = compose.split("\n  bot:\n", 1)[1]
    bot = re.split(r"\n  \w[\w-]*:\n", bot, maxsplit=1)[0]
    lines = bot.split("    environment:\n", 1)[1].splitlines()
    environment = list(itertools.takewhile(lambda line: line.startswith(" " * 6), lines))
    names = [line.strip().split(":", 1)[0] for line in environment]
    names += re.findall(r"\$\{(\w+)", compose)

    assert {"DATABASE_URL", "METRICS_LISTEN"} <= set(names)
    assert set(names) - documented == set()
    assert "\n  postgres:\n" in compose and "\n  redis:\n" in compose
