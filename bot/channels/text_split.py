"""Plain-text helpers for messaging platforms that count, escape and reject text their own way.

Pure functions with no platform imports. Telegram is the first user:

- it counts a message's length in UTF-16 code units (an emoji outside the BMP counts 2) and
  refuses text longer than 4,096 units *after entity parsing*: split the plain text first,
  then escape each part (`&` becoming `&amp;` does not count against the limit);
- its HTML parse mode needs `&`, `<` and `>` escaped;
- some control characters make it reject the message.
"""

from __future__ import annotations

import html
import re
import unicodedata

TELEGRAM_TEXT_LIMIT = 4096
"""Longest message text Telegram accepts, in UTF-16 code units."""

# Where a part may end, best first. The paragraph and line breaks cut *before* the break; the
# sentence end cuts *after* the punctuation (and any closing quotes or brackets).
_PARAGRAPH = re.compile(r"\n[^\S\n]*\n")
_LINE = re.compile(r"\n")
_SENTENCE = re.compile(
    r"[.!?…]+[\"'”’»)\]]*(?=\s)"  # Latin-style: punctuation, then whitespace
    r"|[。！？]+[」』”’）]*"  # CJK: no space follows a full stop
)
# Whitespace that may break a line; no-break spaces are there precisely to prevent that.
_BREAKABLE_SPACE = re.compile(r"(?![\u00a0\u2007\u202f])\s")

_ZWJ = "\u200d"


def utf16_len(text: str) -> int:
    """Length of `text` in UTF-16 code units, the way Telegram counts message length."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def split_message(text: str, limit: int = TELEGRAM_TEXT_LIMIT) -> list[str]:
    """Split `text` into parts of at most `limit` UTF-16 units, cutting where a reader would.

    Each cut is the best one available inside the allowed window, in this order:

    1. a paragraph break (blank line), 2. a line break, 3. a sentence end (`.`, `!`, `?`, `…`
    followed by whitespace, or a CJK full stop) -- these three only in the second half of the
    window, so parts do not come out tiny -- then 4. the last breakable whitespace anywhere, and
    finally 5. a hard cut, which never falls inside a code point (so never inside a UTF-16
    surrogate pair) and backs off so as not to separate a base character from its combining
    marks, variation selectors, skin tones, zero-width joiners or the other half of a flag.

    Parts are stripped of surrounding whitespace and never empty, so the non-whitespace
    characters of the parts, in order, are exactly those of `text`. Text that fits is returned
    as one (stripped) part; empty or whitespace-only text gives `[]`.
    """
    if limit < 2:
        raise ValueError(f"limit must be at least 2 UTF-16 units (one emoji), got {limit}")
    parts: list[str] = []
    rest = text.strip()
    while rest:
        if utf16_len(rest) <= limit:
            parts.append(rest)
            break
        cut = _best_cut(rest, _fitting_prefix(rest, limit))
        parts.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip()
    return parts


def escape_html(text: str, *, quote: bool = False) -> str:
    """Escape `&`, `<` and `>` for Telegram's HTML parse mode.

    Quotes need no escaping in message text. Inside an attribute value (`<a href="...">`) pass
    `quote=True` so `"` and `'` are escaped too.
    """
    return html.escape(text, quote=quote)


# Cc characters (C0, DEL, C1) except tab and line feed; carriage returns are turned into line
# feeds before this table is applied.
_CONTROL_CHARS = {
    code: None for code in [*range(0x00, 0x20), *range(0x7F, 0xA0)] if chr(code) not in "\t\n"
}
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def clean_for_telegram(text: str) -> str:
    """Remove the characters Telegram rejects or that would break sending.

    - `\\r\\n` and a lone `\\r` become `\\n`;
    - NUL and every other control character (C0, DEL, C1) except `\\n` and `\\t` is removed;
    - a lone surrogate (left by a bad decode) becomes U+FFFD, since it cannot be UTF-8 encoded.

    Format characters such as zero-width spaces and joiners and RTL/LTR marks are kept: they
    are part of the text's meaning.
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n").translate(_CONTROL_CHARS)
    return _LONE_SURROGATE.sub("\ufffd", text)


def _fitting_prefix(text: str, limit: int) -> int:
    """The largest `n` such that `text[:n]` is at most `limit` UTF-16 units long."""
    units = 0
    for i, char in enumerate(text):
        units += 2 if ord(char) > 0xFFFF else 1
        if units > limit:
            return i
    return len(text)


def _best_cut(text: str, end: int) -> int:
    """Where to end the part that may use `text[:end]`; always in `1..end`."""
    # One more character, so the sentence look-ahead sees the whitespace after the window and
    # a break character sitting just past the window still counts (the part stops before it).
    head = text[: end + 1]
    shortest = max(1, end // 2)
    for pattern, at_end in ((_PARAGRAPH, False), (_LINE, False), (_SENTENCE, True)):
        cuts = [m.end() if at_end else m.start() for m in pattern.finditer(head)]
        good = [c for c in cuts if shortest <= c <= end]
        if good:
            return good[-1]
    spaces = [m.start() for m in _BREAKABLE_SPACE.finditer(head) if 0 < m.start() <= end]
    if spaces:
        return spaces[-1]
    return _hard_cut(text, end)


def _hard_cut(text: str, end: int) -> int:
    """Back `end` off so it does not split a grapheme cluster, if the cluster allows it."""
    cut = end
    while cut > 0 and _joins(text, cut):
        cut -= 1
    return cut if cut > 0 else end


def _joins(text: str, i: int) -> bool:
    """Whether cutting between `text[i - 1]` and `text[i]` would split a grapheme cluster."""
    before, after = text[i - 1], text[i]
    if before == _ZWJ or _extends(after):
        return True
    if _regional_indicator(before) and _regional_indicator(after):
        run = 0  # regional indicators pair up from the start of their run
        while i - run - 1 >= 0 and _regional_indicator(text[i - run - 1]):
            run += 1
        return run % 2 == 1
    return False


def _extends(char: str) -> bool:
    """Characters that attach to the one before them."""
    code = ord(char)
    return (
        unicodedata.category(char) in ("Mn", "Mc", "Me")
        or char == _ZWJ
        or 0xFE00 <= code <= 0xFE0F  # variation selectors
        or 0xE0100 <= code <= 0xE01EF  # variation selectors supplement
        or 0x1F3FB <= code <= 0x1F3FF  # emoji skin-tone modifiers
        or 0xE0020 <= code <= 0xE007F  # tag characters (subdivision flags)
    )


def _regional_indicator(char: str) -> bool:
    return 0x1F1E6 <= ord(char) <= 0x1F1FF
