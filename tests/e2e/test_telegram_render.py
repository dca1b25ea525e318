"""Markdown to Telegram HTML (adapters.telegram.render), checked with the fake's own HTML parser.

Pure functions, no server: kept beside the Telegram e2e tests because the fake's parser is the
judge. Every prefix of an answer (what a streaming edit shows) must parse, and its visible text
must be no longer than the markdown it came from (so the 4096 limit on the source suffices).
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from adapters.telegram.render import to_html, visible_length, visible_text
from tests.fakes.telegram_text import parse_html

PIECES = st.sampled_from(
    ["**", "*", "_", "__", "~~", "`", "```", "```python\n", "\n", "\n\n", "# ", "- ", "> ", "<", ">", "&",
     "[a](https://x.y/?q=1&r=2)", "[", "](", "word", " ", "é", "😀", "&amp;", "<b>", "\x00", "|"]
)  # fmt: skip


@given(st.lists(PIECES, max_size=40))
def test_every_prefix_renders_to_html_telegram_accepts(pieces: list[str]) -> None:
    """Whatever the model writes, each partial text renders to balanced, escaped HTML."""
    text = "".join(pieces)
    for end in range(len(text) + 1):
        rendered = to_html(text[:end])
        parsed = parse_html(rendered)  # raises EntityParseError on anything Telegram refuses
        assert parsed.text.strip() == visible_text(rendered).strip()
        assert visible_length(rendered) <= len(text[:end].encode("utf-16-le")) // 2


def test_common_markdown_becomes_the_matching_entities() -> None:
    """Bold, italic, strike, inline code, links, headings and a fenced block with its language."""
    markdown = (
        "# Title\n**bold** *it* ~~gone~~ `a<b` [site](https://example.com)\n"
        "- item\n> quoted\n```js\nlet x = 1 && 2;\n```\nsnake_case stays"
    )
    parsed = parse_html(to_html(markdown))
    kinds = [e["type"] for e in parsed.entities]
    assert ["bold", "bold", "italic", "strikethrough", "code", "text_link", "blockquote", "pre"] == kinds
    assert "js" == parsed.entities[-1]["language"]
    assert "let x = 1 && 2;" in parsed.text
    assert "• item" in parsed.text
    assert "snake_case stays" in parsed.text
