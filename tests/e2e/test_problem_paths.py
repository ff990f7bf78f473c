"""The problem loop's other paths: forged taps, a typed rejection, /rectified, the reporter
told of a category change, photos in an unbound group, /report and /invite in the wrong place."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

import models
from bot.harness import Harness
from bot.sandbox import tiny_png
from bot.services import people, problems
from bot.services.problem_machine import Action
from bot.services.problems import PhotoIn, ProblemView, ReportIn
from tests.e2e.conftest import ADMIN, STRANGER
from tests.e2e.helpers import table_counts
from tests.e2e.test_problems import (
    GROUP,
    INSPECTOR,
    LIAISON,
    OTHER_LIAISON,
    VOLUNTEER,
    _assign,
    _code,
    _problem,
    _report_in_group,
    loop,
)

__all__ = ["loop"]  # the fixture, shared with test_problems


async def _submitted(h: Harness) -> str:
    """A problem reported, assigned, and its rectification submitted (awaiting verification)."""
    card = await _report_in_group(h)
    code = _code(card)
    await _assign(h, card)
    async with h.db.begin() as session:
        photo = await session.scalar(select(models.ProblemPhoto.file_id))
        liaison = await people.person_id_for(session, LIAISON)
        assert photo is not None and liaison is not None
        done = await problems.transition(
            session,
            code,
            Action.submit,
            liaison,
            now=h.services.now(),
            reason="已整改",
            after_photos=[PhotoIn(photo, "after-1")],
        )
    assert isinstance(done, ProblemView)
    return code


async def test_forged_verify_and_extension_taps_are_refused(loop: Harness) -> None:
    """Pass, fail and approve-extension taps (or forged data) from a volunteer, a stranger, the
    wrong town's liaison or the town's own liaison: refused, nothing changes."""
    code = await _submitted(loop)
    card = await loop.reply_to(ADMIN, "/help")  # any message will do to tap on
    before = await table_counts(loop)
    for who in (VOLUNTEER, STRANGER, OTHER_LIAISON, LIAISON):
        for verb in ("ok", "no", "exy"):
            answer = await loop.press_answer(who, card, data=f"p:{verb}:{code}")
            assert "没有权限" in answer, (who, verb, answer)
    assert await table_counts(loop) == before
    assert (await _problem(loop, code)).status == "pending_check"


async def test_reject_with_a_typed_reason(loop: Harness) -> None:
    card = await _report_in_group(loop)
    code = _code(card)
    menu = await loop.press(ADMIN, card, "不予受理")
    assert "私聊" in await loop.press_answer(ADMIN, menu, "其他原因（输入）")
    await loop.wait_for(ADMIN, loop.sb.mark() - 2, f"请输入 {code} 不予受理的原因")
    mark = loop.sb.mark()
    assert "已不予受理" in (await loop.reply_to(ADMIN, "位置在邻区，不属本区")).content
    problem = await _problem(loop, code)
    assert problem.status == "rejected"
    told = await loop.wait_for(INSPECTOR, mark, "不予受理")
    assert "位置在邻区，不属本区" in told.content
    assert "位置在邻区" in (await loop.wait_for(GROUP, mark, "不予受理")).content


async def test_rectified_command_submits(loop: Harness) -> None:
    card = await _report_in_group(loop)
    code = _code(card)
    await _assign(loop, card)
    mark = loop.sb.mark()
    loop.sb.send_text(LIAISON, f"/rectified {code.lower()}")
    await loop.wait_for(LIAISON, mark, f"提交 {code} 的整改：请发送整改后的照片")
    mark = loop.sb.mark()
    loop.sb.send_photo(LIAISON, image=tiny_png(31))
    received = await loop.wait_for(LIAISON, mark, "已收到照片")
    assert "整改情况" in (await loop.press(LIAISON, received, "完成")).content
    mark = loop.sb.mark()
    assert "已提交" in (await loop.reply_to(LIAISON, "垃圾已清运")).content
    assert "请核查" in (await loop.wait_for(INSPECTOR, mark, "请核查")).content
    problem = await _problem(loop, code)
    assert problem.status == "pending_check" and problem.submitted_on_time is True


async def test_reporter_is_told_when_an_admin_changes_the_category(loop: Harness) -> None:
    card = await _report_in_group(loop, caption="#问题 这里有情况")
    code = _code(card)
    mark = loop.sb.mark()
    chosen = await loop.press(ADMIN, card, "噪声")
    assert "类别：噪声" in chosen.content
    told = await loop.wait_for(INSPECTOR, mark, "类别已改为")
    assert code in told.content and "噪声" in told.content
    assert (await _problem(loop, code)).category == "noise"


async def test_tagged_photos_in_an_unbound_group_are_answered_once(loop: Harness) -> None:
    """Not bound: the bot cannot tell whose problem it is. A tagged photo or album gets one
    clear answer (not one per picture) and nothing is stored; untagged photos get none."""
    unbound = -100901
    loop.sb.add_group(
        unbound, "未绑定的群", admins=[ADMIN], bot_is_admin=True, members=[ADMIN, INSPECTOR]
    )
    before = await table_counts(loop)
    mark = loop.sb.mark()
    await loop.sb.send_album(INSPECTOR, 3, chat_id=unbound, caption="#问题 河边垃圾")
    loop.sb.send_photo(INSPECTOR, chat_id=unbound, caption="#问题 又一处")
    loop.sb.send_photo(INSPECTOR, chat_id=unbound, caption="随手拍")
    loop.sb.send_text(ADMIN, "/help", chat_id=unbound)
    await loop.wait_for(unbound, mark, "可用功能")  # updates are handled in order: photos first
    answers = [m.content for m in loop.sb.sent(unbound) if m.seq > mark]
    assert len([a for a in answers if "本群还未绑定" in a]) == 2
    assert len(answers) == 3  # the two answers and /help
    after = await table_counts(loop)
    assert after["problems"] == before["problems"] and after["intake_parts"] == 0


async def test_report_and_invite_in_the_wrong_place(loop: Harness) -> None:
    before = await table_counts(loop)
    not_a_reply = await loop.reply_to(INSPECTOR, "/report", chat_id=GROUP)
    assert "请回复一条带照片的消息" in not_a_reply.content
    invite = await loop.reply_to(ADMIN, "/invite", chat_id=GROUP)
    assert "请在与我的私聊中使用 /invite" in invite.content
    assert await table_counts(loop) == before


async def _many_problems(h: Harness, n: int, assigned: dict[str, int]) -> None:
    """``n`` problems; the first ones assigned, ``assigned[subject code]`` to each subject."""
    now = h.services.now()
    async with h.db.begin() as session:
        reporter = await people.person_id_for(session, INSPECTOR)
        admin = await people.person_id_for(session, ADMIN)
        assert reporter is not None and admin is not None
        codes = []
        for i in range(n):
            result = await problems.report_problem(
                session,
                ReportIn(reporter, "noise", f"第{i + 1}处", [], None, None),
                now=now,
                code_prefix="NH",
                zone_year=problems.code_year(now, h.services.settings.zone),
            )
            codes.append(result.problem.code)
        for subject, count in assigned.items():
            area = await session.scalar(select(models.Area.id).where(models.Area.code == subject))
            for _ in range(count):
                done = await problems.transition(
                    session,
                    codes.pop(0),
                    Action.assign,
                    admin,
                    now=now,
                    subject_id=area,
                    deadline=now + timedelta(days=7),
                )
                assert isinstance(done, ProblemView)


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("NH-")]


async def test_issues_pages_and_filters(loop: Harness) -> None:
    await _many_problems(loop, 12, {"NH-DQ": 3, "NH-XS": 2})
    first = await loop.reply_to(ADMIN, "/issues")  # the message is edited in place from here
    page_one = _lines(first.content)
    assert "未办结问题 12 个（第 1/2 页）" in first.content and len(page_one) == 10
    assert first.buttons == [["下一页 ▶"]]
    second = await loop.press(ADMIN, first, "下一页 ▶")
    page_two = _lines(second.content)
    assert "（第 2/2 页）" in second.content and len(page_two) == 2
    assert second.buttons == [["◀ 上一页"]]
    assert set(page_one).isdisjoint(page_two)
    back = await loop.press(ADMIN, second, "◀ 上一页")
    assert _lines(back.content) == page_one
    town = await loop.reply_to(ADMIN, "/issues 西山街道")
    assert "未办结问题 2 个" in town.content
    assert all("西山街道" in line for line in _lines(town.content))
    rectifying = await loop.reply_to(ADMIN, "/issues rectifying")
    assert "未办结问题 5 个" in rectifying.content and town.buttons == []
    both = await loop.reply_to(LIAISON, "/issues rectifying NH-DQ")
    assert "未办结问题 3 个" in both.content
    assert "未办结问题 7 个" in (await loop.reply_to(ADMIN, "/issues reported")).content
    # Forged or outdated paging data: refused, or the last page that exists.
    for data in ("ls:x:", "ls:0:status=bogus", "ls:0:subject_id=x", "ls:0:evil=1", "ls:0"):
        assert "失效" in await loop.press_answer(ADMIN, first, data=data), data
    mark = loop.sb.mark()
    loop.sb.press(ADMIN, first, data="ls:99:")
    assert "（第 2/2 页）" in (await loop.sb.wait_change(first, since=mark)).content
