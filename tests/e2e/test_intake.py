"""The durable intake end to end, in one process: the webhook's refusals and its dedup, updates
that fail (retried, then parked, listed and replayed by an admin), per-chat order with several
workers, and /healthz and /metrics."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import func, select
from telegram import Update
from telegram.ext import ApplicationHandlerStop, CommandHandler

import models
from bot.context import Context, Services
from bot.db import Database
from bot.harness import TOKEN, WEBHOOK_SECRET, Harness, running_bot
from bot.i18n import Catalogues
from bot.limits import TelegramLimits
from bot.receiving.intake import Intake
from bot.receiving.metrics import Metrics
from bot.receiving.web import MAX_BODY, SECRET_HEADER, WebServer
from bot.rules import load_rules
from bot.sandbox import Sandbox
from bot.sending.ratelimit import ChatRateLimiter
from bot.services import outbox
from bot.services.media import MediaStore
from bot.settings import load_settings
from tests.e2e.conftest import ADMIN, STRANGER, start_world
from tests.e2e.helpers import problem_code

GROUP = -100500  # 南湖区生态环境工作群 from start_world
INSPECTOR = 2001


async def _bind(h: Harness) -> None:
    """The work group bound to 东桥镇, the bot its admin (so it sees every photo)."""
    h.sb.chats[GROUP].bot_is_admin = True
    await h.reply_to(ADMIN, "/start")
    bound = await h.reply_to(ADMIN, "/bindgroup NH-DQ", chat_id=GROUP)
    assert "本群已绑定到东桥镇" in bound.content


@pytest.fixture
async def hooked(sqlite_url: str, tmp_path: Path) -> AsyncIterator[Harness]:
    """The bot in webhook mode: the stand-in posts every update to it."""
    async with running_bot(
        sqlite_url, admin_ids=[ADMIN], media_dir=tmp_path / "media", webhook=True
    ) as h:
        await start_world(h)
        await _bind(h)
        yield h


async def _inbox_rows(h: Harness) -> int:
    async with h.db.begin() as session:
        return await session.scalar(select(func.count()).select_from(models.InboxUpdate)) or 0


async def _settled(h: Harness, timeout: float = 10.0) -> None:
    """Until every stored update is done or parked (a reply goes out before its update is
    marked done)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        async with h.db.begin() as session:
            pending = await session.scalar(
                select(func.count())
                .select_from(models.InboxUpdate)
                .where(models.InboxUpdate.status == "pending")
            )
        if not pending:
            return
        assert asyncio.get_running_loop().time() < deadline, f"{pending} updates still pending"
        await asyncio.sleep(0.05)


async def _problems(h: Harness) -> int:
    async with h.db.begin() as session:
        return await session.scalar(select(func.count()).select_from(models.Problem)) or 0


async def _stored_payload(h: Harness, update_id: int) -> dict[str, Any]:
    async with h.db.begin() as session:
        row = await session.get(models.InboxUpdate, update_id)
    assert row is not None
    return dict(row.payload)


def _metric(text: str, name: str) -> float:
    """A sample's value in Prometheus text format (0 if absent)."""
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def _post(
    http: aiohttp.ClientSession, h: Harness, body: bytes | io.BytesIO, headers: dict[str, str]
) -> int:
    async with http.post(f"{h.http_url}/telegram", data=body, headers=headers) as response:
        return response.status


async def test_webhook_refuses_strangers_and_bad_bodies(hooked: Harness) -> None:
    h = hooked
    before = await _inbox_rows(h)
    update = {"update_id": 900001, "message": {"message_id": 1, "date": 0, "chat": {"id": 1}}}
    good = json.dumps(update).encode()
    as_json = {"Content-Type": "application/json"}
    signed = as_json | {SECRET_HEADER: WEBHOOK_SECRET}
    async with aiohttp.ClientSession() as http:
        assert await _post(http, h, good, as_json) == 403  # no secret
        assert await _post(http, h, good, as_json | {SECRET_HEADER: "wrong"}) == 403
        assert await _post(http, h, good, as_json | {SECRET_HEADER: WEBHOOK_SECRET[:-1]}) == 403
        assert await _post(http, h, good, as_json | {SECRET_HEADER: "秘密"}) == 403
        assert await _post(http, h, good, signed | {"Content-Type": "text/plain"}) == 400
        assert await _post(http, h, b"{not json", signed) == 400
        assert await _post(http, h, b"[1, 2]", signed) == 400
        assert await _post(http, h, b'{"update_id": "1"}', signed) == 400
        assert await _post(http, h, b"\xff\xfe", signed) == 400
        padded = {**update, "pad": "x" * MAX_BODY}
        assert await _post(http, h, io.BytesIO(json.dumps(padded).encode()), signed) == 413
        async with http.get(f"{h.http_url}/metrics") as response:
            metrics = await response.text()
    assert await _inbox_rows(h) == before  # nothing refused was stored
    assert _metric(metrics, 'greengrid_updates_received_total{via="webhook"}') == before


