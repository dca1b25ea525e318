"""The catalogs: every sentence of the code is translated in every language, with the same
placeholders, and no user-facing sentence is left outside the catalog."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog, Message
from babel.messages.pofile import read_po

from bot.i18n.catalog import LANGUAGES, placeholders, translate_in
from bot.i18n.extract import ROOT, po_path, template

TRANSLATED = [language for language in LANGUAGES if language != "en"]


@pytest.fixture(scope="module")
def pot() -> Catalog:
    return template()


def _catalog(language: str) -> Catalog:
    with po_path(language).open("rb") as file:
        return read_po(file, locale=language)


def _english_placeholders(message: Message) -> frozenset[str]:
    ids = message.id if isinstance(message.id, tuple) else (message.id,)
    return frozenset().union(*(placeholders(i) for i in ids))


def test_the_code_has_a_catalog_worth_the_name(pot: Catalog) -> None:
    assert len(pot) > 300


@pytest.mark.parametrize("language", TRANSLATED)
def test_every_sentence_is_translated_with_the_same_placeholders(pot: Catalog, language: str) -> None:
    catalog = _catalog(language)
    problems = []
    for message in pot:
        if not message.id:
            continue
        found = catalog.get(message.id, message.context)
        if found is None:
            problems.append(f"missing: {message.id!r}")
            continue
        forms = found.string if isinstance(found.string, tuple) else (found.string,)
        if found.fuzzy or not all(forms):
            problems.append(f"untranslated or fuzzy: {message.id!r}")
            continue
        wanted = _english_placeholders(message)
        for form in forms:
            if placeholders(form) != wanted:
                problems.append(f"placeholders {sorted(placeholders(form))} != {sorted(wanted)}: {form!r}")
            try:
                form.format(**dict.fromkeys(wanted, "x"))
            except (KeyError, IndexError, ValueError) as exc:
                problems.append(f"does not format ({exc}): {form!r}")
    assert [] == problems


@pytest.mark.parametrize("language", TRANSLATED)
def test_no_entry_outlives_its_sentence(pot: Catalog, language: str) -> None:
    """``python -m bot.i18n.extract`` drops them; a stale entry means it was not run."""
    known = {(m.id, m.context) for m in pot if m.id}
    assert [] == [m.id for m in _catalog(language) if m.id and (m.id, m.context) not in known]


@pytest.mark.parametrize("language", TRANSLATED)
def test_plural_forms_are_the_languages_own(language: str) -> None:
    catalog = _catalog(language)
    for message in catalog:
        if isinstance(message.id, tuple):
            assert catalog.num_plurals == len(message.string)


# ---------------------------------------------------------------- sentences left inline

# Files whose sentences are English on purpose: the owner's terminal and logs, not members.
OWNER_FACING = {
    "bot/__main__.py",  # the command line (python -m bot ...), its --help and its errors
    "bot/settings.py",  # configuration errors, read by the owner at start
    "bot/i18n/extract.py",
    "bot/credits/limits.py",  # the owners' spending alerts (BOT_ADMIN_IDS)
    "bot/maintenance.py",
    "bot/logs.py",
    "bot/minitoolai/client.py",  # exception texts for the log; members see the error classes' sentences
    "bot/minitoolai/sse.py",
    "bot/minitoolai/prices.py",
    "bot/ops/metrics.py",  # Prometheus help texts
    "bot/ops/health.py",  # `python -m bot status`
    "adapters/discord/adapter.py",  # start-up errors and warnings
    "adapters/telegram/adapter.py",
    "adapters/telegram/transport.py",
    "adapters/telegram/health.py",
}
# Sentences English on purpose (the owner's), inside files otherwise translated: (file, beginning).
ALLOWED = {
    ("bot/credits/service.py", "Spent {}: {} ({})"),  # `python -m bot credits limits`, the owner's terminal
    # Telegram Stars refunds and reports: the owner's /refund and `python -m bot credits purchases|refund`
    ("bot/payments/texts.py", "Refunded {}"),
    ("bot/payments/texts.py", "Payment {} was already refunded"),
    ("bot/payments/texts.py", "Not refunded:"),
    ("bot/payments/texts.py", "No Telegram Stars payments yet."),
    ("bot/payments/texts.py", "Telegram Stars payments (member:"),
    ("bot/payments/service.py", "Only the bot's owner can refund payments."),
    ("bot/payments/service.py", "There is no payment {}"),
    ("bot/payments/service.py", "Telegram refused the refund:"),
    ("bot/payments/service.py", "The refund of {}"),
    ("adapters/telegram/payments.py", "Use /refund <user id>"),
}
NOT_SAID = {
    "logger",
    "logging",
    "log_error",
    "RuntimeError",
    "ValueError",
    "TypeError",
    "AssertionError",
    "ConfigError",
    "PlatformUnavailable",
    "StorageError",
    "KeyError",
}
SENTENCE = re.compile(r"^[A-Z“«][^\n]*\s\S+\s\S+.*[.!?…:)]\s*$|[a-z]{2,}[.!?] [A-Z]", re.S)


def _said(node: ast.Call) -> bool:
    """Whether a call's text may reach a member (not a log line, not an internal error)."""
    func = node.func
    names = []
    while isinstance(func, ast.Attribute):
        names.append(func.attr)
        func = func.value
    if isinstance(func, ast.Name):
        names.append(func.id)
    return not NOT_SAID.intersection(names) and not {"_", "n_", "N_"}.intersection(names[:1])


