"""How the ranking reads in chat: the caption under the chart, the table, the formula, within
Telegram's limits (1024 characters for a caption, 4096 for a text), in the reader's language.

Pure functions of a translator and plain values, shared by /rank and the weekly post.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from bot.i18n import Translator
from bot.limits import TelegramLimits
from bot.rules import Ranking as RankingRules
from bot.services.charts import ChartText, change_mark
from bot.services.ranking import Change, Code, RankingRow, Standings
from bot.services.windows import Window, WindowKind

LIMITS = TelegramLimits()
DOTS: dict[Code | None, str] = {Code.green: "🟢", Code.yellow: "🟡", Code.red: "🔴", None: "⚪"}


def telegram_len(text: str) -> int:
    """Length as Telegram counts it: UTF-16 code units (an emoji dot counts two)."""
    return len(text.encode("utf-16-le")) // 2


def window_label(tr: Translator, window: Window) -> str:
    match window.kind:
        case WindowKind.year:
            return tr("rank.window.year", year=window.first.year)
        case WindowKind.quarter:
            return tr("rank.window.quarter", year=window.first.year, quarter=window.quarter)
        case WindowKind.month:
            return tr("rank.window.month", year=window.first.year, month=window.first.month)
        case WindowKind.week:
            iso = window.first.isocalendar()
            return tr("rank.window.week", year=iso.year, week=iso.week)
        case WindowKind.range:
            if window.first == window.last:
                return window.first.isoformat()
            return tr(
                "rank.window.range", first=window.first.isoformat(), last=window.last.isoformat()
            )


def _number(value: float) -> str:
    return f"{value:g}"


def formula_text(tr: Translator, rules: RankingRules) -> str:
    return tr(
        "rank.formula",
        wc=_number(rules.weight_closure),
        wt=_number(rules.weight_on_time),
        penalty=_number(rules.overdue_penalty),
        red_days=rules.red_if_overdue_days,
        min_sample=rules.min_sample,
    )


def percent(rate: float | None) -> str:
    return "—" if rate is None else f"{rate * 100:.0f}%"


def code_name(tr: Translator, code: Code | None) -> str:
    return tr(f"rank.code.{code.value}") if code is not None else tr("rank.code.none")


def row_line(tr: Translator, row: RankingRow, change: Change | None) -> str:
    counts = row.counts
    line = tr(
        "rank.line",
        rank=row.rank,
        dot=DOTS[row.code],
        name=row.name,
        score=f"{row.score:.1f}",
        closure=percent(counts.closure_rate),
        on_time=percent(counts.on_time_rate),
        overdue=counts.overdue,
        change=change_mark(change, tr("rank.change.new")),
    ).rstrip()
    override = next((r for r in row.reasons if r.kind == "overdue_over"), None)
    if override is not None:
        line += tr("rank.overdue_flag", days=override.values["days"])
    return line


def apart_name(tr: Translator, row: RankingRow) -> str:
    """A subject listed apart: its name, red if the override made it so, and its overdue
    problems (carried over from before the window) so that it never reads as clean."""
    name = row.name + (DOTS[Code.red] if row.code is Code.red else "")
    if row.counts.overdue:
        name += tr(
            "rank.apart_overdue",
            overdue=row.counts.overdue,
            days=int(row.counts.longest_overdue_days),
        )
    return name


def chart_text(tr: Translator, window: Window, as_of: datetime) -> ChartText:
    return ChartText(
        title=tr(
            "rank.chart_title",
            window=window_label(tr, window),
            as_of=as_of.strftime("%Y-%m-%d %H:%M"),
        ),
        axis=tr("rank.chart_axis"),
        legend={code.value: code_name(tr, code) for code in Code},
        empty=tr("rank.none_ranked"),
        marks={"new": tr("rank.change.new")},
    )


@dataclass(frozen=True)
class RankingPost:
    """A photo's caption (or the first text when there is no chart), then further texts."""

    caption: str
    texts: list[str] = field(default_factory=list)

    @property
    def parts(self) -> list[str]:
        return [self.caption, *self.texts]


def _focus_line(tr: Translator, standings: Standings, focus: int) -> str | None:
    row = standings.row(focus)
    if row is None:
        return None
    if row.rank is None:
        line = tr(
            "rank.focus_apart",
            name=row.name,
            assigned=row.counts.assigned,
            min=standings.rules.min_sample,
        )
        if row.counts.overdue:
            line += tr(
                "rank.focus_apart_overdue",
                overdue=row.counts.overdue,
                days=int(row.counts.longest_overdue_days),
                code=code_name(tr, row.code) if row.code is not None else "",
            ).rstrip()
        return line
    return tr(
        "rank.focus",
        name=row.name,
        rank=row.rank,
        n=len(standings.ranked),
        code=code_name(tr, row.code),
        score=f"{row.score:.1f}",
    )


def _chunks(lines: list[str], budget: int) -> list[str]:
    """Lines packed into texts of at most ``budget`` (a line too long is cut)."""
    texts: list[str] = []
    current: list[str] = []
    size = 0
    for line in lines:
        while telegram_len(line) > budget:  # never in practice: the longest is a name list
            cut = budget
            while telegram_len(line[:cut]) > budget:
                cut -= 1
            lines_head, line = line[:cut], line[cut:]
            if current:
                texts.append("\n".join(current))
                current, size = [], 0
            texts.append(lines_head)
        extra = telegram_len(line) + (1 if current else 0)
        if current and size + extra > budget:
            texts.append("\n".join(current))
            current, size = [], 0
            extra = telegram_len(line)
        current.append(line)
        size += extra
    if current:
        texts.append("\n".join(current))
    return texts


def compose_ranking(
    tr: Translator,
    standings: Standings,
    changes: Mapping[int, Change],
    window: Window,
    as_of: datetime,
    *,
    focus: int | None = None,
    caption_max: int = LIMITS.caption_max,
    text_max: int = LIMITS.text_max,
) -> RankingPost:
    """The post: the whole table in the caption when it fits, else a short caption (title,
    summary, the asker's own subject, the formula) and the table in as few texts as fit."""
    head = [
        tr("rank.title", window=window_label(tr, window), as_of=as_of.strftime("%Y-%m-%d %H:%M")),
        tr(
            "rank.summary",
            n=len(standings.ranked),
            green=standings.count(Code.green),
            yellow=standings.count(Code.yellow),
            red=standings.count(Code.red),
        )
        if standings.ranked
        else tr("rank.none_ranked"),
    ]
    if focus is not None and (line := _focus_line(tr, standings, focus)) is not None:
        head.append(line)
    body = [row_line(tr, row, changes.get(row.subject_id)) for row in standings.ranked]
    if standings.apart:
        body.append(
            tr(
                "rank.apart",
                min=standings.rules.min_sample,
                names=tr("list.separator").join(apart_name(tr, row) for row in standings.apart),
            )
        )
    formula = formula_text(tr, standings.rules)
    whole = "\n".join([*head, "", *body, "", formula])
    if telegram_len(whole) <= caption_max:
        return RankingPost(whole)
    caption = "\n".join([*head, tr("rank.table_below"), "", formula])
    if telegram_len(caption) > caption_max:  # only a huge formula file could: keep it whole
        caption = "\n".join(head)
        body.append(formula)
    return RankingPost(caption, _chunks(body, text_max))
