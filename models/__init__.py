"""SQLAlchemy tables, one module per aggregate. Importing this package registers them all."""

from models.base import Base
from models.broadcasts import Announcement, ScheduleRun
from models.drafts import Draft
from models.inbox import InboxUpdate
from models.org import Area, Chat, Invite, InviteUse, Person, RoleGrant
from models.outbox import OutboxMessage
from models.points import (
    ActivityClaim,
    CheckoutAttempt,
    PointsAccount,
    PointsEntry,
    RedemptionCode,
)
from models.problems import IntakePart, Problem, ProblemEvent, ProblemPhoto
from models.rankings import RankingSnapshot, RankingSnapshotRow

__all__ = [
    "ActivityClaim",
    "Announcement",
    "Area",
    "Base",
    "Chat",
    "CheckoutAttempt",
    "Draft",
    "InboxUpdate",
    "IntakePart",
    "Invite",
    "InviteUse",
    "OutboxMessage",
    "Person",
    "PointsAccount",
    "PointsEntry",
    "Problem",
    "ProblemEvent",
    "ProblemPhoto",
    "RankingSnapshot",
    "RankingSnapshotRow",
    "RedemptionCode",
    "RoleGrant",
    "ScheduleRun",
]
