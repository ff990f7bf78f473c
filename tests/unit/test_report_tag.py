"""Which captions report a problem, and what is left as its description."""

import pytest

from bot.services.intake import has_report_tag, strip_tag


@pytest.mark.parametrize(
    ("caption", "tagged", "description"),
    [
        ("#问题 河道有垃圾", True, "河道有垃圾"),
        ("#问题河道有垃圾", True, "河道有垃圾"),  # no space after the tag
        ("＃问题 河道有垃圾", True, "河道有垃圾"),  # full-width hash
        ("＃问题河道有垃圾", True, "河道有垃圾"),
        ("河道有垃圾 #问题", True, "河道有垃圾"),
        ("#report trash by the river", True, "trash by the river"),
        ("#REPORT trash", True, "trash"),
        ("#report河道有垃圾", True, "河道有垃圾"),
        ("#问题", True, ""),
        ("#reporting live", False, "#reporting live"),
        ("#reports", False, "#reports"),
        ("问题：河道有垃圾", False, "问题：河道有垃圾"),
        ("今天天气不错", False, "今天天气不错"),
        ("", False, ""),
        (None, False, ""),
    ],
)
def test_report_tag(caption: str | None, tagged: bool, description: str) -> None:
    assert has_report_tag(caption) is tagged
    if tagged or caption:
        assert strip_tag(caption) == description
