"""Bring the catalogs in step with the code: ``python -m bot.i18n.extract``.

Collects every ``_()``, ``n_()``, ``N_()`` and ``C_()`` sentence of ``bot/`` and ``adapters/`` with Babel,
adds the new ones to each language's ``messages.po`` (empty, to translate), keeps the translations
of the others and drops the entries the code no longer has. The tests fail until every entry is
translated with the same placeholders.
"""

from __future__ import annotations

import sys
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po, write_po

from bot.i18n.catalog import LANGUAGES, LOCALES

KEYWORDS = {"_": None, "n_": (1, 2), "N_": None, "C_": ((1, "c"), 2)}
ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("bot", "adapters")


def template() -> Catalog:
    """Every sentence of the code, as a catalog without translations."""
    catalog = Catalog(project="MiniToolAI Bot", charset="utf-8")
    for source in SOURCES:
        for filename, line, message, comments, context in extract_from_dir(
            ROOT / source, method_map=[("**.py", "python")], keywords=KEYWORDS, comment_tags=("i18n:",)
        ):
            catalog.add(
                message, locations=[(f"{source}/{filename}", line)], auto_comments=comments, context=context
            )
    return catalog


def po_path(language: str) -> Path:
    return LOCALES / language / "LC_MESSAGES" / "messages.po"


def update(language: str, pot: Catalog) -> int:
    """Merge the template into one language's catalog; returns how many entries lack a translation."""
    path = po_path(language)
    if path.is_file():
        with path.open("rb") as file:
            catalog = read_po(file, locale=language)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        catalog = Catalog(locale=language, project="MiniToolAI Bot", charset="utf-8")
    catalog.update(pot, no_fuzzy_matching=True)
    catalog.obsolete.clear()
    with path.open("wb") as file:
        write_po(file, catalog, width=0, omit_header=False, sort_output=False, include_previous=False)
    return sum(
        1 for m in catalog if m.id and not (all(m.string) if isinstance(m.string, tuple) else m.string)
    )


def main() -> int:
    pot = template()
    for language in LANGUAGES:
        if language == "en":
            continue
        missing = update(language, pot)
        print(f"{language}: {len(pot)} messages, {missing} to translate")  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main())
