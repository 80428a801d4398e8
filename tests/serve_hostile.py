"""Hostile text for the serving tests: hypothesis strategies and fixed pieces."""

from __future__ import annotations

from hypothesis import strategies as st

# lone surrogates (as JSON escapes give them, and as surrogateescape makes of a byte that is not UTF-8), NUL
# and other controls, a BOM, a line separator, an emoji (a surrogate pair in UTF-16) and a long run
HOSTILE = ["\ud800", "\udbff", "\udfff", "\udcff", "\x00", "\x01\x1f\x7f", "\ufeff", "\u2028", "\U0001F600",
           "x" * 300]


def hostile_text(long: int = 300):
    """Texts mixing ordinary words, any code point (surrogates included), the pieces above and a run of
    ``long`` characters."""
    piece = st.one_of(st.sampled_from(["good", "bad film", " ", "", "a" * long] + HOSTILE),
                      st.text(st.characters(exclude_categories=()), max_size=8))
    return st.lists(piece, max_size=5).map("".join)


def valid_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
