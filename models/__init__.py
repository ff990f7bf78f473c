"""SQLAlchemy tables, one module per aggregate. Importing this package registers them all."""

from models.base import Base
from models.drafts import Draft
from models.org import Area, Chat, Invite, InviteUse, Person, RoleGrant
from models.outbox import OutboxMessage
from models.problems import IntakePart, Problem, ProblemEvent, ProblemPhoto
from models.rankings import RankingSnapshot, RankingSnapshotRow

__all__ = [
    "Area",
    "Base",
    "Chat",
    "Draft",
    "IntakePart",
    "Invite",
    "InviteUse",
    "OutboxMessage",
    "Person",
    "Problem",
    "ProblemEvent",
    "ProblemPhoto",
    "RankingSnapshot",
    "RankingSnapshotRow",
    "RoleGrant",
]
