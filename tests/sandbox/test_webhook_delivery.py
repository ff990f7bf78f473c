"""Webhook delivery as Telegram does it: POST with the secret, the same update again until a
2xx, then the next; getUpdates refused meanwhile; deleteWebhook goes back to polling."""

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from bot.sandbox import Sandbox
from tests.sandbox.conftest import call


class Receiver:
    """A bot's webhook endpoint for the test: answers with the statuses it is given, in turn
    (200 once they run out), and keeps what it was sent."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = statuses
        self.got: list[tuple[int, str | None, str]] = []  # (update_id, secret, content type)
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        secret = request.headers.get("X-Telegram-Bot-Api-Secret-Token")
        self.got.append((body["update_id"], secret, request.content_type))
        return web.Response(status=self.statuses.pop(0) if self.statuses else 200)

    async def __aenter__(self) -> "Receiver":
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}/hook"
        return self

    async def __aexit__(self, *_exc: object) -> None:
        assert self.runner is not None
        await self.runner.cleanup()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with Receiver([500, 502]) as r:
        yield r


async def _wait(sb: Sandbox, ready: Any, what: str) -> None:
    await sb.wait_until(ready, timeout=5, what=what)


async def test_each_update_posted_with_the_secret_until_a_2xx(
    sb: Sandbox, http: aiohttp.ClientSession, receiver: Receiver
) -> None:
    pending = sb.pending_updates  # user 1's /start from the fixture
    sb.send_text(1, "/help")
    status, _ = await call(http, sb, "setWebhook", url=receiver.url, secret_token="s3cret_-X")
    assert status == 200
    await _wait(sb, lambda: sb.pending_updates == 0, "both updates delivered")
    first, second = 1, 2
    assert pending == 1
    # The first update failed twice (500, 502) and was posted again each time; the second
    # waited its turn and went through at once.
    assert [u for u, _, _ in receiver.got] == [first, first, first, second]
    assert {(s, t) for _, s, t in receiver.got} == {("s3cret_-X", "application/json")}
    assert [d.status for d in sb.webhook_deliveries] == [500, 502, 200, 200]
    assert sb.handed_out[first] == 3 and sb.handed_out[second] == 1
    status, body = await call(http, sb, "getUpdates", timeout=0)
    assert status == 409 and "webhook is active" in body["description"]
    _, info = await call(http, sb, "getWebhookInfo")
    assert info["result"]["url"] == receiver.url
    assert info["result"]["pending_update_count"] == 0
    assert info["result"]["last_error_message"] == "Wrong response from the webhook: 502"


async def test_unreachable_webhook_keeps_updates_until_it_answers(
    sb: Sandbox, http: aiohttp.ClientSession
) -> None:
    async with Receiver([]) as gone:
        url = gone.url
    await call(http, sb, "setWebhook", url=url)  # nobody listens there now
    await _wait(sb, lambda: len(sb.webhook_deliveries) >= 2, "two refused tries")
    assert {d.status for d in sb.webhook_deliveries} == {0} and sb.pending_updates == 1
    _, info = await call(http, sb, "getWebhookInfo")
    assert info["result"]["last_error_message"] == "Connection refused"
    # Back to polling: the update is still there, and nothing more is posted.
    await call(http, sb, "deleteWebhook")
    tries = len(sb.webhook_deliveries)
    status, body = await call(http, sb, "getUpdates", timeout=0)
    assert status == 200 and [u["message"]["text"] for u in body["result"]] == ["/start"]
    await asyncio.sleep(0.2)
    assert len(sb.webhook_deliveries) == tries


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"url": "http://example.org/hook"}, "An HTTPS URL must be provided"),
        ({"url": "ftp://127.0.0.1/hook"}, "An HTTPS URL must be provided"),
        ({"url": "https://example.org/h", "secret_token": "no spaces"}, "unallowed characters"),
        ({"url": "https://example.org/h", "secret_token": "x" * 257}, "unallowed characters"),
    ],
)
async def test_set_webhook_refuses_what_telegram_refuses(
    sb: Sandbox, http: aiohttp.ClientSession, params: dict[str, str], error: str
) -> None:
    status, body = await call(http, sb, "setWebhook", **params)
    assert status == 400 and error in body["description"]
    assert sb.webhook == {}


async def test_never_reaches_beyond_the_machine(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    await call(http, sb, "setWebhook", url="https://example.org/hook")
    await _wait(sb, lambda: len(sb.webhook_deliveries) >= 1, "a try")
    assert sb.webhook_deliveries[0].status == 0 and sb.pending_updates == 1
