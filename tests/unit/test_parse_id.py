"""Ids from button data and typed arguments: what int() alone would let through."""

import pytest

from handlers.common import parse_id


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("42", 42),
        ("-100500", -100500),
        ("9223372036854775807", 2**63 - 1),
        ("9223372036854775808", None),  # one past what a 64-bit column holds
        ("9" * 20, None),
        ("²", None),  # isdigit() is true, int() refuses it
        ("٣", None),  # int() takes it; no button ever carries it
        ("", None),
        ("-", None),
        ("+5", None),
        (" 5", None),
        ("5x", None),
        ("--5", None),
    ],
)
def test_parse_id(text: str, expected: int | None) -> None:
    assert parse_id(text) == expected
