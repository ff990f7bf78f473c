"""SQLAlchemy tables, one module per aggregate. Importing this package registers them all."""

from models.base import Base
from models.drafts import Draft
from models.inbox import InboxUpdate
from models.org import Area, Chat, Invite, InviteUse, Person, RoleGrant
from models.outbox import OutboxMessage
from models.problems import IntakePart, Problem, ProblemEvent, ProblemPhoto

__all__ = [
    "Area",
    "Base",
    "Chat",
    "Draft",
    "InboxUpdate",
    "IntakePart",
    "Invite",
    "InviteUse",
    "OutboxMessage",
    "Person",
    "Problem",
    "ProblemEvent",
    "ProblemPhoto",
    "RoleGrant",
]
