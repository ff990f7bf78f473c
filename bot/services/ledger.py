"""The ledger (台账) as an Excel workbook: one sheet per builder, formatted for people.

A sheet builder reads the database and returns a plain ``Sheet`` (or None when it has nothing
to contribute); ``workbook_bytes`` turns sheets into an .xlsx with openpyxl: a frozen header,
column widths, dates as real dates in the configured zone, codes and flags as coloured cells.
New sheets plug in by adding a builder to ``SHEET_BUILDERS``: problems, the ranking, points.
"""

from __future__ import annotations

import io
import unicodedata
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from enum import StrEnum
from pathlib import Path
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from bot.rules import Rules
from bot.services import tallies
from bot.services.charts import COLOURS
from bot.services.media import MediaStore
from bot.services.points_rules import receipt_no
from bot.services.problem_machine import OPEN_STATUSES, Status
from bot.services.ranking import Code, Reason, rank_subjects
from bot.services.roles import Role
from bot.services.windows import Window
from models import ActivityClaim, Area, Person, PointsEntry, Problem, ProblemPhoto, RoleGrant

PAGE = 500
Translate = Callable[..., str]
Progress = Callable[[str, int, int], Awaitable[None]]  # stage, done, total
NO_FILL = "F2C2C2"
HEADER_FILL = "E8EEF4"
MAX_WIDTH = 60


class Kind(StrEnum):
    text = "text"
    integer = "integer"
    number = "number"  # one decimal
    percent = "percent"
    moment = "moment"  # an aware time, written as the local date and time


@dataclass(frozen=True)
class Column:
    header: str
    kind: Kind = Kind.text
    wrap: bool = False


@dataclass(frozen=True)
class Cell:
    """A value with a background colour (a code, a yes/no) and, perhaps, a link."""

    value: Any
    fill: str | None = None
    link: str | None = None


