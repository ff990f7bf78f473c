"""Long texts become several messages within Telegram's 4096, lines kept whole."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.limits import split_text, utf16_len


@pytest.mark.parametrize(
    ("text", "limit", "pieces"),
    [
        ("short", 10, ["short"]),
        ("a" * 10, 10, ["a" * 10]),  # exactly the limit: one message
        ("aaaa\nbbbb\ncccc", 9, ["aaaa\nbbbb", "cccc"]),  # broken between lines
        ("aaaa\nbbbb\ncccc", 4, ["aaaa", "bbbb", "cccc"]),
        ("a" * 25, 10, ["a" * 10, "a" * 10, "a" * 5]),  # one line longer than a message
        ("x\n" + "a" * 12 + "\ny", 10, ["x", "a" * 10, "aa\ny"]),
        ("😀😀😀", 4, ["😀😀", "😀"]),  # an emoji is two UTF-16 units, as Telegram counts
        ("head\n\n\nbody", 100, ["head\n\n\nbody"]),
        ("", 10, []),
        ("\n\n", 10, []),
    ],
)
def test_split_text(text: str, limit: int, pieces: list[str]) -> None:
    assert split_text(text, limit) == pieces


@given(st.text(alphabet=st.sampled_from("ab问😀\n "), max_size=300), st.integers(2, 40))
def test_nothing_is_lost_and_every_piece_fits(text: str, limit: int) -> None:
    pieces = split_text(text, limit)
    assert all(0 < utf16_len(p) <= limit and p.strip() for p in pieces)
    # Every visible character arrives, in order (only blank pieces are left out).
    assert "".join("".join(pieces).split()) == "".join(text.split())


def test_default_limit_is_telegrams() -> None:
    pieces = split_text("行" * 5000)
    assert [len(p) for p in pieces] == [4096, 904]