async def test_webhook_same_update_twice_is_one_effect(hooked: Harness) -> None:
    h = hooked
    mark = h.sb.mark()
    photo = h.sb.send_photo(INSPECTOR, chat_id=GROUP, caption="#问题 河边垃圾")
    [card] = await h.sb.wait_messages(GROUP, n=1, since=mark)
    assert f"已登记为问题 {problem_code(h, 1)}" in card.content
    # Telegram posts the very same update again (its 200 was lost on the way back, say).
    first = await _stored_payload(h, h.sb.updates_fetched)
    assert first["message"]["message_id"] == photo["message_id"]
    # And a new one arrives twice at once, over two connections (then a third time, from the
    # stand-in itself once its webhook is back).
    url, secret = h.sb.webhook["url"], h.sb.webhook["secret_token"]
    await h.sb.set_webhook("", None)
    again = h.sb.send_photo(INSPECTOR, chat_id=GROUP, caption="#问题 路边焚烧")
    second = h.sb.next_update()
    assert second is not None and second["message"]["message_id"] == again["message_id"]
    headers = {"Content-Type": "application/json", SECRET_HEADER: WEBHOOK_SECRET}
    async with aiohttp.ClientSession() as http:
        assert await _post(http, h, json.dumps(first).encode(), headers) == 200
        statuses = await asyncio.gather(
            *(_post(http, h, json.dumps(second).encode(), headers) for _ in range(2))
        )
        assert statuses == [200, 200]
        await h.sb.set_webhook(url, secret)
        await h.sb.wait_until(lambda: h.sb.pending_updates == 0, what="the stand-in's delivery")
        # A later update of the group is processed after all of them.
        await h.reply_to(ADMIN, "/help", chat_id=GROUP)
        async with http.get(f"{h.http_url}/metrics") as response:
            metrics = await response.text()
    acks = [m for m in h.sb.sent(GROUP) if "已登记为问题" in m.content]
    assert [m.reply_to_message_id for m in acks] == [photo["message_id"], again["message_id"]]
    assert await _problems(h) == 2
    assert _metric(metrics, 'greengrid_updates_redelivered_total{via="webhook"}') == 3


@pytest.fixture
async def bot4(sqlite_url: str, tmp_path: Path) -> AsyncIterator[Harness]:
    """Polling, four updates at a time (each from a different chat)."""
    async with running_bot(
        sqlite_url, admin_ids=[ADMIN], media_dir=tmp_path / "media", inbox_workers=4
    ) as h:
        await start_world(h)
        yield h


class Flaky:
    """A test command whose handler fails ``failures`` times, then answers; ``/slow`` answers
    only once some other ``/flaky`` has answered (or after 5 s). Registered ahead of the
    features (group -1) on the real application."""

    def __init__(self, h: Harness, failures: int) -> None:
        self.failures = failures
        self.runs = 0
        self.answered = asyncio.Event()
        h.app.add_handler(CommandHandler("flaky", self.flaky), group=-1)
        h.app.add_handler(CommandHandler("slow", self.slow), group=-1)

    async def flaky(self, update: Update, context: Context) -> None:
        self.runs += 1
        if self.runs <= self.failures:
            raise RuntimeError(f"disk on fire (run {self.runs})")
        assert update.effective_message is not None
        await update.effective_message.reply_text(f"flaky done after {self.runs} runs")
        self.answered.set()
        raise ApplicationHandlerStop

    async def slow(self, update: Update, context: Context) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.answered.wait(), 5.0)
        assert update.effective_message is not None
        await update.effective_message.reply_text("slow done")
        raise ApplicationHandlerStop


