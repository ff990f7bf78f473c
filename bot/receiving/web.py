"""The bot's own HTTP server (aiohttp): the webhook Telegram posts to (webhook mode only),
/healthz and /metrics (always).

The webhook answers 200 only once the update is committed to the inbox: Telegram keeps retrying
an update until it gets a 2xx, so anything else (a wrong secret, a bad body, a database that
refuses) leaves the update with Telegram rather than losing it.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from bot.context import Services
from bot.receiving.intake import Intake
from bot.receiving.metrics import CONTENT_TYPE, Metrics
from bot.services import inbox, outbox
from models.base import utcnow

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
# An update is a few kilobytes; the largest (a 4096-character message quoting another, with
# entities) stays well below this.
MAX_BODY = 1024 * 1024
# Health is "stalled" when an update that may run has waited this long.
STALL_S = 120.0
HEALTH_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class WebhookConfig:
    path: str
    secret: str


def _json_error(status: int, message: str) -> web.Response:
    return web.json_response({"ok": False, "error": message}, status=status)


def _secret_matches(given: str | None, expected: str) -> bool:
    # compare_digest on bytes: constant time whatever the header holds.
    return hmac.compare_digest(
        (given or "").encode("utf-8", "replace"), expected.encode("utf-8", "replace")
    )


class WebServer:
    def __init__(
        self,
        services: Services,
        metrics: Metrics,
        intake: Intake,
        *,
        mode: str,
        webhook: WebhookConfig | None = None,
    ) -> None:
        self.services = services
        self.metrics = metrics
        self.intake = intake
        self.mode = mode
        self.webhook = webhook
        self._runner: web.AppRunner | None = None
        self.port = 0
        self.host = "127.0.0.1"

    def app(self) -> web.Application:
        # client_max_size makes aiohttp itself answer 413 to a larger body.
        app = web.Application(client_max_size=MAX_BODY)
        if self.webhook is not None:
            app.router.add_post(self.webhook.path, self._receive)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/metrics", self._metrics)
        return app

    async def start(self, host: str, port: int) -> None:
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        self.host = host
        log.info("http: listening on %s:%d (%s)", host, self.port, self.mode)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "", "::") else self.host
        return f"http://{host}:{self.port}"

    # ------------------------------------------------------------------ webhook

    async def _receive(self, request: web.Request) -> web.Response:
        assert self.webhook is not None
        if not _secret_matches(request.headers.get(SECRET_HEADER), self.webhook.secret):
            return _json_error(403, "wrong secret token")
        if request.content_type != "application/json":
            return _json_error(400, "send the update as application/json")
        if request.content_length is not None and request.content_length > MAX_BODY:
            return _json_error(413, "body too large")
        body = await request.read()  # aiohttp answers 413 itself past MAX_BODY
        try:
            update = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return _json_error(400, "body is not JSON")
        if not (
            isinstance(update, dict)
            and isinstance(update.get("update_id"), int)
            and not isinstance(update.get("update_id"), bool)
        ):
            return _json_error(400, "not an update")
        try:
            await self.intake.take([update], via="webhook")
        except Exception:
            # Not stored, so not acknowledged: Telegram will post it again.
            log.exception("webhook: could not store update %s", update["update_id"])
            return _json_error(503, "not stored; try again")
        return web.Response(status=200)

    # ------------------------------------------------------------------ health and metrics

    async def health(self) -> tuple[int, dict[str, Any]]:
        now = utcnow()
        body: dict[str, Any] = {"mode": self.mode}
        try:
            async with asyncio.timeout(HEALTH_TIMEOUT_S):
                async with self.services.db.begin() as session:
                    summary = await inbox.summary(session, now=now)
                    backlog = await outbox.backlog(session)
        except Exception as exc:
            log.warning("healthz: database unreachable: %s", exc)
            return 503, body | {"status": "down", "database": f"unreachable ({type(exc).__name__})"}
        last = summary.last_processed_at
        lag = summary.oldest_due.total_seconds() if summary.oldest_due is not None else 0.0
        stalled = lag > STALL_S
        body |= {
            "status": "stalled" if stalled else "ok",
            "database": "ok",
            "last_update_processed_at": last.isoformat() if last else None,
            "seconds_since_last_update_processed": (
                round((now - last).total_seconds(), 3) if last else None
            ),
            "inbox_pending": summary.pending,
            "inbox_parked": summary.parked,
            "oldest_waiting_update_s": round(lag, 3),
            "outbox_backlog": backlog,
        }
        return (503 if stalled else 200), body

    async def _healthz(self, _request: web.Request) -> web.Response:
        status, body = await self.health()
        return web.json_response(body, status=status)

    async def _metrics(self, _request: web.Request) -> web.Response:
        try:
            async with asyncio.timeout(HEALTH_TIMEOUT_S):
                async with self.services.db.begin() as session:
                    summary = await inbox.summary(session, now=utcnow())
                    backlog = await outbox.backlog(session)
        except Exception as exc:
            log.warning("metrics: database unreachable: %s", exc)
            self.metrics.database_up.set(0)
        else:
            self.metrics.database_up.set(1)
            self.metrics.inbox_pending.set(summary.pending)
            self.metrics.inbox_parked.set(summary.parked)
            self.metrics.outbox_depth.set(backlog)
        return web.Response(body=self.metrics.exposition(), headers={"Content-Type": CONTENT_TYPE})
