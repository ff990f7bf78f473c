"""Services against a real database, on SQLite and PostgreSQL."""

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bot.db import Database
from bot.services import chats, invites, org, people
from bot.services.invites import InviteRefusal, InviteView, JoinOutcome
from bot.services.org import OrgFileError, import_org, parse_org_file
from bot.services.roles import Role
from models import Area, Invite, InviteUse, RoleGrant

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
NOW = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)


async def _setup(db: Database) -> tuple[people.Actor, dict[str, int]]:
    async with db.begin() as s:
        await import_org(s, parse_org_file(EXAMPLES / "org.yaml"))
        ids = {a.code: a.id for a in (await s.scalars(select(Area))).all()}
        admin = await people.ensure_person(s, 1001, "Admin", None, private=True)
        await people.ensure_configured_admin(s, admin, [1001], ids["NH"])
        actor = await people.load_actor(s, admin)
    return actor, ids


async def test_import_is_idempotent_and_formats_agree(db: Database) -> None:
    async with db.begin() as s:
        first = await import_org(s, parse_org_file(EXAMPLES / "org.yaml"))
    async with db.begin() as s:
        again = await import_org(s, parse_org_file(EXAMPLES / "org.yaml"))
        from_csv = await import_org(s, parse_org_file(EXAMPLES / "org.csv"))
        rows = (await s.execute(select(Area.code, Area.kind, Area.name, Area.parent_id))).all()
    assert len(first.created) == 9 and again.created == [] and again.updated == []
    assert again.unchanged == 9 and from_csv.unchanged == 9
    by_code = {r.code: r for r in rows}
    assert by_code["NH-DQ-01"].kind == "village"
    assert by_code["NH-DQ"].name == "东桥镇"


async def test_import_updates_a_renamed_area(db: Database, tmp_path: Path) -> None:
    async with db.begin() as s:
        await import_org(s, parse_org_file(EXAMPLES / "org.yaml"))
    changed = tmp_path / "org.yaml"
    changed.write_text(
        (EXAMPLES / "org.yaml").read_text(encoding="utf-8").replace("北湖村", "北湖新村"),
        encoding="utf-8",
    )
    async with db.begin() as s:
        result = await import_org(s, parse_org_file(changed))
        name = await s.scalar(select(Area.name).where(Area.code == "NH-BH-01"))
    assert result.updated == ["NH-BH-01"] and name == "北湖新村"


@pytest.mark.parametrize(
    ("content", "suffix", "says"),
    [
        ("subjects: []\n", ".yaml", "district"),
        ("kind,code,name,parent_code\nvillage,V1,村,NOPE\n", ".csv", "parent"),
        ("kind,code,name\n", ".csv", "parent_code"),
        ("kind,code,name,parent_code\ncity,X,城,\n", ".csv", "kind must be"),
        ("district: {code: A, name: 区}\nsubjects:\n  - {code: A, name: 镇}\n", ".yaml", "twice"),
        ("\udcff", ".yaml", "cannot read"),
    ],
)
def test_bad_org_files(tmp_path: Path, content: str, suffix: str, says: str) -> None:
    path = tmp_path / f"org{suffix}"
    path.write_bytes(content.encode("utf-8", "surrogateescape"))
    with pytest.raises(OrgFileError, match=says):
        parse_org_file(path)


async def test_invite_lifecycle(db: Database) -> None:
    admin, ids = await _setup(db)
    async with db.begin() as s:
        single = await invites.create_invite(
            s, admin, Role.liaison, ids["NH-DQ"], max_uses=1, valid_for=timedelta(days=7), now=NOW
        )
        wrong_level = await invites.create_invite(
            s,
            admin,
            Role.liaison,
            ids["NH-DQ-01"],
            max_uses=1,
            valid_for=timedelta(days=7),
            now=NOW,
        )
        p1 = await people.ensure_person(s, 2001, "Liaison", None)
        p2 = await people.ensure_person(s, 2002, "Latecomer", None)
    assert isinstance(single, InviteView) and wrong_level is InviteRefusal.wrong_area_kind
    async with db.begin() as s:
        joined = await invites.join_with_invite(s, single.code, p1.id, NOW)
        again = await invites.join_with_invite(s, single.code, p1.id, NOW)
        used_up = await invites.join_with_invite(s, single.code, p2.id, NOW)
        unknown = await invites.join_with_invite(s, "nope", p2.id, NOW)
        actor = await people.load_actor(s, p1)
    assert (joined.outcome, again.outcome) == (JoinOutcome.joined, JoinOutcome.already_member)
    assert used_up.outcome is JoinOutcome.used_up and unknown.outcome is JoinOutcome.unknown
    assert actor.role_set == {Role.liaison} and actor.roles[0].area_name == "东桥镇"


