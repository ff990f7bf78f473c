"""The summary's text within Telegram's limits (1024 for the caption, 4096 for the details,
in UTF-16 units) however many towns are red, in both languages, and the trend words."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from bot.i18n import LOCALES, Catalogues
from bot.rules import Ranking as RankingRules
from bot.rules import load_rules
from bot.services.points_reports import VolunteerActivity
from bot.services.ranking import SubjectCounts, rank_subjects
from bot.services.summary import OverdueProblem, Summary, Trend, stretches
from bot.services.windows import WindowKind, period
from handlers.ranking_views import telegram_len
from jobs.summary_texts import compose_summary, trend

ZONE = ZoneInfo("Asia/Shanghai")
CATALOGUES = Catalogues("zh_CN")
NOW = datetime(2026, 11, 30, 0, 30, tzinfo=UTC)


def _summary(subjects: int, name_length: int) -> Summary:
    counts = [
        SubjectCounts(
            i, "东西南北中" * (name_length // 5) + f"镇{i}", assigned=3, closed=i % 3, due=3,
            overdue=3 - i % 3, longest_overdue_days=float(i % 20),
        )
        for i in range(1, subjects + 1)
    ]  # fmt: skip
    window = period(WindowKind.week, date(2026, 11, 29), ZONE)
    until, previous, previous_until = stretches(window, NOW, ZONE)
    activity = VolunteerActivity(3, 2, 1, 40, 2, 10, 3, 5)
    return Summary(
        window=window,
        until=until,
        previous=previous,
        previous_until=previous_until,
        as_of=NOW,
        reported=Trend(12, 9),
        assigned=Trend(10, 10),
        closed=Trend(8, 11),
        went_overdue=Trend(3, 1),
        overdue_now=250,
        longest_overdue=[
            OverdueProblem(
                f"NH-2026-{i:04d}",
                "东桥镇" * 10,
                "road_dust",
                30 - i,
                i == 2,
                [f"联络员{k}" * 5 for k in range(8)],
            )
            for i in range(5)
        ],
        ranking_window=period(WindowKind.year, date(2026, 11, 29), ZONE),
        standings=rank_subjects(counts, RankingRules()),
        changes={},
        claims_approved=Trend(2, 0),
        points_earned=Trend(40, 45),
        points_redeemed=Trend(10, 10),
        volunteers=activity,
    )


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize(("subjects", "name_length"), [(3, 3), (100, 5), (300, 30)])
def test_within_telegram_limits(locale: str, subjects: int, name_length: int) -> None:
    tr = CATALOGUES.translator(locale)
    post = compose_summary(tr, _summary(subjects, name_length), zone=ZONE, rules=load_rules())
    assert telegram_len(post.caption) <= 1024
    assert telegram_len(post.body) <= 4096
    assert "{" not in post.caption + post.body
    assert len(post.buttons) == 5 and post.buttons[0] == [
        [tr("remind.open", code="NH-2026-0000"), "p:show:NH-2026-0000"]
    ]
    if subjects == 300:  # the red towns do not all fit: the rest are counted
        assert tr("remind.more", n=0).split("0")[0] in post.body


@pytest.mark.parametrize(
    ("figure", "zh", "en"),
    [
        (Trend(3, 3), "（上期 3，持平）", " (before: 3, same)"),
        (Trend(5, 2), "（上期 2，↑3）", " (before: 2, ↑3)"),
        (Trend(0, 4), "（上期 4，↓4）", " (before: 4, ↓4)"),
    ],
)
def test_trend_words(figure: Trend, zh: str, en: str) -> None:
    assert trend(CATALOGUES.translator("zh_CN"), figure) == zh
    assert trend(CATALOGUES.translator("en"), figure) == en


def test_like_for_like_stretches() -> None:
    """A window still running is compared with the same stretch of the one before."""
    week = period(WindowKind.week, date(2026, 11, 26), ZONE)  # Thursday
    thursday_noon = datetime(2026, 11, 26, 4, tzinfo=UTC)
    until, previous, previous_until = stretches(week, thursday_noon, ZONE)
    assert until == thursday_noon
    assert (previous.first, previous.last) == (date(2026, 11, 16), date(2026, 11, 22))
    assert previous_until == datetime(2026, 11, 19, 4, tzinfo=UTC)
    # a whole past month against the whole month before (31 days against 30)
    october = period(WindowKind.month, date(2026, 10, 1), ZONE)
    until, previous, previous_until = stretches(october, NOW, ZONE)
    assert until == october.end and previous_until == previous.end
    assert (previous.first, previous.last) == (date(2026, 9, 1), date(2026, 9, 30))
