"""A week of work while Telegram misbehaves (see tests/fault_world.py): the suite runs a short
week on SQLite; bench/fault_week.py runs the full one, for several seeds. Then single faults,
each past every retry, on the notice that follows a change: the update runs again, and the
change is made once and the notice sent."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select

import models
from bot.harness import Harness
from tests.e2e.conftest import ADMIN
from tests.e2e.helpers import beyond_retries
from tests.fault_world import (
    INSPECTOR,
    LIAISON,
    VOLUNTEER,
    Week,
    check,
    scripted_week,
    settled,
    week_world,
)


@pytest.fixture
async def week(sqlite_url: str, tmp_path: Path) -> AsyncIterator[Harness]:
    async with week_world(sqlite_url, tmp_path) as h:
        yield h


async def test_a_short_week_with_a_fifth_of_the_calls_failing(week: Harness) -> None:
    # Bursts of one 429 (each costs a second): the full week's bursts of two are in the bench.
    done = await scripted_week(week, full=False, burst_429=1)
    print(f"\nfaults dealt {dict(done.dealt)} in {done.calls} calls; {done.seconds:.1f}s")
    await check(week, done)


async def _assigned(w: Week) -> str:
    code, card = await w.report_in_group(INSPECTOR, "#问题 河边有人露天焚烧垃圾")
    await w.assign(code, card)
    return code


async def _history(h: Harness, code: str) -> list[str]:
    async with h.db.begin() as session:
        events = await session.scalars(
            select(models.ProblemEvent.action)
            .join(models.Problem, models.Problem.id == models.ProblemEvent.problem_id)
            .where(models.Problem.code == code)
            .order_by(models.ProblemEvent.id)
        )
        return list(events)


async def test_a_notice_lost_after_the_change_is_sent_when_the_update_runs_again(
    week: Harness,
) -> None:
    """The reporter's notice of an assignment fails past every retry: the update runs again,
    finds the assignment made by itself (not a second one, no second points) and tells them."""
    h, w = week, Week(week)
    code, card = await w.report_in_group(VOLUNTEER, "#问题 河边有人露天焚烧垃圾")
    menu = await w.tap_edit(ADMIN, card, "交办", "交办给哪个")
    menu = await w.tap_edit(ADMIN, menu, "✓ 东桥镇", "整改期限")
    beyond_retries(h, VOLUNTEER)
    mark = h.sb.mark()
    h.sb.press(ADMIN, menu, text="3 天（默认）")
    await w.said(VOLUNTEER, mark, f"您上报的问题 {code} 已交办")
    await settled(h)
    assert await _history(h, code) == ["report", "assign"]
    async with h.db.begin() as session:
        kinds = list(await session.scalars(select(models.PointsEntry.kind)))
    assert kinds == ["problem_assigned"]


async def test_a_typed_note_whose_answer_is_lost_submits_once_and_tells_the_checkers(
    week: Harness,
) -> None:
    """The liaison's note is taken and the answer to it fails past every retry: the update runs
    again, finds the draft and the submission it made, and the checkers get the card."""
    h, w = week, Week(week)
    code = await _assigned(w)
    task = await w.said(LIAISON, 0, f"交办给您单位：{code}")
    await w.tap(LIAISON, task, "提交整改", LIAISON, "请发送整改后的照片")
    mark = h.sb.mark()
    h.sb.send_photo(LIAISON)
    received = await w.said(LIAISON, mark, "完成")
    await w.tap(LIAISON, received, "完成", LIAISON, "整改情况")
    beyond_retries(h, LIAISON)
    mark = h.sb.mark()
    h.sb.send_text(LIAISON, "已清理焚烧点")
    await w.said(LIAISON, mark, "已提交，等待核查")
    await w.said(ADMIN, mark, f"{code} 已提交整改")
    await settled(h)
    assert await _history(h, code) == ["report", "assign", "submit"]


async def test_a_dialog_tap_whose_answer_is_lost_moves_the_dialog_one_step(week: Harness) -> None:
    """The tap that ends the after-photos is taken and the question that follows fails past
    every retry: the update runs again and asks the question, rather than taking the tap for
    the next step's (a stale button) and leaving the liaison stuck."""
    h, w = week, Week(week)
    code = await _assigned(w)
    task = await w.said(LIAISON, 0, f"交办给您单位：{code}")
    await w.tap(LIAISON, task, "提交整改", LIAISON, "请发送整改后的照片")
    mark = h.sb.mark()
    h.sb.send_photo(LIAISON)
    received = await w.said(LIAISON, mark, "完成")
    beyond_retries(h, LIAISON)
    await w.tap(LIAISON, received, "完成", LIAISON, "整改情况")
    await w.text(LIAISON, "已清理焚烧点", LIAISON, "已提交，等待核查")
    await settled(h)
    assert await _history(h, code) == ["report", "assign", "submit"]