@dataclass
class Sheet:
    title: str
    columns: list[Column]
    rows: list[list[Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # lines under the table


@dataclass(frozen=True)
class ExportRequest:
    window: Window
    as_of: datetime
    zone: tzinfo
    rules: Rules
    media: MediaStore
    tr: Translate
    locale: str
    ranking_notes: Sequence[str] = ()  # the window and the formula, as the reader reads them


SheetBuilder = Callable[[AsyncSession, ExportRequest, Progress], Awaitable[Sheet | None]]


def code_fill(code: Code | None) -> str | None:
    return COLOURS[code].removeprefix("#") if code is not None else None


def _photo_cell(request: ExportRequest, photos: list[str | None]) -> Cell | None:
    """Where each photo's bytes are in the media store, the first one linked."""
    if not photos:
        return None
    lines: list[str] = []
    first_link: str | None = None
    for sha in photos:
        if sha is None:
            lines.append(request.tr("export.photo_pending"))
        elif sha == "-":
            lines.append(request.tr("export.photo_unavailable"))
        else:
            path = request.media.path_for(sha)
            lines.append(str(path))
            first_link = first_link or Path(path).resolve().as_uri()
    return Cell("\n".join(lines), link=first_link)


def _yes_no(request: ExportRequest, value: bool | None) -> Cell | None:
    if value is None:
        return None
    if value:
        return Cell(request.tr("export.yes"), fill=code_fill(Code.green))
    return Cell(request.tr("export.no"), fill=NO_FILL)


def _overdue_cell(request: ExportRequest, overdue: bool) -> Cell:
    if overdue:
        return Cell(request.tr("export.yes"), fill=NO_FILL)
    return Cell(request.tr("export.no"))


async def problems_sheet(
    session: AsyncSession, request: ExportRequest, progress: Progress
) -> Sheet:
    """Every problem reported or assigned in the window, with every date and its photos."""
    tr = request.tr
    start, end = request.window.start, request.window.end
    in_window = or_(
        and_(Problem.created_at >= start, Problem.created_at < end),
        and_(Problem.assigned_at >= start, Problem.assigned_at < end),
    )
    total = await session.scalar(select(func.count()).select_from(Problem).where(in_window)) or 0
    sheet = Sheet(
        tr("export.sheet.problems"),
        [
            Column(tr("export.col.code")),
            Column(tr("export.col.category")),
            Column(tr("export.col.status")),
            Column(tr("export.col.subject")),
            Column(tr("export.col.village")),
            Column(tr("export.col.reporter")),
            Column(tr("export.col.description"), wrap=True),
            Column(tr("export.col.location")),
            Column(tr("export.col.reported_at"), Kind.moment),
            Column(tr("export.col.assigned_at"), Kind.moment),
            Column(tr("export.col.deadline"), Kind.moment),
            Column(tr("export.col.extension"), Kind.moment),
            Column(tr("export.col.submitted_at"), Kind.moment),
            Column(tr("export.col.closed_at"), Kind.moment),
            Column(tr("export.col.overdue")),
            Column(tr("export.col.on_time")),
            Column(tr("export.col.days"), Kind.number),
            Column(tr("export.col.before"), wrap=True),
            Column(tr("export.col.after"), wrap=True),
        ],
    )
    subject, village = aliased(Area), aliased(Area)
    last_id = 0
    await progress("problems", 0, total)
    while True:
        page = (
            await session.execute(
                select(Problem, subject.name, village.name, Person.full_name)
                .outerjoin(subject, subject.id == Problem.subject_id)
                .outerjoin(village, village.id == Problem.village_id)
                .outerjoin(Person, Person.id == Problem.reporter_id)
                .where(in_window, Problem.id > last_id)
                .order_by(Problem.id)
                .limit(PAGE)
            )
        ).all()
        if not page:
            break
        ids = [p.id for p, *_ in page]
        photos: dict[tuple[int, str], list[str | None]] = {}
        for problem_id, kind, sha in await session.execute(
            select(ProblemPhoto.problem_id, ProblemPhoto.kind, ProblemPhoto.sha256)
            .where(ProblemPhoto.problem_id.in_(ids))
            .order_by(ProblemPhoto.id)
        ):
            photos.setdefault((problem_id, kind), []).append(sha)
        for problem, subject_name, village_name, reporter in page:
            sheet.rows.append(
                _problem_row(request, problem, subject_name, village_name, reporter, photos)
            )
        last_id = ids[-1]
        await progress("problems", len(sheet.rows), total)
    return sheet


def rectify_days(problem: Problem) -> float | None:
    """Days from assignment to the accepted rectification, for a closed problem."""
    if problem.status != Status.closed.value or not problem.submitted_at or not problem.assigned_at:
        return None
    return round((problem.submitted_at - problem.assigned_at).total_seconds() / 86400, 1)


def _problem_row(
    request: ExportRequest,
    problem: Problem,
    subject_name: str | None,
    village_name: str | None,
    reporter: str | None,
    photos: Mapping[tuple[int, str], list[str | None]],
) -> list[Any]:
    tr = request.tr
    status = Status(problem.status)
    category = request.rules.category(problem.category)
    deadline = problem.deadline
    overdue = status in OPEN_STATUSES and deadline is not None and deadline < request.as_of
    assigned = status in (*OPEN_STATUSES, Status.closed)
    on_time: bool | None = None
    if status is Status.closed:
        on_time = bool(problem.submitted_on_time)
    elif overdue:
        on_time = False
    if problem.address:
        location = problem.address
    elif problem.latitude is not None and problem.longitude is not None:
        location = f"{problem.latitude:.5f}, {problem.longitude:.5f}"
    else:
        location = None
    return [
        problem.code,
        category.name.get(request.locale) if category else problem.category,
        tr(f"status.{status.value}"),
        subject_name,
        village_name,
        reporter,
        problem.description or None,
        location,
        problem.created_at,
        problem.assigned_at,
        problem.deadline,
        problem.extension_until,
        problem.submitted_at,
        problem.closed_at,
        _overdue_cell(request, overdue) if assigned else None,
        _yes_no(request, on_time),
        rectify_days(problem),
        _photo_cell(request, photos.get((problem.id, "before"), [])),
        _photo_cell(request, photos.get((problem.id, "after"), [])),
    ]


def reason_text(tr: Translate, reasons: Sequence[Reason]) -> str:
    return tr("list.separator").join(tr(f"rank.reason.{r.kind}", **r.values) for r in reasons)


async def ranking_sheet(session: AsyncSession, request: ExportRequest, progress: Progress) -> Sheet:
    """The ranking of the chosen window, with every count behind each score."""
    tr = request.tr
    await progress("ranking", 0, 1)
    counts = await tallies.window_counts(session, request.window, request.as_of, request.zone)
    standings = rank_subjects(counts.subjects, request.rules.ranking)
    sheet = Sheet(
        tr("export.sheet.ranking"),
        [
            Column(tr("export.col.rank"), Kind.integer),
            Column(tr("export.col.subject")),
            Column(tr("export.col.area_code")),
            Column(tr("export.col.colour")),
            Column(tr("export.col.score"), Kind.number),
            Column(tr("export.col.assigned"), Kind.integer),
            Column(tr("export.col.closed"), Kind.integer),
            Column(tr("export.col.closed_on_time"), Kind.integer),
            Column(tr("export.col.due"), Kind.integer),
            Column(tr("export.col.overdue_count"), Kind.integer),
            Column(tr("export.col.closure_rate"), Kind.percent),
            Column(tr("export.col.on_time_rate"), Kind.percent),
            Column(tr("export.col.average_days"), Kind.number),
            Column(tr("export.col.reasons"), wrap=True),
        ],
        notes=list(request.ranking_notes),
    )
    for row in standings.ranked + standings.apart:
        c = row.counts
        code = (
            Cell(tr(f"rank.code.{row.code.value}"), fill=code_fill(row.code))
            if row.code is not None
            else tr("rank.code.none")
        )
        sheet.rows.append(
            [
                row.rank,
                c.name,
                c.area_code,
                code,
                row.score,
                c.assigned,
                c.closed,
                c.closed_on_time,
                c.due,
                c.overdue,
                c.closure_rate,
                c.on_time_rate,
                c.average_rectify_days,
                reason_text(tr, row.reasons),
            ]
        )
    await progress("ranking", 1, 1)
    return sheet


def _activity_name(tr: Translate, key: str) -> str:
    """The catalogue's name of an activity; a key the rules file added without one: itself."""
    name = tr(f"activity.{key}")
    return key if name == f"activity.{key}" else name


async def points_sheet(session: AsyncSession, request: ExportRequest, progress: Progress) -> Sheet:
    """积分台账: every points entry made in the window, oldest first, with the person's village,
    why, from what, the amount and what the rule called for, who approved it, and the balance
    right after it (the person's entries summed in the order they were written)."""
    tr = request.tr
    start, end = request.window.start, request.window.end
    await progress("points", 0, 1)
    # The balance after each entry: a running sum per person, in the order of the ledger's ids
    # (one person's entries are written one at a time, under the lock of their balance).
    running = select(
        PointsEntry.id.label("entry_id"),
        func.sum(PointsEntry.amount)
        .over(partition_by=PointsEntry.person_id, order_by=PointsEntry.id)
        .label("balance_after"),
    ).subquery()
    first_grant = (
        select(RoleGrant.person_id, func.min(RoleGrant.id).label("grant_id"))
        .where(RoleGrant.role == Role.volunteer.value)
        .group_by(RoleGrant.person_id)
        .subquery()
    )
    villages: dict[int, str] = dict(
        (
            await session.execute(
                select(first_grant.c.person_id, Area.name)
                .join(RoleGrant, RoleGrant.id == first_grant.c.grant_id)
                .join(Area, Area.id == RoleGrant.area_id)
            )
        ).all()
    )
    approver = aliased(Person)
    rows = await session.execute(
        select(
            PointsEntry,
            running.c.balance_after,
            Person.full_name,
            approver.full_name,
            Problem.code,
            ActivityClaim.activity,
        )
        .join(running, running.c.entry_id == PointsEntry.id)
        .join(Person, Person.id == PointsEntry.person_id)
        .outerjoin(approver, approver.id == PointsEntry.approver_id)
        .outerjoin(Problem, Problem.id == PointsEntry.problem_id)
        .outerjoin(ActivityClaim, ActivityClaim.id == PointsEntry.claim_id)
        .where(PointsEntry.at >= start, PointsEntry.at < end)
        .order_by(PointsEntry.at, PointsEntry.id)
    )
    sheet = Sheet(
        tr("export.sheet.points"),
        [
            Column(tr("export.col.points_at"), Kind.moment),
            Column(tr("export.col.person")),
            Column(tr("export.col.village")),
            Column(tr("export.col.points_kind")),
            Column(tr("export.col.points_reason"), wrap=True),
            Column(tr("export.col.points_source")),
            Column(tr("export.col.amount"), Kind.integer),
            Column(tr("export.col.nominal"), Kind.integer),
            Column(tr("export.col.approver")),
            Column(tr("export.col.balance_after"), Kind.integer),
        ],
    )
    for entry, balance_after, name, approver_name, code, activity in rows:
        if entry.problem_id is not None:
            source = code
        elif entry.claim_id is not None:
            source = tr("export.points_source.claim", id=entry.claim_id)
        elif entry.redemption_id is not None:
            source = tr("export.points_source.redemption", receipt=receipt_no(entry.redemption_id))
        else:
            source = None
        reason = entry.note or (_activity_name(tr, activity) if activity else None)
        amount = Cell(entry.amount, fill=NO_FILL) if entry.amount < 0 else entry.amount
        # An amount cut by the daily cap, or a reversal that found the points spent: marked.
        nominal = (
            Cell(entry.nominal, fill=code_fill(Code.yellow))
            if entry.nominal != entry.amount
            else entry.nominal
        )
        sheet.rows.append(
            [
                entry.at,
                name,
                villages.get(entry.person_id),
                tr(f"export.points_kind.{entry.kind}"),
                reason,
                source,
                amount,
                nominal,
                approver_name,
                int(balance_after),
            ]
        )
    await progress("points", 1, 1)
    return sheet


# The sheets of the ledger, in order.
SHEET_BUILDERS: tuple[SheetBuilder, ...] = (problems_sheet, ranking_sheet, points_sheet)


# ---------------------------------------------------------------- writing the workbook


def display_width(text: str) -> int:
    """Columns a text takes in a spreadsheet: wide (CJK) characters count two."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


FORMATS: dict[Kind, str] = {
    Kind.integer: "0",
    Kind.number: "0.0",
    Kind.percent: "0%",
    Kind.moment: "yyyy-mm-dd hh:mm",
}


def _excel_value(value: Any, zone: tzinfo) -> Any:
    if isinstance(value, datetime):
        # Excel has no time zones: the local wall-clock time as people read it, to the second.
        return value.astimezone(zone).replace(tzinfo=None, microsecond=0)
    return value


def workbook_bytes(sheets: Sequence[Sheet], zone: tzinfo) -> bytes:
    """The .xlsx file (CPU work: run it in a thread for a big ledger)."""
    # Imported here: openpyxl costs ~30 MB resident, and a ledger is asked for rarely.
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font, PatternFill
    from openpyxl.utils import get_column_letter

    book = Workbook()
    book.remove(book.active)  # type: ignore[arg-type]
    bold = Font(bold=True)
    header_fill = PatternFill("solid", start_color=HEADER_FILL)
    for sheet in sheets:
        ws = book.create_sheet(sheet.title[:31])
        widths = [display_width(c.header) for c in sheet.columns]
        ws.append([c.header for c in sheet.columns])
        for cell in ws[1]:
            cell.font = bold
            cell.fill = header_fill
            cell.alignment = Alignment(wrap_text=True, vertical="center")
        for values in sheet.rows:
            row_number = ws.max_row + 1
            for index, (column, value) in enumerate(zip(sheet.columns, values, strict=True)):
                styled = value if isinstance(value, Cell) else None
                raw = styled.value if styled is not None else value
                cell = ws.cell(row_number, index + 1, _excel_value(raw, zone))
                if column.kind in FORMATS and raw is not None:
                    cell.number_format = FORMATS[column.kind]
                if styled is not None and styled.fill:
                    cell.fill = PatternFill("solid", start_color=styled.fill)
                if styled is not None and styled.link:
                    cell.hyperlink = styled.link
                if column.wrap:
                    cell.alignment = Alignment(wrap_text=True, vertical="top")
                shown = 16 if column.kind is Kind.moment else _shown_width(raw)
                widths[index] = max(widths[index], shown)
        ws.freeze_panes = "A2"
        last = get_column_letter(len(sheet.columns))
        ws.auto_filter.ref = f"A1:{last}{max(ws.max_row, 1)}"
        for index, width in enumerate(widths, start=1):
            ws.column_dimensions[get_column_letter(index)].width = min(MAX_WIDTH, width + 2)
        if sheet.notes:
            ws.append([])
            for note in sheet.notes:
                ws.append([note])
                ws.cell(ws.max_row, 1).font = Font(italic=True)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def _shown_width(value: Any) -> int:
    if value is None:
        return 0
    text = f"{value:.1f}" if isinstance(value, float) else str(value)
    return max((display_width(line) for line in text.splitlines()), default=0)
