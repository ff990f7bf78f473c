"""The closed loop end to end: report in the group → assign → rectify → verify (fail, then
pass) → closed; rejections, extensions, refusals, notices, duplicates, lists and cards."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select

import models
from bot.harness import Harness
from bot.sandbox import SentMessage, tiny_png
from bot.services import people, problems
from bot.services.problem_machine import Action
from bot.services.problems import PhotoIn, ProblemView, ReportIn
from bot.services.roles import Role
from tests.e2e.conftest import ADMIN, STRANGER
from tests.e2e.helpers import grant, problem_code, table_counts

GROUP = -100900
LIAISON, OTHER_LIAISON, INSPECTOR, VOLUNTEER = 2001, 2002, 2101, 4001


@pytest.fixture
async def loop(bot: Harness) -> Harness:
    """The district's people with their roles, each having opened the bot; the work group
    bound to 东桥镇 with the bot as its admin (so it sees every photo)."""
    bot.sb.add_user(INSPECTOR, "张网格")
    for uid, role, area in [
        (LIAISON, Role.liaison, "NH-DQ"),
        (OTHER_LIAISON, Role.liaison, "NH-XS"),
        (INSPECTOR, Role.inspector, "NH-DQ"),
        (VOLUNTEER, Role.volunteer, "NH-DQ-01"),
    ]:
        await grant(bot, uid, role, area)
    for uid in (ADMIN, LIAISON, OTHER_LIAISON, INSPECTOR, VOLUNTEER, STRANGER):
        await bot.reply_to(uid, "/start")
    bot.sb.add_group(
        GROUP,
        "东桥镇生态环境工作群",
        admins=[ADMIN],
        bot_is_admin=True,
        members=[ADMIN, LIAISON, INSPECTOR, VOLUNTEER, STRANGER],
    )
    bound = await bot.reply_to(ADMIN, "/bindgroup NH-DQ", chat_id=GROUP)
    assert "本群已绑定到东桥镇" in bound.content
    return bot


async def _report_in_group(h: Harness, caption: str = "#问题 河边有人露天焚烧垃圾") -> SentMessage:
    mark = h.sb.mark()
    h.sb.send_photo(INSPECTOR, chat_id=GROUP, caption=caption)
    return (await h.sb.wait_messages(GROUP, n=1, since=mark))[0]


async def _problem(h: Harness, code: str) -> models.Problem:
    async with h.db.begin() as session:
        problem: models.Problem = (
            await session.scalars(select(models.Problem).where(models.Problem.code == code))
        ).one()
        return problem


async def _count(h: Harness, model: type[models.Base]) -> int:
    async with h.db.begin() as session:
        return await session.scalar(select(func.count()).select_from(model)) or 0


def _code(card: SentMessage) -> str:
    return card.content.split("【", 1)[1].split("】", 1)[0]


async def _assign(h: Harness, card: SentMessage) -> None:
    """The admin assigns to the group's subject with the category's default deadline."""
    menu = await h.press(ADMIN, card, "交办")
    menu = await h.press(ADMIN, menu, "✓ 东桥镇")
    assert "已交办" in await h.press_answer(ADMIN, menu, menu.buttons[0][0])


async def test_photo_report_in_group_becomes_a_problem(loop: Harness) -> None:
    card = await _report_in_group(loop)
    code = _code(card)
    assert code == problem_code(loop, 1) and f"已登记为问题 {code}" in card.content
    assert "类别：露天焚烧" in card.content  # guessed from the caption
    assert card.buttons[-1] == ["交办", "不予受理"]
    problem = await _problem(loop, code)
    assert problem.status == "reported" and problem.description == "河边有人露天焚烧垃圾"
    assert await _count(loop, models.ProblemPhoto) == 1


async def test_untagged_photo_is_ignored(loop: Harness) -> None:
    before = len(loop.sb.sent(GROUP))
    loop.sb.send_photo(INSPECTOR, chat_id=GROUP, caption="今天天气不错")
    loop.sb.send_photo(INSPECTOR, chat_id=GROUP)
    await loop.reply_to(ADMIN, "/help", chat_id=GROUP)  # processed in order: the photos came first
    assert len(loop.sb.sent(GROUP)) == before + 1
    assert await _count(loop, models.Problem) == 0


async def test_album_of_ten_out_of_order_is_one_problem(loop: Harness) -> None:
    mark = loop.sb.mark()
    await loop.sb.send_album(
        INSPECTOR, 10, chat_id=GROUP, caption="#report 河边情况不明", shuffle=True, delay_s=0.3
    )
    card = (await loop.sb.wait_messages(GROUP, n=1, since=mark, timeout=15))[0]
    assert _code(card) == problem_code(loop, 1)
    assert await _count(loop, models.Problem) == 1
    assert await _count(loop, models.ProblemPhoto) == 10
    assert card.buttons[0][0] == "工业源污染"  # no guess: the category keyboard comes first
    chosen = await loop.press(INSPECTOR, card, "农村生活垃圾")  # the reporter may pick it
    assert "类别：农村生活垃圾" in chosen.content and chosen.buttons == [["交办", "不予受理"]]


async def test_report_command_as_reply_and_redelivery_make_one_problem(loop: Harness) -> None:
    photo = loop.sb.send_photo(VOLUNTEER, chat_id=GROUP, caption="这里有污水")
    mark = loop.sb.mark()
    loop.sb.send_text(INSPECTOR, "/report", chat_id=GROUP, reply_to=photo)
    card = (await loop.sb.wait_messages(GROUP, n=1, since=mark))[0]
    first = problem_code(loop, 1)
    assert _code(card) == first
    problem = await _problem(loop, first)
    async with loop.db.begin() as session:
        reporter = await session.scalar(
            select(models.Person.telegram_id).where(models.Person.id == problem.reporter_id)
        )
    assert reporter == VOLUNTEER  # the person who took the photo
    mark = loop.sb.mark()
    loop.sb.send_text(INSPECTOR, "/report", chat_id=GROUP, reply_to=photo)
    repeat = (await loop.sb.wait_messages(GROUP, n=1, since=mark))[0]
    assert f"已登记为问题 {first}" in repeat.content
    # The same Telegram message delivered twice: one problem.
    tagged = loop.sb.send_photo(INSPECTOR, chat_id=GROUP, caption="#问题 噪声扰民")
    await loop.sb.wait_messages(GROUP, n=1, since=mark + 2)
    loop.sb.queue_update({"message": tagged})
    await loop.reply_to(ADMIN, "/help", chat_id=GROUP)
    assert await _count(loop, models.Problem) == 2


async def test_strangers_and_volunteers_cannot_use_admin_buttons(loop: Harness) -> None:
    card = await _report_in_group(loop)
    before = await table_counts(loop)
    for who in (STRANGER, VOLUNTEER, LIAISON):
        assert "没有权限" in await loop.press_answer(who, card, "交办")
        assert "没有权限" in await loop.press_answer(who, card, "不予受理")
    code = _code(card)
    assert "没有权限" in await loop.press_answer(STRANGER, card, data=f"p:asg:{code}:1:3")
    # Forged or outdated data from an admin: refused as stale.
    assert "失效" in await loop.press_answer(ADMIN, card, data=f"p:asg:{code}:1:999")
    assert "失效" in await loop.press_answer(ADMIN, card, data=f"p:zap:{code}")
    assert await table_counts(loop) == before
    assert (await _problem(loop, _code(card))).status == "reported"


async def test_the_whole_loop_fail_once_then_pass(loop: Harness) -> None:
    h = loop
    card = await _report_in_group(h)
    code = _code(card)
    mark = h.sb.mark()
    menu = await h.press(ADMIN, card, "交办")
    assert menu.buttons[0] == ["✓ 东桥镇"]  # the group's subject comes first
    menu = await h.press(ADMIN, menu, "✓ 东桥镇")
    assert menu.buttons[0][0] == "3 天（默认）"  # open burning: 3 days by default
    await h.press(ADMIN, menu, "3 天（默认）")
    task = await h.wait_for(LIAISON, mark, "交办给您单位")
    assert code in task.content and task.buttons == [["提交整改", "申请延期"]]
    assert "牵头部门：农业农村局" in task.content  # open burning's lead department
    assert any(m.photo for m in h.sb.sent(LIAISON) if m.seq > mark)  # the photo came along
    in_group = (await h.wait_for(GROUP, mark, "已交办")).content
    assert "已交办给东桥镇" in in_group and "牵头部门：农业农村局" in in_group
    assert "已交办给东桥镇" in (await h.wait_for(INSPECTOR, mark, "已交办")).content
    assert OTHER_LIAISON not in {m.chat_id for m in h.sb.sent() if m.seq > mark}
    problem = await _problem(h, code)
    assert problem.status == "rectifying" and problem.deadline is not None

    async def rectify(note: str) -> None:
        prompt = await h.press(LIAISON, task, "提交整改")
        assert "请发送整改后的照片" in prompt.content
        m = h.sb.mark()
        h.sb.send_photo(LIAISON)
        received = (await h.sb.wait_messages(LIAISON, n=1, since=m))[0]
        asked = await h.press(LIAISON, received, "完成")
        assert "整改情况" in asked.content
        done = await h.reply_to(LIAISON, note)
        assert "已提交，等待核查" in done.content

    mark = h.sb.mark()
    await rectify("已清理焚烧点")
    check = await h.wait_for(INSPECTOR, mark, "请核查")
    assert check.buttons == [["通过（销号）", "不通过"]]
    assert (await _problem(h, code)).status == "pending_check"
    assert "正在核查" in (await h.wait_for(INSPECTOR, mark, "正在核查")).content  # as reporter

    # The inspector fails it with a typed reason.
    assert "私聊" in await h.press_answer(INSPECTOR, check, "不通过")
    asked = await h.wait_for(INSPECTOR, h.sb.mark() - 3, "不通过的原因")
    assert code in asked.content
    mark = h.sb.mark()
    assert "已退回整改" in (await h.reply_to(INSPECTOR, "仍有残留垃圾")).content
    back = await h.wait_for(LIAISON, mark, "核查不通过")
    assert "仍有残留垃圾" in back.content
    told = await h.wait_for(INSPECTOR, mark, "您上报的问题")  # the inspector reported it
    assert "核查未通过" in told.content and "仍有残留垃圾" in told.content
    assert (await _problem(h, code)).status == "rectifying"

    task = back
    mark = h.sb.mark()
    await rectify("残留已全部清除")
    check = await h.wait_for(ADMIN, mark, "请核查")
    mark = h.sb.mark()
    assert "已销号" in await h.press_answer(ADMIN, check, "通过（销号）")
    assert "已整改销号" in (await h.wait_for(GROUP, mark, "销号")).content
    assert "感谢" in (await h.wait_for(INSPECTOR, mark, "销号")).content
    problem = await _problem(h, code)
    assert problem.status == "closed" and problem.submitted_on_time is True
    assert await _count(loop, models.ProblemPhoto) == 3  # one before, two after

    m = h.sb.mark()
    h.sb.send_text(ADMIN, f"/issue {code}")
    history = (await h.wait_for(ADMIN, m, "处理记录")).content
    shown = [msg for msg in h.sb.sent(ADMIN) if msg.seq > m]
    assert [len(msg.photo) for msg in shown] == [1, 1, 1, 0]  # before, the after album, card
    for step in ("上报", "交办", "提交整改", "核查不通过：仍有残留垃圾", "核查通过，销号"):
        assert step in history, step
    assert "整改前 1 张，整改后 2 张" in history


async def test_reject_with_a_preset_reason(loop: Harness) -> None:
    card = await _report_in_group(loop)
    code = _code(card)
    menu = await loop.press(ADMIN, card, "不予受理")
    mark = loop.sb.mark()
    assert "已不予受理" in await loop.press_answer(ADMIN, menu, "重复上报")
    problem = await _problem(loop, code)
    assert problem.status == "rejected"
    notice = await loop.wait_for(INSPECTOR, mark, "不予受理")
    assert "重复上报" in notice.content


async def test_extension_asked_refused_then_approved(loop: Harness) -> None:
    card = await _report_in_group(loop)
    code = _code(card)
    mark = loop.sb.mark()
    await _assign(loop, card)
    task = await loop.wait_for(LIAISON, mark, "交办给您单位")
    deadline = (await _problem(loop, code)).deadline
    assert deadline is not None
    choose = await loop.press(LIAISON, task, "申请延期")
    mark = loop.sb.mark()
    assert "延期申请已提交" in await loop.press_answer(LIAISON, choose, "7 天")
    ask = await loop.wait_for(ADMIN, mark, "申请延期")
    assert (await _problem(loop, code)).extension_until == deadline + timedelta(days=7)
    assert code in (await loop.wait_for(INSPECTOR, mark, "申请了延期")).content  # the reporter
    pending = await loop.press_answer(LIAISON, choose, data=f"p:ext:{code}:3")
    assert "已有延期申请" in pending
    # Refused with a reason, then asked and approved.
    await loop.press_answer(ADMIN, ask, "不同意")
    mark = loop.sb.mark()
    await loop.reply_to(ADMIN, "理由不充分")
    assert "理由不充分" in (await loop.wait_for(LIAISON, mark, "未获批准")).content
    assert "期限仍为" in (await loop.wait_for(INSPECTOR, mark, "延期未获批准")).content
    assert (await _problem(loop, code)).deadline == deadline
    mark = loop.sb.mark()
    await loop.press_answer(LIAISON, choose, data=f"p:ext:{code}:7")
    ask = await loop.wait_for(ADMIN, mark, "申请延期")
    mark = loop.sb.mark()
    assert "已同意延期" in await loop.press_answer(ADMIN, ask, "同意延期")
    assert (await _problem(loop, code)).deadline == deadline + timedelta(days=7)
    new_deadline = loop.services.local(deadline + timedelta(days=7)).strftime("%Y-%m-%d")
    assert new_deadline in (await loop.wait_for(INSPECTOR, mark, "延期至")).content


async def test_wrong_liaison_cannot_submit(loop: Harness) -> None:
    card = await _report_in_group(loop)
    code = _code(card)
    await _assign(loop, card)
    reply = await loop.reply_to(OTHER_LIAISON, f"/rectified {code}")
    assert "没有权限" in reply.content
    unknown = await loop.reply_to(LIAISON, "/rectified NH-2099-9999")
    assert "没有编号为 NH-2099-9999 的问题" in unknown.content
    assert (await _problem(loop, code)).status == "rectifying"


async def test_duplicates_are_flagged_not_merged(loop: Harness) -> None:
    image = tiny_png(777)
    mark = loop.sb.mark()
    loop.sb.send_photo(INSPECTOR, chat_id=GROUP, image=image, caption="#问题 施工扬尘")
    first = (await loop.sb.wait_messages(GROUP, n=1, since=mark))[0]
    mark = loop.sb.mark()
    loop.sb.send_photo(VOLUNTEER, chat_id=GROUP, image=image, caption="#问题 工地扬尘")
    second = (await loop.sb.wait_messages(GROUP, n=1, since=mark))[0]
    assert _code(second) == problem_code(loop, 2)
    assert f"可能重复：{_code(first)} 使用了同一张照片" in second.content
    assert await _count(loop, models.Problem) == 2


async def test_lists_and_unknown_codes(loop: Harness) -> None:
    for _ in range(3):
        await _report_in_group(loop)
    card = await _report_in_group(loop)
    await _assign(loop, card)
    listing = await loop.reply_to(ADMIN, "/issues")
    assert "未办结问题 4 个" in listing.content
    assert "⚠️超期" not in listing.content
    loop.clock.advance(timedelta(days=10))
    overdue = await loop.reply_to(ADMIN, "/issues overdue")
    assert "未办结问题 1 个" in overdue.content and _code(card) in overdue.content
    assert "⚠️超期" in overdue.content
    assert "用法" in (await loop.reply_to(ADMIN, "/issues 火星")).content
    missing = problem_code(loop, 9999)
    assert (
        f"没有编号为 {missing} 的问题" in (await loop.reply_to(ADMIN, f"/issue {missing}")).content
    )
    assert "用法" in (await loop.reply_to(ADMIN, "/issue")).content


async def test_bad_photos_change_nothing(loop: Harness) -> None:
    before = await table_counts(loop)
    mark = loop.sb.mark()
    loop.sb.send_photo(
        INSPECTOR, chat_id=GROUP, caption="#问题 太大", declared_size=25 * 1024 * 1024
    )
    assert "超过 20MB" in (await loop.sb.wait_messages(GROUP, n=1, since=mark))[0].content
    mark = loop.sb.mark()
    loop.sb.send_document(
        INSPECTOR,
        b"%PDF-1.4",
        "report.pdf",
        "application/pdf",
        chat_id=GROUP,
        caption="#问题 见附件",
    )
    assert "不是图片" in (await loop.sb.wait_messages(GROUP, n=1, since=mark))[0].content
    assert await table_counts(loop) == before


async def test_photos_land_in_the_media_store(loop: Harness) -> None:
    image = tiny_png(4242)
    mark = loop.sb.mark()
    loop.sb.send_photo(INSPECTOR, chat_id=GROUP, image=image, caption="#问题 秸秆焚烧")
    await loop.sb.wait_messages(GROUP, n=1, since=mark)
    digest = hashlib.sha256(image).hexdigest()
    for _ in range(100):
        async with loop.db.begin() as session:
            stored = await session.scalar(select(models.ProblemPhoto.sha256))
        if stored:
            break
        await asyncio.sleep(0.05)
    assert stored == digest
    assert loop.services.media.get(digest) == image


async def test_album_parts_a_second_apart_still_make_one_problem(loop: Harness) -> None:
    mark = loop.sb.mark()
    await loop.sb.send_album(INSPECTOR, 3, chat_id=GROUP, caption="#问题 猪场粪便直排", delay_s=1.0)
    card = (await loop.sb.wait_messages(GROUP, n=1, since=mark, timeout=15))[0]
    assert "类别：畜禽粪污" in card.content  # guessed from a keyword of the category
    assert await _count(loop, models.Problem) == 1
    assert await _count(loop, models.ProblemPhoto) == 3


async def test_a_bare_tag_is_a_report_without_description(loop: Harness) -> None:
    card = await _report_in_group(loop, caption="#问题")
    assert _code(card) == problem_code(loop, 1) and "描述" not in card.content
    assert card.buttons[0][0] == "工业源污染"  # the category is asked for


async def test_numbering_restarts_after_new_year(loop: Harness) -> None:
    """The clock moved (not frozen: albums need it running) to just before New Year's Eve
    midnight, local time: the next report after midnight is number 1 of the new year."""
    zone = loop.services.settings.zone
    year = loop.services.now().astimezone(zone).year
    loop.clock.advance(datetime(year, 12, 31, 23, 59, tzinfo=zone) - loop.services.now())
    old = _code(await _report_in_group(loop))
    loop.clock.advance(timedelta(minutes=2))
    new = _code(await _report_in_group(loop, caption="#问题 有人在河边燃放烟花"))
    assert (old, new) == (f"NH-{year}-0001", f"NH-{year + 1}-0001")
    listing = (await loop.reply_to(ADMIN, "/issues")).content
    assert old in listing and new in listing


async def test_forged_assignment_to_a_village_or_nothing_is_refused(loop: Harness) -> None:
    card = await _report_in_group(loop)
    code = _code(card)
    async with loop.db.begin() as session:
        village = await session.scalar(select(models.Area.id).where(models.Area.code == "NH-DQ-01"))
    before = await table_counts(loop)
    for data in (f"p:asg:{code}:{village}:3", f"p:asg:{code}:999999:3", f"p:asg:{code}:{village}"):
        assert "请选择责任单位" in await loop.press_answer(ADMIN, card, data=data), data
    assert await table_counts(loop) == before
    problem = await _problem(loop, code)
    assert problem.status == "reported" and problem.subject_id is None


async def test_tag_run_into_the_text_or_full_width_is_a_report(loop: Harness) -> None:
    for caption, description in [
        ("#问题河道有垃圾", "河道有垃圾"),
        ("＃问题 工地扬尘", "工地扬尘"),
    ]:
        card = await _report_in_group(loop, caption=caption)
        assert "已登记为问题" in card.content, caption
        assert (await _problem(loop, _code(card))).description == description


async def test_a_long_history_comes_whole_in_messages_telegram_accepts(loop: Harness) -> None:
    """Four failed rounds with 1000-character notes and reasons: /issue shows every line of
    the history, in several messages of at most 4096 characters (before: 'message is too
    long' and an apology)."""
    card = await _report_in_group(loop)
    code = _code(card)
    await _assign(loop, card)
    async with loop.db.begin() as session:
        photo = await session.scalar(select(models.ProblemPhoto.file_id))
        liaison = await people.person_id_for(session, LIAISON)
        inspector = await people.person_id_for(session, INSPECTOR)
    assert photo is not None and liaison is not None and inspector is not None
    written = []
    for i in range(1, 5):
        note, reason = f"第{i}次整改：" + "改" * 995, f"第{i}次不通过：" + "残" * 995
        written += [note, reason]
        async with loop.db.begin() as session:
            now = loop.services.now()
            submitted = await problems.transition(
                session,
                code,
                Action.submit,
                liaison,
                now=now,
                reason=note,
                after_photos=[PhotoIn(photo, f"after-{i}")],
            )
            failed = await problems.transition(
                session, code, Action.fail_check, inspector, now=now, reason=reason
            )
        assert isinstance(submitted, ProblemView) and isinstance(failed, ProblemView)
    mark = loop.sb.mark()
    loop.sb.send_text(ADMIN, f"/issue {code}")
    await loop.wait_for(ADMIN, mark, "照片：整改前 1 张，整改后 4 张")
    texts = [m.content for m in loop.sb.sent(ADMIN) if m.seq > mark and not m.photo]
    assert len(texts) >= 3 and all(len(text) <= 4096 for text in texts)
    history = "\n".join(texts)
    assert all(text in history for text in written) and "抱歉" not in history
    assert history.count("核查不通过") == 4 and history.count("提交整改") == 4


async def test_refused_photos_do_not_hold_up_later_ones(loop: Harness) -> None:
    """Sixty photos Telegram will not hand out (getFile: wrong file_id), then a good one: it is
    stored all the same (before, the job took the oldest 50 every time, for ever)."""
    now = loop.services.now()
    async with loop.db.begin() as session:
        reporter = await people.person_id_for(session, INSPECTOR)
        assert reporter is not None
        gone = [PhotoIn(f"gone-{i}", f"gone-unique-{i}") for i in range(60)]
        await problems.report_problem(
            session,
            ReportIn(reporter, "noise", "", gone, None, None),
            now=now,
            code_prefix="NH",
            zone_year=problems.code_year(now, loop.services.settings.zone),
        )
    image = tiny_png(5150)
    loop.sb.send_photo(INSPECTOR, chat_id=GROUP, image=image, caption="#问题 污水直排")
    digest = hashlib.sha256(image).hexdigest()
    for _ in range(200):
        if loop.services.media.get(digest) == image:
            break
        await asyncio.sleep(0.05)
    assert loop.services.media.get(digest) == image
    async with loop.db.begin() as session:
        refused = (
            await session.scalars(
                select(models.ProblemPhoto).where(models.ProblemPhoto.file_id.like("gone-%"))
            )
        ).all()
    assert len(refused) == 60
    assert all(p.sha256 is None and p.download_attempts >= 1 for p in refused)
    assert all(p.download_after is not None and p.download_after > now for p in refused)


async def test_a_late_album_part_joins_its_problem(loop: Harness) -> None:
    """A part arriving after the album became a problem (here: seconds later) is added to it
    and the group is told; delivered again, it is not added twice."""
    mark = loop.sb.mark()
    parts = await loop.sb.send_album(INSPECTOR, 2, chat_id=GROUP, caption="#问题 垃圾堆放")
    code = _code((await loop.sb.wait_messages(GROUP, n=1, since=mark, timeout=15))[0])
    mark = loop.sb.mark()
    late = loop.sb.send_photo(INSPECTOR, chat_id=GROUP, media_group_id=parts[0]["media_group_id"])
    told = (await loop.sb.wait_messages(GROUP, n=1, since=mark, timeout=15))[0]
    assert told.content == f"已把 1 张照片补充到问题 {code}。"
    assert told.reply_to_message_id == late["message_id"]
    loop.sb.queue_update({"message": late})  # the same message delivered twice
    await loop.reply_to(ADMIN, "/help", chat_id=GROUP)
    assert await _count(loop, models.Problem) == 1
    assert await _count(loop, models.ProblemPhoto) == 3
    m = loop.sb.mark()
    loop.sb.send_text(ADMIN, f"/issue {code}")
    history = (await loop.wait_for(ADMIN, m, "处理记录")).content
    assert "张网格 补充照片" in history and "整改前 3 张" in history
