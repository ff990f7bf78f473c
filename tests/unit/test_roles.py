import pytest

from bot.services.roles import (
    Role,
    commands_for,
    invitable_roles,
    may_invite,
    may_list_problems,
    may_report_privately,
    may_view_problem,
    parse_role,
)

A, L, C, V = Role.admin, Role.liaison, Role.cadre, Role.volunteer


@pytest.mark.parametrize(
    ("held", "areas", "role", "area", "allowed"),
    [
        ({A}, [], L, 5, True),
        ({A}, [], A, 1, True),
        ({C}, [7], V, 7, True),
        ({C}, [7], V, 8, False),  # another village
        ({C}, [7], L, 7, False),  # cadres invite volunteers only
        ({L}, [], V, 7, False),
        (set(), [], V, 7, False),
        ({V}, [7], V, 7, False),
    ],
)
def test_may_invite(
    held: set[Role], areas: list[int], role: Role, area: int, allowed: bool
) -> None:
    assert may_invite(held, areas, role, area) is allowed


def test_invitable_roles() -> None:
    assert invitable_roles({A}) == list(Role)
    assert invitable_roles({C, V}) == [V]
    assert invitable_roles({V}) == []


def test_commands_per_role() -> None:
    member = ["start", "help", "lang", "report", "issue", "cancel"]
    assert commands_for([]) == ["start", "help", "lang"]  # join through an invite link first
    assert commands_for([V]) == [*member, "rank", "claim", "points", "redeem"]
    admin = [
        *("issues", "remind", "invite", "bindgroup", "rank", "export"),
        *("adjust", "ledger", "leaderboard", "parked", "summary", "announce", "announcements"),
    ]
    assert commands_for([A]) == [*member, *admin]
    assert commands_for([V, C]) == [
        *member,
        *("invite", "rank", "claims", "leaderboard"),
        *("claim", "points", "redeem"),
    ]
    assert commands_for([Role.liaison]) == [*member, "issues", "rectified", "rank"]
    assert commands_for([Role.leader]) == [*member, "summary", "issues", "rank", "export"]
    assert commands_for([Role.shop]) == [*member, "checkout", "shop"]


@pytest.mark.parametrize(
    ("held", "reporter", "report", "list_", "view"),
    [
        (set(), False, False, False, False),  # a stranger
        (set(), True, False, False, True),  # a grid worker who reported in the group
        ({V}, False, True, False, True),
        ({C}, False, True, False, True),
        ({Role.shop}, False, True, False, True),
        ({L}, False, True, True, True),
        ({Role.inspector}, False, True, True, True),
        ({Role.leader}, False, True, True, True),
        ({A}, False, True, True, True),
    ],
)
def test_who_may_report_list_and_view(
    held: set[Role], reporter: bool, report: bool, list_: bool, view: bool
) -> None:
    assert may_report_privately(held) is report
    assert may_list_problems(held) is list_
    assert may_view_problem(held, is_reporter=reporter) is view


@pytest.mark.parametrize(
    ("text", "role"), [("ADMIN", A), (" cadre ", C), ("管理员", None), ("", None)]
)
def test_parse_role(text: str, role: Role | None) -> None:
    assert parse_role(text) is role