async def test_a_role_holder_does_not_use_up_a_single_use_link(db: Database) -> None:
    """Someone who already is the town's liaison opens the link meant for a colleague: told
    they are already a member, and the link still works for the colleague."""
    admin, ids = await _setup(db)
    async with db.begin() as s:
        single = await invites.create_invite(
            s, admin, Role.liaison, ids["NH-DQ"], max_uses=1, valid_for=timedelta(days=7), now=NOW
        )
        assert isinstance(single, InviteView)
        holder = await people.ensure_person(s, 2001, "Liaison", None)
        await people.grant_role(s, holder.id, Role.liaison, ids["NH-DQ"])
        colleague = await people.ensure_person(s, 2002, "Colleague", None)
    async with db.begin() as s:
        holder_tries = await invites.join_with_invite(s, single.code, holder.id, NOW)
        count = await s.scalar(select(Invite.use_count).where(Invite.code == single.code))
    assert holder_tries.outcome is JoinOutcome.already_member and count == 0
    async with db.begin() as s:
        colleague_joins = await invites.join_with_invite(s, single.code, colleague.id, NOW)
    assert colleague_joins.outcome is JoinOutcome.joined


async def test_expired_and_multi_use(db: Database) -> None:
    admin, ids = await _setup(db)
    async with db.begin() as s:
        multi = await invites.create_invite(
            s,
            admin,
            Role.volunteer,
            ids["NH-DQ-01"],
            max_uses=None,
            valid_for=timedelta(days=1),
            now=NOW,
        )
        assert isinstance(multi, InviteView)
        persons = [await people.ensure_person(s, 3000 + i, f"V{i}", None) for i in range(5)]
    async with db.begin() as s:
        outcomes = [
            (await invites.join_with_invite(s, multi.code, p.id, NOW)).outcome for p in persons[:4]
        ]
        late = await invites.join_with_invite(s, multi.code, persons[4].id, NOW + timedelta(days=1))
        count = await s.scalar(select(Invite.use_count).where(Invite.code == multi.code))
    assert outcomes == [JoinOutcome.joined] * 4
    assert late.outcome is JoinOutcome.expired and count == 4


async def test_cadre_invites_only_volunteers_of_own_village(db: Database) -> None:
    _admin, ids = await _setup(db)
    async with db.begin() as s:
        cadre = await people.ensure_person(s, 4001, "Cadre", None)
        await people.grant_role(s, cadre.id, Role.cadre, ids["NH-DQ-01"])
        actor = await people.load_actor(s, cadre)
        own = await invites.create_invite(
            s,
            actor,
            Role.volunteer,
            ids["NH-DQ-01"],
            max_uses=1,
            valid_for=timedelta(days=1),
            now=NOW,
        )
        other = await invites.create_invite(
            s,
            actor,
            Role.volunteer,
            ids["NH-DQ-02"],
            max_uses=1,
            valid_for=timedelta(days=1),
            now=NOW,
        )
        liaison = await invites.create_invite(
            s, actor, Role.liaison, ids["NH-DQ"], max_uses=1, valid_for=timedelta(days=1), now=NOW
        )
    assert isinstance(own, InviteView)
    assert other is InviteRefusal.not_allowed and liaison is InviteRefusal.not_allowed


