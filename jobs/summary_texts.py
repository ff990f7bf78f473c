"""The leaders' summary as text, in the reader's language: pure functions of a translator and
the figures (bot/services/summary.py), shared by the scheduled summary and /summary.

Two messages: the ranking chart with a caption of the key figures (1024 characters at most),
then the details (4096 at most; what does not fit is counted in a last line) with a button to
open each of the longest-overdue problems.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import tzinfo

from bot.i18n import Translator
from bot.limits import TelegramLimits
from bot.rules import Rules
from bot.services.ledger import reason_text
from bot.services.ranking import Code
from bot.services.summary import Summary, Trend
from handlers.ranking_views import telegram_len, window_label
from jobs.reminder_texts import fit, open_buttons

LIMITS = TelegramLimits()


@dataclass(frozen=True)
class SummaryPost:
    caption: str  # under the chart (or the first text when nothing is ranked)
    body: str
    buttons: list[list[list[str]]] = field(default_factory=list)


def trend(tr: Translator, figure: Trend) -> str:
    change = figure.change
    if change > 0:
        mark = tr("summary.trend.up", n=change)
    elif change < 0:
        mark = tr("summary.trend.down", n=-change)
    else:
        mark = tr("summary.trend.same")
    return tr("summary.trend", before=figure.before, change=mark)


def _stamp(zone: tzinfo, summary: Summary) -> str:
    return summary.as_of.astimezone(zone).strftime("%Y-%m-%d %H:%M")


def caption_text(tr: Translator, summary: Summary, zone: tzinfo) -> str:
    window = summary.window
    title = (
        tr("summary.title_day", day=window.first.isoformat(), as_of=_stamp(zone, summary))
        if window.first == window.last
        else tr(
            "summary.title",
            window=window_label(tr, window),
            first=window.first.isoformat(),
            last=window.last.isoformat(),
            as_of=_stamp(zone, summary),
        )
    )
    lines = [
        title,
        tr("summary.reported", n=summary.reported.now, trend=trend(tr, summary.reported)),
        tr("summary.assigned", n=summary.assigned.now, trend=trend(tr, summary.assigned)),
        tr("summary.closed", n=summary.closed.now, trend=trend(tr, summary.closed)),
        tr(
            "summary.went_overdue",
            n=summary.went_overdue.now,
            trend=trend(tr, summary.went_overdue),
        ),
        tr("summary.overdue_now", n=summary.overdue_now),
        tr("summary.red_count", n=len(summary.red)) if summary.red else tr("summary.no_red"),
    ]
    if summary.window.end > summary.until:  # a window still running: compared like for like
        lines.append(tr("summary.so_far"))
    text = "\n".join(lines)
    cut = LIMITS.caption_max
    while telegram_len(text) > LIMITS.caption_max:  # only a rules file's huge names could
        cut -= 10
        text = text[:cut] + "…"
    return text


def body_text(tr: Translator, summary: Summary, rules: Rules) -> str:
    lines: list[tuple[str, bool]] = []
    red_rows = [r for r in summary.standings.ranked + summary.standings.apart if r.code is Code.red]
    ranking = window_label(tr, summary.ranking_window)
    if red_rows:
        lines.append((tr("summary.red_head", n=len(red_rows), window=ranking), False))
        lines += [
            (tr("summary.red_line", name=r.name, why=reason_text(tr, r.reasons)), True)
            for r in red_rows
        ]
    else:
        lines.append((tr("summary.red_none", window=ranking), False))
    lines.append(("", False))
    if summary.longest_overdue:
        lines.append((tr("summary.longest_head", n=len(summary.longest_overdue)), False))
        for i, p in enumerate(summary.longest_overdue, start=1):
            category = rules.category(p.category)
            line = tr(
                "summary.longest_line",
                i=i,
                code=p.code,
                subject=p.subject_name,
                category=category.name.get(tr.locale) if category else p.category,
                days=p.overdue_days,
                liaisons=tr("list.separator").join(p.liaisons) or tr("summary.no_liaison"),
            )
            if p.awaiting_check:
                line += tr("remind.awaiting_check")
            lines.append((line, True))
    else:
        lines.append((tr("summary.longest_none"), False))
    lines.append(("", False))
    lines.append(
        (
            tr(
                "summary.volunteers",
                approved=summary.claims_approved.now,
                approved_trend=trend(tr, summary.claims_approved),
                earned=summary.points_earned.now,
                earned_trend=trend(tr, summary.points_earned),
                redeemed=summary.points_redeemed.now,
                redeemed_trend=trend(tr, summary.points_redeemed),
            ),
            False,
        )
    )
    standings = summary.standings
    if standings.ranked:
        lines.append(
            (
                tr(
                    "summary.ranking",
                    window=ranking,
                    n=len(standings.ranked),
                    green=standings.count(Code.green),
                    yellow=standings.count(Code.yellow),
                    red=standings.count(Code.red),
                ),
                False,
            )
        )
    return fit(lines, lambda n: tr("remind.more", n=n), limit=LIMITS.text_max)


def compose_summary(tr: Translator, summary: Summary, *, zone: tzinfo, rules: Rules) -> SummaryPost:
    return SummaryPost(
        caption_text(tr, summary, zone),
        body_text(tr, summary, rules),
        open_buttons(tr, [p.code for p in summary.longest_overdue]),
    )
