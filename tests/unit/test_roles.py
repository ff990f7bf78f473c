import pytest

from bot.services.roles import Role, commands_for, invitable_roles, may_invite, parse_role

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
    everyone = ["start", "help", "lang", "report", "issue", "cancel"]
    assert commands_for([]) == everyone
    assert commands_for([A]) == [*everyone, "issues", "remind", "invite", "bindgroup", "parked"]
    assert commands_for([V, C]) == [*everyone, "invite"]
    assert commands_for([Role.liaison]) == [*everyone, "issues", "rectified"]


@pytest.mark.parametrize(
    ("text", "role"), [("ADMIN", A), (" cadre ", C), ("管理员", None), ("", None)]
)
def test_parse_role(text: str, role: Role | None) -> None:
    assert parse_role(text) is role