async def test_last_use_race_has_one_winner(db: Database) -> None:
    """Two people opening a single-use link at the same moment: exactly one joins."""
    admin, ids = await _setup(db)
    async with db.begin() as s:
        invite = await invites.create_invite(
            s,
            admin,
            Role.inspector,
            ids["NH-XS"],
            max_uses=1,
            valid_for=timedelta(days=1),
            now=NOW,
        )
        assert isinstance(invite, InviteView)
        racers = [await people.ensure_person(s, 5000 + i, f"R{i}", None) for i in range(4)]

    async def attempt(person_id: int) -> JoinOutcome:
        async with db.begin() as s:
            return (await invites.join_with_invite(s, invite.code, person_id, NOW)).outcome

    outcomes = await asyncio.gather(*(attempt(p.id) for p in racers))
    assert sorted(outcomes) == sorted([JoinOutcome.joined] + [JoinOutcome.used_up] * 3)
    async with db.begin() as s:
        assert await s.scalar(select(func.count()).select_from(InviteUse)) == 1
        assert (
            await s.scalar(
                select(func.count()).select_from(RoleGrant).where(RoleGrant.role == "inspector")
            )
            == 1
        )


async def test_bind_group(db: Database) -> None:
    admin, ids = await _setup(db)
    async with db.begin() as s:
        village = await chats.bind_group(
            s, -100, "群", ids["NH-DQ-01"], by_person_id=admin.person_id, now=NOW
        )
        bound = await chats.bind_group(
            s, -100, "群", ids["NH-DQ"], by_person_id=admin.person_id, now=NOW
        )
        rebound = await chats.bind_group(
            s, -100, "新群名", ids["NH"], by_person_id=admin.person_id, now=NOW
        )
    async with db.begin() as s:
        now_bound = await chats.binding_of(s, -100)
        nothing = await chats.binding_of(s, -200)
    assert village is None and bound is not None and bound.area_name == "东桥镇"
    assert rebound is not None and now_bound == rebound and now_bound.area_name == "南湖区"
    assert nothing is None


async def test_admin_from_config_gets_district_when_imported_later(db: Database) -> None:
    async with db.begin() as s:
        person = await people.ensure_person(s, 1001, "Admin", None)
        await people.ensure_configured_admin(s, person, [1001], None)
        await people.ensure_configured_admin(s, person, [1001], None)  # twice: one grant
        await import_org(s, parse_org_file(EXAMPLES / "org.yaml"))
        district = await org.district(s)
        assert district is not None
        await people.ensure_configured_admin(s, person, [1001], district.id)
        actor = await people.load_actor(s, person)
        stranger = await people.ensure_person(s, 9, "Stranger", None)
        await people.ensure_configured_admin(s, stranger, [1001], district.id)
        assert (await people.load_actor(s, stranger)).roles == ()
    assert [(r.role, r.area_name) for r in actor.roles] == [(Role.admin, "南湖区")]


async def test_nearby_duplicates_within_200_m_and_7_days(db: Database) -> None:
    from bot.services.problems import PhotoIn, ReportIn, find_duplicates, report_problem

    async with db.begin() as s:
        reporter = await people.ensure_person(s, 7001, "R", None)
        first = await report_problem(
            s,
            ReportIn(
                reporter.id,
                "open_burning",
                "a",
                [PhotoIn("f1", "u1")],
                1,
                "k1",
                latitude=30.75,
                longitude=120.76,
            ),
            now=NOW,
            code_prefix="NH",
            zone_year=2026,
        )
    lat_150m = 30.75 + 150 / 111_000
    lat_300m = 30.75 + 300 / 111_000
    async with db.begin() as s:
        near = await find_duplicates(s, ["other"], "open_burning", lat_150m, 120.76, NOW)
        far = await find_duplicates(s, ["other"], "open_burning", lat_300m, 120.76, NOW)
        other_kind = await find_duplicates(s, ["other"], "noise", lat_150m, 120.76, NOW)
        later = await find_duplicates(
            s, ["other"], "open_burning", lat_150m, 120.76, NOW + timedelta(days=8)
        )
        same_photo = await find_duplicates(s, ["u1"], "noise", None, None, NOW)
    code = first.problem.code
    assert [(d.code, d.why) for d in near] == [(code, "nearby")]
    assert far == [] and other_kind == [] and later == []
    assert [(d.code, d.why) for d in same_photo] == [(code, "same_photo")]
