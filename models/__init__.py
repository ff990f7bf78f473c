"""SQLAlchemy tables, one module per aggregate. Importing this package registers them all."""

from models.base import Base
from models.org import Area, Chat, Invite, InviteUse, Person, RoleGrant

__all__ = ["Area", "Base", "Chat", "Invite", "InviteUse", "Person", "RoleGrant"]
