"""How points look in chat: ledger lines, activity names, leaderboards; shared by the points,
claims and redemption handlers and the monthly job."""

from __future__ import annotations

from datetime import datetime

from bot.context import Context, Services
from bot.i18n import Translator
from bot.services.points import Entry, Kind, Policy
from bot.services.points_reports import BoardLine, VillageBoard
from bot.services.points_rules import receipt_no

MESSAGE_LIMIT = 4000  # under Telegram's 4096, with room for a header


def policy_of(services: Services) -> Policy:
    return Policy(services.rules.points, services.settings.zone)


def activity_name(tr: Translator, key: str) -> str:
    """The catalogue's name for an activity; a key the rules file added without a translation
    shows as itself."""
    name_key = f"activity.{key}"
    return tr(name_key) if tr.catalogues.has(tr.locale, name_key) else key


def signed(amount: int) -> str:
    return f"{amount:+d}"


def stamp(services: Services, moment: datetime) -> str:
    return services.local(moment).strftime("%m-%d %H:%M")


def entry_line(services: Services, tr: Translator, entry: Entry, *, notes: bool = True) -> str:
    """One ledger entry: when, how much, and why (with who approved it)."""
    values: dict[str, object] = {
        "when": stamp(services, entry.at),
        "amount": signed(entry.amount),
        "code": entry.problem_code or "-",
        "activity": activity_name(tr, entry.activity or "-"),
        "who": entry.approver_name or "-",
        "receipt": receipt_no(entry.redemption_id or 0),
        "reason": entry.note or "-",
    }
    text = tr(f"points.entry.{entry.kind.value}", **values)
    if entry.kind is Kind.problem_reversed and notes:
        text += tr("points.entry.reason", reason=entry.note or "-")
    if entry.amount != entry.nominal and notes:
        # An earning the daily cap cut, or a reversal that found the points already spent.
        key = "points.entry.spent" if entry.kind is Kind.problem_reversed else "points.entry.capped"
        text += tr(key, nominal=signed(entry.nominal))
    return text


def board_lines(tr: Translator, boards: list[VillageBoard]) -> list[str]:
    lines: list[str] = []
    for board in boards:
        lines.append(tr("leaderboard.village", village=board.village_name))
        if not board.lines:
            lines.append(tr("leaderboard.none"))
        lines += [_board_line(tr, line) for line in board.lines]
    return lines


def _board_line(tr: Translator, line: BoardLine) -> str:
    return tr("leaderboard.line", rank=line.rank, name=line.name, points=line.points)


def chunks(header: str, lines: list[str], limit: int = MESSAGE_LIMIT) -> list[str]:
    """The header and lines as few messages as fit Telegram's length limit."""
    messages: list[str] = []
    current = header
    for line in lines:
        line = line[: limit - 1]
        if len(current) + 1 + len(line) > limit:
            messages.append(current)
            current = line
        else:
            current += "\n" + line
    messages.append(current)
    return messages


def month_label(services: Services, tr: Translator, start: datetime) -> str:
    local = services.local(start)
    return tr("leaderboard.month", year=local.year, month=local.month)


def translator_for(context: Context, locale: str | None) -> Translator:
    return context.services.i18n.translator(locale)
