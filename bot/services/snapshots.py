"""Snapshots of posted rankings: taken once per week, read back to build the post (so a second
firing posts the same thing) and to say how each subject moved since the previous post."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from bot.rules import Ranking as RankingRules
from bot.services.ranking import Code, RankingRow, Reason, Standings, SubjectCounts
from bot.services.windows import Window, WindowKind
from models import RankingSnapshot, RankingSnapshotRow


@dataclass(frozen=True)
class PostedRanking:
    period: str
    window: Window
    taken_at: datetime
    standings: Standings


def _row_values(snapshot_id: int, row: RankingRow) -> dict[str, Any]:
    counts = row.counts
    return {
        "snapshot_id": snapshot_id,
        "subject_id": counts.subject_id,
        "subject_name": counts.name,
        "area_code": counts.area_code,
        "rank": row.rank,
        "score": row.score,
        "code": row.code.value if row.code is not None else None,
        "assigned": counts.assigned,
        "closed": counts.closed,
        "closed_on_time": counts.closed_on_time,
        "due": counts.due,
        "overdue": counts.overdue,
        "longest_overdue_days": counts.longest_overdue_days,
        "rectify_days_total": counts.rectify_days_total,
        "reasons": [{"kind": r.kind, **dict(r.values)} for r in row.reasons],
    }


async def take_snapshot(
    session: AsyncSession, period: str, window: Window, standings: Standings, *, now: datetime
) -> bool:
    """Keep ``standings`` as the ranking of ``period`` unless that period has one already
    (another firing, another process): True if this call wrote it."""
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    result = await session.execute(
        insert(RankingSnapshot)
        .values(
            period=period,
            window_kind=window.kind.value,
            window_first=window.first,
            window_last=window.last,
            taken_at=now,
            rules=standings.rules.model_dump(mode="json"),
        )
        .on_conflict_do_nothing(index_elements=["period"])
    )
    if not result.rowcount:  # type: ignore[attr-defined]
        return False
    snapshot_id = await session.scalar(
        select(RankingSnapshot.id).where(RankingSnapshot.period == period)
    )
    assert snapshot_id is not None
    rows = standings.ranked + standings.apart
    if rows:
        await session.execute(
            insert(RankingSnapshotRow), [_row_values(snapshot_id, r) for r in rows]
        )
    return True


def _row(stored: RankingSnapshotRow) -> RankingRow:
    counts = SubjectCounts(
        stored.subject_id,
        stored.subject_name,
        stored.area_code,
        assigned=stored.assigned,
        closed=stored.closed,
        closed_on_time=stored.closed_on_time,
        due=stored.due,
        overdue=stored.overdue,
        longest_overdue_days=stored.longest_overdue_days,
        rectify_days_total=stored.rectify_days_total,
    )
    reasons = tuple(
        Reason(str(r["kind"]), {k: v for k, v in r.items() if k != "kind"}) for r in stored.reasons
    )
    code = Code(stored.code) if stored.code is not None else None
    return RankingRow(counts, stored.score, stored.rank, code, reasons)


async def _load(session: AsyncSession, snapshot: RankingSnapshot, zone: tzinfo) -> PostedRanking:
    stored = await session.scalars(
        select(RankingSnapshotRow)
        .where(RankingSnapshotRow.snapshot_id == snapshot.id)
        .order_by(RankingSnapshotRow.id)
    )
    rows = [_row(s) for s in stored]
    standings = Standings(
        [r for r in rows if r.rank is not None],
        [r for r in rows if r.rank is None],
        RankingRules.model_validate(snapshot.rules),
    )
    window = Window.of(
        WindowKind(snapshot.window_kind), snapshot.window_first, snapshot.window_last, zone
    )
    return PostedRanking(snapshot.period, window, snapshot.taken_at, standings)


async def posted_ranking(session: AsyncSession, period: str, zone: tzinfo) -> PostedRanking | None:
    snapshot = (
        await session.scalars(select(RankingSnapshot).where(RankingSnapshot.period == period))
    ).first()
    return await _load(session, snapshot, zone) if snapshot is not None else None


async def latest_posted(
    session: AsyncSession, zone: tzinfo, *, before: str | None = None
) -> PostedRanking | None:
    """The newest snapshot (older than ``before``, a period, if given)."""
    query = select(RankingSnapshot).order_by(
        RankingSnapshot.taken_at.desc(), RankingSnapshot.id.desc()
    )
    if before is not None:
        query = query.where(RankingSnapshot.period < before)
    snapshot = (await session.scalars(query.limit(1))).first()
    return await _load(session, snapshot, zone) if snapshot is not None else None


def ranks_of(posted: PostedRanking | None) -> dict[int, int | None] | None:
    """subject id → its rank in ``posted`` (None: listed apart); None without a posting."""
    if posted is None:
        return None
    return {r.subject_id: r.rank for r in posted.standings.ranked + posted.standings.apart}
