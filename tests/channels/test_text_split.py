"""Splitting, measuring, escaping and cleaning message text."""

from __future__ import annotations

import random
import re
import unicodedata

import pytest

from bot.channels.text_split import (
    TELEGRAM_TEXT_LIMIT,
    clean_for_telegram,
    escape_html,
    split_message,
    utf16_len,
)

_SPACE = re.compile(r"\s")


def _check_parts(text: str, parts: list[str], limit: int) -> None:
    """Invariants every split must keep."""
    for part in parts:
        assert part, "empty part"
        assert part == part.strip(), f"unstripped part {part[:20]!r}..."
        assert utf16_len(part) <= limit
        assert not 0xD800 <= ord(part[0]) <= 0xDFFF and not 0xD800 <= ord(part[-1]) <= 0xDFFF
    assert _SPACE.sub("", "".join(parts)) == _SPACE.sub("", text)


# --- utf16_len -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "units"),
    [
        ("", 0),
        ("hello", 5),
        ("héllo", 5),  # é is in the BMP
        ("日本語", 3),
        ("😀", 2),  # outside the BMP: a surrogate pair
        ("👍🏽", 4),  # thumbs up + skin tone, both outside the BMP
        ("👨‍👩‍👧", 8),  # 3 emoji (2 each) + 2 zero-width joiners
        ("🇩🇪", 4),  # two regional indicators
        ("\u200f\u200b", 2),
    ],
)
def test_utf16_len(text: str, units: int) -> None:
    assert utf16_len(text) == units


# --- split_message: boundaries -------------------------------------------------------------


def test_empty_and_whitespace_only_give_no_parts() -> None:
    assert split_message("") == []
    assert split_message(" \n\t \n ") == []


def test_short_text_is_one_part() -> None:
    assert split_message("Hello there.") == ["Hello there."]
    assert split_message("  padded \n") == ["padded"]


def test_exactly_the_limit_is_one_part() -> None:
    text = "a" * TELEGRAM_TEXT_LIMIT
    assert split_message(text) == [text]


def test_one_over_the_limit_is_two_parts() -> None:
    text = "a" * (TELEGRAM_TEXT_LIMIT + 1)
    assert split_message(text) == ["a" * TELEGRAM_TEXT_LIMIT, "a"]


def test_limit_counts_utf16_units_not_code_points() -> None:
    # 2,048 emoji are exactly 4,096 units; one more is over.
    assert split_message("😀" * 2048) == ["😀" * 2048]
    assert split_message("😀" * 2049) == ["😀" * 2048, "😀"]
    # A BMP character then emoji: the cut lands before the emoji that would straddle the limit.
    parts = split_message("x" + "😀" * 2048)
    assert parts == ["x" + "😀" * 2047, "😀"]
    assert [utf16_len(p) for p in parts] == [4095, 2]


def test_tiny_limits() -> None:
    assert split_message("😀😀😀", limit=2) == ["😀", "😀", "😀"]
    with pytest.raises(ValueError, match="at least 2"):
        split_message("abc", limit=1)


# --- split_message: where it cuts ----------------------------------------------------------


def test_ten_thousand_chars_of_sentences_cut_at_sentence_ends() -> None:
    rng = random.Random(1)
    words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta"]
    sentences: list[str] = []
    while sum(len(s) + 1 for s in sentences) < 10_000:
        body = " ".join(rng.choice(words) for _ in range(rng.randint(3, 15))).capitalize()
        sentences.append(body + rng.choice([".", "!", "?", "…"]))
    text = " ".join(sentences)[:10_000].rsplit(" ", 1)[0] + "."

    parts = split_message(text)

    _check_parts(text, parts, TELEGRAM_TEXT_LIMIT)
    assert len(parts) == 3
    assert all(part[-1] in ".!?…" for part in parts)
    assert all(utf16_len(part) > TELEGRAM_TEXT_LIMIT - 200 for part in parts[:-1])
    assert " ".join(parts) == text


def test_paragraph_break_beats_a_later_sentence_end() -> None:
    first = "One. " * 600  # 3,000 chars
    text = first.strip() + "\n\n" + "Two. " * 400
    parts = split_message(text)
    assert parts[0] == first.strip()
    _check_parts(text, parts, TELEGRAM_TEXT_LIMIT)


def test_line_break_beats_a_sentence_end() -> None:
    text = "Line one. " * 300 + "\n" + "more words and. " * 100
    parts = split_message(text)
    assert parts[0] == ("Line one. " * 300).strip()


def test_early_paragraph_break_is_not_used_when_it_would_leave_a_tiny_part() -> None:
    text = "Title\n\n" + "Sentence here. " * 400
    parts = split_message(text)
    assert parts[0].startswith("Title\n\nSentence here.")
    assert len(parts[0]) > TELEGRAM_TEXT_LIMIT // 2
    _check_parts(text, parts, TELEGRAM_TEXT_LIMIT)


def test_sentence_end_with_closing_quote_and_cjk_full_stop() -> None:
    text = '"Really?" she asked. ' * 10 + "word " * 10
    parts = split_message(text, limit=60)
    assert parts[0].endswith(('?"', "."))
    cjk = "これは文です。" * 20  # no spaces at all
    parts = split_message(cjk, limit=30)
    assert all(p.endswith("。") for p in parts)
    _check_parts(cjk, parts, 30)


