"""Volunteer points: the append-only ledger, the kept balance, activity claims, redemption codes
and the shops' checkout attempts."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import CheckConstraint, Date, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, utcnow

# Entry kinds that add points, and those that take them away.
EARNING_KINDS = ("problem_assigned", "problem_closed", "activity")
DEBIT_KINDS = ("redemption", "problem_reversed")


def _in(kinds: tuple[str, ...]) -> str:
    return "kind IN (" + ", ".join(f"'{k}'" for k in kinds) + ")"


class PointsAccount(Base):
    """One row per person who ever had an entry. The balance is kept in the same transaction as
    every entry, and the database refuses a negative one whatever the code does."""

    __tablename__ = "points_accounts"
    __table_args__ = (CheckConstraint("balance >= 0", name="balance_not_negative"),)

    person_id: Mapped[int] = mapped_column(ForeignKey("people.id"), primary_key=True)
    balance: Mapped[int] = mapped_column(default=0)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class PointsEntry(Base):
    """One line of the ledger. Rows are only ever added; a correction is a new row."""

    __tablename__ = "points_entries"
    __table_args__ = (
        CheckConstraint(f"amount >= 0 OR NOT {_in(EARNING_KINDS)}", name="earning_not_negative"),
        CheckConstraint(f"amount <= 0 OR NOT {_in(DEBIT_KINDS)}", name="debit_not_positive"),
        Index("ix_points_entries_person_at", "person_id", "at"),
        Index("ix_points_entries_person_day", "person_id", "cap_day"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id"))
    # problem_assigned | problem_closed | problem_reversed | activity | redemption | correction
    kind: Mapped[str] = mapped_column(String(20))
    amount: Mapped[int]
    # What the rule called for: differs from amount when the daily cap cut an earning, or when
    # a reversal found the points already spent.
    nominal: Mapped[int]
    problem_id: Mapped[int | None] = mapped_column(ForeignKey("problems.id"))
    claim_id: Mapped[int | None] = mapped_column(ForeignKey("activity_claims.id"))
    redemption_id: Mapped[int | None] = mapped_column(ForeignKey("redemption_codes.id"))
    # Who approved it: the admin who assigned, whoever closed, the cadre, the shop, the admin.
    approver_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"))
    note: Mapped[str | None] = mapped_column(Text)
    # The local day of the volunteer's own act, for the daily cap (earnings only).
    cap_day: Mapped[date | None] = mapped_column(Date)
    at: Mapped[datetime]
    # Never twice for the same event: person, reason and source in one unique key.
    key: Mapped[str | None] = mapped_column(String(120), unique=True)


class ActivityClaim(Base):
    __tablename__ = "activity_claims"
    __table_args__ = (Index("ix_activity_claims_village_status", "village_id", "status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id"), index=True)
    village_id: Mapped[int] = mapped_column(ForeignKey("areas.id"))
    activity: Mapped[str] = mapped_column(String(24))
    photo_file_id: Mapped[str] = mapped_column(String(255))
    photo_unique_id: Mapped[str] = mapped_column(String(64))
    text: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(12), default="pending")  # pending|approved|refused
    created_at: Mapped[datetime]
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"))
    decided_at: Mapped[datetime | None]
    refusal_reason: Mapped[str | None] = mapped_column(Text)
    # The Telegram update that decided it: that update, run again, finds its decision made.
    decided_update_id: Mapped[int | None]


class RedemptionCode(Base):
    """A one-time code a volunteer shows at a shop. ``live_code`` holds the code while it can
    be used (NULL once used, replaced or found expired): its unique index keeps live codes
    apart, while the same six digits may come round again later."""

    __tablename__ = "redemption_codes"
    __table_args__ = (
        CheckConstraint("amount IS NULL OR amount > 0", name="amount_positive"),
        Index("ix_redemption_codes_code", "code"),
        Index("ix_redemption_codes_shop_used", "shop_id", "used_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id"), index=True)
    code: Mapped[str] = mapped_column(String(6))
    live_code: Mapped[str | None] = mapped_column(String(6), unique=True)
    issued_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
    shop_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"))
    shop_area_id: Mapped[int | None] = mapped_column(ForeignKey("areas.id"))
    amount: Mapped[int | None]
    # The Telegram update whose checkout used it: that update, run again, finds it used.
    used_update_id: Mapped[int | None]


class CheckoutAttempt(Base):
    """Every /checkout a shop makes, and how it ended: wrong codes lock a guessing shop out."""

    __tablename__ = "checkout_attempts"
    __table_args__ = (Index("ix_checkout_attempts_shop_at", "shop_id", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("people.id"))
    code: Mapped[str] = mapped_column(String(16))
    amount: Mapped[int | None]
    outcome: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime]
