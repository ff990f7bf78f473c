"""Roles, who may invite whom, and which commands each role has (pure rules)."""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum


class Role(StrEnum):
    admin = "admin"
    leader = "leader"
    liaison = "liaison"
    inspector = "inspector"
    cadre = "cadre"
    volunteer = "volunteer"
    shop = "shop"


class AreaKind(StrEnum):
    district = "district"
    subject = "subject"
    village = "village"


# The level of area each role is attached to when invited.
ROLE_AREA_KIND: dict[Role, AreaKind] = {
    Role.admin: AreaKind.district,
    Role.leader: AreaKind.district,
    Role.liaison: AreaKind.subject,
    Role.inspector: AreaKind.subject,
    Role.cadre: AreaKind.village,
    Role.volunteer: AreaKind.village,
    Role.shop: AreaKind.village,
}


def parse_role(text: str) -> Role | None:
    try:
        return Role(text.strip().lower())
    except ValueError:
        return None


def invitable_roles(inviter_roles: Iterable[Role]) -> list[Role]:
    """Admins invite anyone; a cadre invites volunteers of their own village."""
    held = set(inviter_roles)
    if Role.admin in held:
        return list(Role)
    if Role.cadre in held:
        return [Role.volunteer]
    return []


def may_invite(
    inviter_roles: Iterable[Role], inviter_area_ids: Iterable[int], role: Role, area_id: int
) -> bool:
    held = set(inviter_roles)
    if Role.admin in held:
        return True
    return role is Role.volunteer and Role.cadre in held and area_id in set(inviter_area_ids)


# Commands by who may use them; /help lists the union for the asker, in this order.
EVERYONE_COMMANDS: tuple[str, ...] = ("start", "help", "lang")
# Anyone who has joined (holds any role): reporting in private, looking at a problem.
MEMBER_COMMANDS: tuple[str, ...] = ("report", "issue", "cancel")
ROLE_COMMANDS: dict[Role, tuple[str, ...]] = {
    Role.admin: (
        "issues",
        "remind",
        "invite",
        "bindgroup",
        "rank",
        "export",
        "adjust",
        "ledger",
        "leaderboard",
        "parked",
        "summary",
        "announce",
        "announcements",
    ),
    Role.cadre: ("invite", "rank", "claims", "leaderboard"),
    Role.leader: ("summary", "issues", "rank", "export"),
    Role.liaison: ("issues", "rectified", "rank"),
    Role.inspector: ("issues", "rank"),
    Role.volunteer: ("rank", "claim", "points", "redeem"),
    Role.shop: ("checkout", "shop"),
}
GROUP_COMMANDS: tuple[str, ...] = ("help", "report", "issue", "rank")
GROUP_ADMIN_COMMANDS: tuple[str, ...] = (
    "bindgroup",
    "help",
    "report",
    "issue",
    "issues",
    "rank",
    "leaderboard",
)


# Who may list problems (/issues): those who assign, lead, answer for or check them.
LIST_ROLES = frozenset({Role.admin, Role.leader, Role.liaison, Role.inspector})


def may_report_privately(roles: Iterable[Role]) -> bool:
    """A private /report needs a role: people join through an invite link first. (A tagged
    photo in a bound work group is open to every member: grid workers may never have joined.)"""
    return bool(set(roles))


def may_list_problems(roles: Iterable[Role]) -> bool:
    return bool(LIST_ROLES & set(roles))


def may_view_problem(roles: Iterable[Role], *, is_reporter: bool) -> bool:
    """A problem's card: anyone who has joined, and its own reporter (who may not have)."""
    return bool(set(roles)) or is_reporter


def commands_for(roles: Iterable[Role]) -> list[str]:
    held = set(roles)
    commands = list(EVERYONE_COMMANDS)
    if held:
        commands += MEMBER_COMMANDS
    for role in Role:  # a stable order whatever order the roles came in
        if role in held:
            commands += [c for c in ROLE_COMMANDS[role] if c not in commands]
    return commands
