"""Snapshots of each posted ranking, so that "change since last week" compares with what was
posted then, not with a recomputation under today's data."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base


class RankingSnapshot(Base):
    __tablename__ = "ranking_snapshots"

    id: Mapped[int] = mapped_column(primary_key=True)
    # The ISO week of the weekly post, e.g. 2026-W48: one snapshot per week, however often the
    # job fires and in however many processes.
    period: Mapped[str] = mapped_column(String(16), unique=True)
    window_kind: Mapped[str] = mapped_column(String(8))
    window_first: Mapped[date]
    window_last: Mapped[date]
    taken_at: Mapped[datetime]
    # The weights and thresholds in force (the formula printed under the post).
    rules: Mapped[dict[str, Any]] = mapped_column(JSON)


class RankingSnapshotRow(Base):
    __tablename__ = "ranking_snapshot_rows"

    id: Mapped[int] = mapped_column(primary_key=True)
    snapshot_id: Mapped[int] = mapped_column(ForeignKey("ranking_snapshots.id"), index=True)
    subject_id: Mapped[int] = mapped_column(ForeignKey("areas.id"))
    subject_name: Mapped[str] = mapped_column(String(100))
    area_code: Mapped[str] = mapped_column(String(32))
    rank: Mapped[int | None]  # None: listed apart (below the minimum sample)
    score: Mapped[float | None] = mapped_column(Float)
    code: Mapped[str | None] = mapped_column(String(8))
    assigned: Mapped[int]
    closed: Mapped[int]
    closed_on_time: Mapped[int]
    due: Mapped[int]
    overdue: Mapped[int]
    longest_overdue_days: Mapped[float] = mapped_column(Float)
    rectify_days_total: Mapped[float] = mapped_column(Float)
    reasons: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