async def test_a_failing_update_is_retried_then_parked_and_replayed(bot: Harness) -> None:
    h = bot
    flaky = Flaky(h, failures=10)
    await h.reply_to(ADMIN, "/start")
    mark = h.sb.mark()
    h.sb.send_text(ADMIN, "/flaky")
    h.sb.send_text(ADMIN, "/help")  # the same chat: waits for /flaky to finish or be parked
    apology, help_text = await h.sb.wait_messages(ADMIN, n=2, since=mark)
    assert apology.content == "抱歉，出了点问题，请稍后再试。我们已记录此错误。"
    assert "可用功能" in help_text.content and "/parked" in help_text.content
    assert flaky.runs == 3  # INBOX_MAX_ATTEMPTS, then parked: one apology, not three
    # A stranger may not look; the admin sees it with its error and replays it.
    assert "只有管理员" in (await h.reply_to(STRANGER, "/parked")).content
    listing = await h.reply_to(ADMIN, "/parked")
    assert "共 1 条" in listing.content and "RuntimeError: disk on fire (run 3)" in listing.content
    assert "已试 3 次" in listing.content
    [[replay], [replay_all]] = listing.buttons
    assert replay.startswith("重放 #") and replay_all == "全部重放（1 条）"
    flaky.failures = 0  # the cause is fixed
    mark = h.sb.mark()
    assert await h.press_answer(ADMIN, listing, replay) == "已重新排队 1 条消息。"
    done = await h.wait_for(ADMIN, mark, "flaky done after 4 runs")
    assert done.seq > mark
    await h.sb.wait_until(lambda: "没有暂存" in listing.content, what="the list emptied")
    assert "已不在暂存列表中" in await h.press_answer(ADMIN, listing, data=f"pk:{replay[4:]}")
    await _settled(h)
    async with h.db.begin() as session:
        statuses = (await session.scalars(select(models.InboxUpdate.status))).all()
    assert set(statuses) == {"done"}


async def test_a_passing_failure_is_answered_without_an_apology(bot: Harness) -> None:
    h = bot
    Flaky(h, failures=1)
    await h.reply_to(ADMIN, "/start")
    assert (await h.reply_to(ADMIN, "/flaky")).content == "flaky done after 2 runs"
    assert not [m for m in h.sb.sent(ADMIN) if "出了点问题" in m.content]


async def test_one_chat_in_order_other_chats_meanwhile(bot4: Harness) -> None:
    h = bot4
    Flaky(h, failures=0)
    for uid in (ADMIN, STRANGER):
        await h.reply_to(uid, "/start")
    mark = h.sb.mark()
    h.sb.send_text(ADMIN, "/slow")  # waits for some /flaky to answer first
    h.sb.send_text(ADMIN, "/flaky")  # the same chat: only after /slow, although it is quick
    h.sb.send_text(STRANGER, "/flaky")  # another chat: runs meanwhile, and frees /slow
    await h.sb.wait_messages(ADMIN, n=2, since=mark, timeout=10)
    order = [(m.chat_id, m.content) for m in h.sb.sent() if m.seq > mark]
    assert order == [
        (STRANGER, "flaky done after 1 runs"),
        (ADMIN, "slow done"),
        (ADMIN, "flaky done after 2 runs"),
    ]