def _inline_sentences(path: Path, name: str = "") -> list[str]:
    name = name or str(path.relative_to(ROOT))
    tree = ast.parse(path.read_text())
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and not _said(node):
            skip.update(id(n) for n in ast.walk(node))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Module) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                skip.add(id(first.value))  # a docstring
    found = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.JoinedStr):
            text = "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)
            skip.update(id(v) for v in node.values)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            text = node.value
        else:
            continue
        allowed = any(name == file and text.startswith(start) for file, start in ALLOWED)
        if SENTENCE.search(text.strip()) and not allowed:
            found.append(f"{name}:{node.lineno}: {text[:80]!r}")
    return found


def test_no_user_facing_sentence_is_left_outside_the_catalog() -> None:
    found = []
    for source in ("bot", "adapters"):
        for path in sorted((ROOT / source).rglob("*.py")):
            relative = str(path.relative_to(ROOT))
            if relative not in OWNER_FACING:
                found += _inline_sentences(path)
    assert [] == found


def test_the_allow_lists_name_real_files() -> None:
    assert [] == [name for name in OWNER_FACING if not (ROOT / name).is_file()]


def test_the_scan_finds_a_sentence_left_inline_and_passes_a_catalogued_one(tmp_path: Path) -> None:
    source = tmp_path / "sample.py"
    source.write_text(
        '"""A docstring. It is not said."""\n'
        "def f(name):\n"
        '    logger.info("Logged lines are not said either.")\n'
        '    ok = _("This one is in the catalog, {name}.", name=name)\n'
        '    return ok + f"But this one is inline, {name}."\n'
    )
    assert ["sample.py:5: 'But this one is inline, {}.'"] == _inline_sentences(source, "sample.py")


# Discord's rule for a name (and its localizations): lowercase letters, digits, - and _, 1 to 32.
DISCORD_NAME = re.compile(r"^[-_\w]{1,32}$")


@pytest.mark.parametrize("language", TRANSLATED)
def test_option_names_are_valid_discord_names(language: str) -> None:
    from adapters.discord.language import OPTION, OPTION_NAMES

    names = [translate_in(language, OPTION, name) for name in OPTION_NAMES]
    assert [] == [n for n in names if not DISCORD_NAME.match(n) or n != n.lower()]


@pytest.mark.parametrize("language", TRANSLATED)
def test_command_names_are_valid_discord_names_and_unique(language: str) -> None:
    from adapters.discord.language import COMMAND, COMMAND_NAMES

    names = [translate_in(language, COMMAND, name) for name in COMMAND_NAMES]
    assert [] == [n for n in names if not DISCORD_NAME.match(n) or n != n.lower()]
    assert len(names) == len(set(names))


def test_the_help_names_the_commands_as_the_members_discord_client_does() -> None:
    from adapters.discord.language import local_commands

    text = "/chat <question> · /credits, /usage: yours (see /prices) · /pool fund|cap · a/b /nothere"
    assert "/sor <question> · /kredi, /kullanım: yours (see /fiyatlar) · /havuz fund|cap · a/b /nothere" == (
        local_commands(text, "tr")
    )
    assert local_commands(text, "nb").startswith("/spør <question> · /kreditt, /bruk: yours (see /priser)")
    assert text == local_commands(text, "en")