def test_falls_back_to_the_last_whitespace() -> None:
    text = "word " * 2000  # no punctuation
    parts = split_message(text)
    _check_parts(text, parts, TELEGRAM_TEXT_LIMIT)
    assert all(set(p.split(" ")) == {"word"} for p in parts)


def test_no_break_space_is_not_a_break() -> None:
    text = "aaaa bbbb\u00a0cccc"
    assert split_message(text, limit=12) == ["aaaa", "bbbb\u00a0cccc"]


def test_single_nine_thousand_char_word_is_hard_cut() -> None:
    word = "x" * 9000
    parts = split_message(word)
    assert parts == ["x" * 4096, "x" * 4096, "x" * 808]


def test_hard_cut_does_not_split_combining_sequences() -> None:
    cluster = "e\u0301\u0323"  # e + two combining marks
    text = cluster * 10
    for limit in range(3, 12):
        parts = split_message(text, limit=limit)
        _check_parts(text, parts, limit)
        assert all(p.startswith("e") for p in parts), (limit, parts)


def test_hard_cut_does_not_split_emoji_sequences_or_flags() -> None:
    family = "👨\u200d👩\u200d👧"  # 8 units
    flags = "🇩🇪🇫🇷🇯🇵"  # three flags, 4 units each
    thumbs = "👍🏽"
    for text, limit in [(family * 3, 10), (flags * 2, 6), (flags, 10), (thumbs * 5, 6)]:
        parts = split_message(text, limit=limit)
        _check_parts(text, parts, limit)
        for part in parts:
            assert not unicodedata.category(part[0]).startswith("M")
            assert part[0] not in ("\u200d", "🏽") and part[-1] != "\u200d"
            ri = [c for c in part if 0x1F1E6 <= ord(c) <= 0x1F1FF]
            assert len(ri) % 2 == 0, (text, limit, parts)


def test_cluster_longer_than_the_limit_is_still_cut() -> None:
    zalgo = "a" + "\u0300" * 50
    parts = split_message(zalgo, limit=10)
    _check_parts(zalgo, parts, 10)


def test_rtl_and_zero_width_text_is_kept_intact() -> None:
    sentence = "\u202bשלום עולם.\u202c مرحبا\u200f بالعالم! zero\u200bwidth\u200cjoin. "
    text = sentence * 200
    parts = split_message(text, limit=500)
    _check_parts(text, parts, 500)
    joined = "".join(parts)
    for mark in ("\u202b", "\u202c", "\u200f", "\u200b", "\u200c"):
        assert joined.count(mark) == text.count(mark)


# --- split_message: property-style ---------------------------------------------------------

_ALPHABET = [
    *"abcdefghij",
    *"      ",
    ".",
    "!",
    "?",
    "…",
    "\n",
    "\n\n",
    "\t",
    "\u00a0",
    "é",
    "e\u0301",
    "日",
    "。",
    "😀",
    "👍🏽",
    "👨\u200d👩\u200d👧",
    "🇩🇪",
    "\u200b",
    "\u200f",
    "ש",
    '"',
]


@pytest.mark.parametrize("seed", range(300))
def test_random_texts_keep_every_invariant(seed: int) -> None:
    rng = random.Random(seed)
    text = "".join(rng.choice(_ALPHABET) for _ in range(rng.randint(0, 600)))
    limit = rng.choice([2, 3, 5, 8, 13, 40, 100, 4096])
    parts = split_message(text, limit)
    _check_parts(text, parts, limit)
    if not text.strip():
        assert parts == []
    elif utf16_len(text.strip()) <= limit:
        assert parts == [text.strip()]


# --- escape_html / clean_for_telegram ------------------------------------------------------


def test_escape_html() -> None:
    assert escape_html("a < b && c > d") == "a &lt; b &amp;&amp; c &gt; d"
    assert escape_html("<b>\"hi\" 'x'</b>") == "&lt;b&gt;\"hi\" 'x'&lt;/b&gt;"
    assert escape_html('say "hi"', quote=True) == "say &quot;hi&quot;"
    assert escape_html("&amp;") == "&amp;amp;"  # not double-decoding: text is text


def test_clean_removes_control_characters_but_keeps_newlines_and_tabs() -> None:
    assert clean_for_telegram("a\x00b\x01c\x1fd\x7fe\x85f\x9fg") == "abcdefg"
    assert clean_for_telegram("a\tb\nc") == "a\tb\nc"
    assert clean_for_telegram("a\r\nb\rc") == "a\nb\nc"


def test_clean_keeps_format_characters() -> None:
    text = (
        "\u200bzero\u200cnon\u200djoin \u200fRTL\u200e \u202bשלום\u202c \u2066iso\u2069 👨\u200d👩"
    )
    assert clean_for_telegram(text) == text


def test_clean_replaces_lone_surrogates() -> None:
    broken = b"caf\xc3".decode("utf-8", "surrogateescape") + "\ud83d"
    cleaned = clean_for_telegram(broken)
    assert cleaned == "caf\ufffd\ufffd"
    cleaned.encode("utf-8")  # must not raise