async def test_health_and_metrics(bot: Harness) -> None:
    h = bot
    await h.reply_to(ADMIN, "/start")
    h.sb.force_429(ADMIN, retry_after=1)
    await h.reply_to(ADMIN, "/help")  # answered after waiting out the 429
    async with h.db.begin() as session:
        await outbox.enqueue(
            session,
            "test:1001:later",
            "test",
            ADMIN,
            {"text": "later"},
            now=h.services.now() + timedelta(hours=1),
        )
    await _settled(h)
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{h.http_url}/healthz") as response:
            status, health = response.status, await response.json()
        async with http.get(f"{h.http_url}/metrics") as response:
            assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            metrics = await response.text()
    assert status == 200 and health["status"] == "ok" and health["database"] == "ok"
    assert health["mode"] == "polling" and health["outbox_backlog"] == 1
    assert health["inbox_pending"] == 0 and health["inbox_parked"] == 0
    assert health["last_update_processed_at"] is not None
    assert 0 <= health["seconds_since_last_update_processed"] < 10
    received = _metric(metrics, 'greengrid_updates_received_total{via="polling"}')
    assert received >= 2 and _metric(metrics, "greengrid_updates_processed_total") == received
    assert _metric(metrics, 'greengrid_handler_seconds_count{kind="message"}') == received
    assert _metric(metrics, "greengrid_messages_sent_total") >= 2
    assert _metric(metrics, "greengrid_telegram_429_total") == 1
    assert _metric(metrics, "greengrid_outbox_depth") == 1
    assert _metric(metrics, "greengrid_database_up") == 1
    assert _metric(metrics, "greengrid_updates_parked_total") == 0


async def test_health_says_503_when_the_database_is_unreachable(tmp_path: Path) -> None:
    settings = load_settings(
        bot_token="1:x",
        database_url="postgresql+asyncpg://nobody@127.0.0.1:9/nowhere",
        media_dir=tmp_path,
    )
    db = Database.connect(settings.database_url)
    services = Services(
        settings=settings,
        rules=load_rules(),
        db=db,
        i18n=Catalogues(settings.default_locale),
        media=MediaStore(tmp_path),
    )
    metrics = Metrics()
    web = WebServer(services, metrics, Intake(services, metrics, lambda: None), mode="polling")
    try:
        status, body = await web.health()
    finally:
        await db.dispose()
    assert status == 503 and body["status"] == "down"
    assert body["database"].startswith("unreachable (")


async def test_a_report_whose_answer_failed_is_answered_on_the_next_try(bot: Harness) -> None:
    """The first run stores the problem, then its answer fails (as if the process had died
    between the two): the next run makes no second problem and answers the reporter."""
    h = bot
    await _bind(h)
    limiter = h.app.bot.rate_limiter
    assert isinstance(limiter, ChatRateLimiter)
    limiter.backoff_base_s = 0.01  # the limiter's own network retries, quickly
    h.sb.inject_faults("5xx", count=limiter.max_retries + 1, method="sendMessage", chat_id=GROUP)
    mark = h.sb.mark()
    photo = h.sb.send_photo(INSPECTOR, chat_id=GROUP, caption="#问题 河边垃圾")
    [card] = await h.sb.wait_messages(GROUP, n=1, since=mark)
    assert f"已登记为问题 {problem_code(h, 1)}" in card.content
    assert card.reply_to_message_id == photo["message_id"] and card.buttons
    await _settled(h)
    assert await _problems(h) == 1
    async with h.db.begin() as session:
        row = await session.get(models.InboxUpdate, h.sb.updates_fetched)
    assert row is not None and row.status == "done" and row.attempts == 2
    assert row.last_error is not None and "Bad Gateway" in row.last_error


async def test_webhook_registered_with_its_secret_and_every_kind(hooked: Harness) -> None:
    sb = hooked.sb
    assert sb.webhook["url"] == f"{hooked.http_url}/telegram"
    assert sb.webhook["secret_token"] == WEBHOOK_SECRET
    assert sb.webhook["max_connections"] == 1
    assert set(Update.ALL_TYPES) <= set(sb.allowed_updates)  # chat_member too (opt-in kind)
    assert [d.status for d in sb.webhook_deliveries] == [200] * len(sb.webhook_deliveries)


async def test_polling_deletes_a_webhook_left_behind(sqlite_url: str, tmp_path: Path) -> None:
    sb = Sandbox(TOKEN, limits=TelegramLimits().scaled(0.05))
    await sb.start()
    try:
        await sb.set_webhook("https://example.org/old-hook", None)
        async with running_bot(
            sqlite_url, admin_ids=[ADMIN], sandbox=sb, media_dir=tmp_path / "media"
        ) as h:
            assert sb.webhook == {}
            h.sb.add_user(ADMIN, "王主任")
            assert "您好" in (await h.reply_to(ADMIN, "/start")).content
    finally:
        await sb.stop()
