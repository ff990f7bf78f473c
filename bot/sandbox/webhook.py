"""Webhook delivery as Telegram does it: once a webhook is set, each waiting update is POSTed as
JSON to its URL (with the secret in ``X-Telegram-Bot-Api-Secret-Token`` when one was given),
and the same update is posted again, after a pause that grows, until the bot answers 2xx; only
then is it dropped and the next one sent. Telegram may open several connections at once; the
stand-in delivers one update at a time, in order, which is one of the orders Telegram may use,
and only to loopback addresses (any other URL is accepted but never reached).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import aiohttp

from bot.sandbox.world import JSON

if TYPE_CHECKING:
    from bot.sandbox.state import World

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


@dataclass(frozen=True)
class Delivery:
    """One POST of one update and how the bot answered (0: no answer at all)."""

    update_id: int
    status: int
    t: float


def webhook_url_refusal(url: str) -> str | None:
    """Why Telegram would refuse this URL, or None. Plain HTTP is accepted on the loopback only,
    as a self-hosted Bot API server accepts it (the stand-in plays one)."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return None
    if parts.scheme == "http" and parts.hostname in LOOPBACK:
        return None
    return "bad webhook: An HTTPS URL must be provided for webhook"


class WebhookDelivery:
    def __init__(
        self,
        world: World,
        url: str,
        secret: str | None,
        *,
        retry_s: float = 0.05,
        retry_cap_s: float = 1.0,
        timeout_s: float = 10.0,
    ) -> None:
        self.world = world
        self.url = url
        self.secret = secret
        self.retry_s = retry_s
        self.retry_cap_s = retry_cap_s
        self.timeout_s = timeout_s
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="sandbox-webhook")

    async def stop(self) -> None:
        # The flag as well as the cancel: Python 3.11's wait_for can swallow a cancellation
        # that arrives just as what it waits for completes.
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        headers = {SECRET_HEADER: self.secret} if self.secret else {}
        timeout = aiohttp.ClientTimeout(total=self.timeout_s)
        async with aiohttp.ClientSession(timeout=timeout, headers=headers) as http:
            failures = 0
            while not self._stopping:
                update = self.world.next_update()
                if update is None:
                    await self.world._wait_change(1.0)
                    continue
                status = await self._post(http, update)
                self.world.note_delivery(Delivery(update["update_id"], status, time.time()))
                if 200 <= status < 300:
                    failures = 0
                    self.world.confirm_update(update["update_id"])
                    continue
                failures += 1
                self.world.note_webhook_error(
                    f"Wrong response from the webhook: {status}" if status else "Connection refused"
                )
                await asyncio.sleep(min(self.retry_cap_s, self.retry_s * 2 ** (failures - 1)))

    async def _post(self, http: aiohttp.ClientSession, update: JSON) -> int:
        if urlsplit(self.url).hostname not in LOOPBACK:
            return 0  # the stand-in never reaches beyond this machine: as if unreachable
        try:
            async with http.post(self.url, json=update) as response:
                await response.read()
                return response.status
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            log.debug("stand-in webhook: %s: %s", self.url, exc)
            return 0
