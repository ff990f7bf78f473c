"""A local stand-in for the Telegram Bot API, over real HTTP, with a driver for tests and demos.

It speaks enough of the Bot API for python-telegram-bot to run against it unchanged
(``base_url=sb.api_base_url``, ``base_file_url=sb.file_base_url``), refuses what Telegram refuses
(with Telegram's error shape), enforces the rate limits with 429 + retry_after, and injects
faults on request. Method names and required parameters come from ``botapi_facts.json``,
derived from the official machine-readable description by ``gen_facts.py``.

Layers: `world` (records) → `state.World` (shared state) → `driver.Driver` (people act, tests
observe) → `Sandbox` (HTTP, limits, faults). `methods` implements the Bot API calls.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web
from multidict import MultiDictProxy

from bot.limits import TelegramLimits, counts_toward_limits
from bot.sandbox import methods, ratecheck
from bot.sandbox.driver import Driver
from bot.sandbox.errors import ApiError, bad
from bot.sandbox.faults import ALL_KINDS, Fault, FaultKind, FaultPlan, RandomKind
from bot.sandbox.ratecheck import LoggedRequest
from bot.sandbox.webhook import WebhookDelivery
from bot.sandbox.world import JSON, SimUser, Upload

log = logging.getLogger(__name__)

FACTS: JSON = json.loads(Path(__file__).with_name("botapi_facts.json").read_text("utf-8"))
METHODS: dict[str, JSON] = FACTS["methods"]
_BY_LOWER = {name.lower(): name for name in METHODS}
DEFAULT_LIMITS = TelegramLimits()

# Parameters that arrive JSON-serialised inside form fields (PTB sends nested objects so).
_JSON_PARAMS = frozenset(
    {
        "reply_markup",
        "media",
        "entities",
        "caption_entities",
        "commands",
        "scope",
        "reply_parameters",
        "link_preview_options",
        "allowed_updates",
        "menu_button",
        "results",
        "message_ids",
        "options",
    }
)
_INT_PARAMS = frozenset(
    {
        "chat_id",
        "from_chat_id",
        "user_id",
        "message_id",
        "offset",
        "limit",
        "timeout",
        "reply_to_message_id",
        "cache_time",
        "max_connections",
        "message_thread_id",
    }
)
_FLOAT_PARAMS = frozenset({"latitude", "longitude", "horizontal_accuracy"})
# Calls aimed at a chat whose refusals the transcript shows (lookups stay quiet).
_VISIBLE_FAILURES = re.compile(r"^(send|edit|delete|forward|copy)")


def _api_error(status: int, description: str) -> web.Response:
    return web.json_response(
        {"ok": False, "error_code": status, "description": description}, status=status
    )


class Sandbox(Driver):
    """The stand-in server plus its simulated world and driver API.

    ``limits=None`` disables rate enforcement (`limit_violations` can still check a log against
    given limits). ``clock`` times the rate windows and callback-query expiry.
    """

    def __init__(
        self,
        token: str = "123456:TEST",
        *,
        bot_id: int = 7000000001,
        bot_username: str = "greengrid_bot",
        bot_name: str = "greengrid",
        can_read_all_group_messages: bool = False,
        limits: TelegramLimits | None = DEFAULT_LIMITS,
        tolerance_s: float = 0.02,
        timeout_fault_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        webhook_retry_s: float = 0.05,
    ) -> None:
        super().__init__(
            SimUser(bot_id, bot_name, bot_username, None),
            can_read_all_group_messages=can_read_all_group_messages,
            clock=clock,
        )
        self.token = token
        self.limits = limits
        self.tolerance_s = tolerance_s
        self.timeout_fault_s = timeout_fault_s
        self.request_log: list[LoggedRequest] = []
        self.count_429 = 0
        self.faults = FaultPlan()
        self.webhook_retry_s = webhook_retry_s
        self._delivery: WebhookDelivery | None = None
        self._runner: web.AppRunner | None = None
        self.host = "127.0.0.1"
        self.port = 0

    # ---------------------------------------------------------------- life cycle

    def app(self) -> web.Application:
        from bot.sandbox.control import add_control_routes

        app = web.Application(client_max_size=60 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle_api)
        app.router.add_get("/file/bot{token}/{path:.+}", self._handle_file)
        add_control_routes(app, self)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._closing = False
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        self.host = host

    async def stop(self) -> None:
        """Stop serving; waiting long polls and stalled answers end at once."""
        self._closing = True
        self._notify()
        await self._stop_delivery()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Sandbox:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()

    @property
    def root_url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"http://{host}:{self.port}"

    @property
    def api_base_url(self) -> str:
        return f"{self.root_url}/bot"

    @property
    def file_base_url(self) -> str:
        return f"{self.root_url}/file/bot"

    # ---------------------------------------------------------------- webhook

    async def set_webhook(self, url: str, secret: str | None) -> None:
        """Deliver every update to ``url`` from now on (an empty ``url`` stops delivering)."""
        running = self._delivery
        if url and running is not None and (running.url, running.secret) == (url, secret):
            return  # set again as it was (every bot process does so at start): keep delivering
        await self._stop_delivery()
        self.webhook = {"url": url, "secret_token": secret} if url else {}
        if url:
            self._delivery = WebhookDelivery(self, url, secret, retry_s=self.webhook_retry_s)
            self._delivery.start()

    async def _stop_delivery(self) -> None:
        if self._delivery is not None:
            await self._delivery.stop()
            self._delivery = None

    # ---------------------------------------------------------------- faults

    def inject_faults(
        self,
        kind: FaultKind,
        *,
        count: int = 1,
        method: str | None = None,
        chat_id: int | None = None,
    ) -> None:
        """The next ``count`` matching calls fail.

        - ``5xx``: 502 Bad Gateway; nothing is done.
        - ``timeout``: the call IS done, then the answer stalls ``timeout_fault_s`` (longer
          than the client waits), as real networks can: a retry then sends twice.
        - ``drop``: the connection closes without an answer; nothing is done.
        """
        self.faults.queued.append(Fault(kind, count, method, chat_id))

    def force_429(self, chat_id: int, retry_after: int, count: int = 1) -> None:
        """The next ``count`` messages to ``chat_id`` get 429 with this ``retry_after``."""
        self.faults.queued.append(Fault("429", count, None, chat_id, retry_after))

    def fault_rate(
        self,
        p: float,
        kinds: tuple[RandomKind, ...] = ALL_KINDS,
        seed: int = 0,
        *,
        methods: list[str] | None = None,
        burst_429: int = 1,
        retry_after: int = 1,
    ) -> None:
        """A fraction ``p`` of calls (of ``methods``, default all, getUpdates included) fail with
        one of ``kinds``, drawn from a seeded generator so a run can be replayed. A "429" (on a
        message to a chat; any other call gets a 5xx instead) starts a burst: that chat's next
        ``burst_429`` messages get 429 with ``retry_after``."""
        import random

        self.faults.rate, self.faults.kinds = p, kinds
        self.faults.methods = frozenset(methods) if methods is not None else None
        self.faults.random = random.Random(seed)
        self.faults.burst_429, self.faults.retry_after = max(1, burst_429), retry_after

    def clear_faults(self) -> None:
        self.faults.clear()

    async def _stall(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self._closing and time.monotonic() < deadline:
            await self._wait_change(deadline - time.monotonic())

    # ---------------------------------------------------------------- limits

    def limit_violations(self, limits: TelegramLimits | None = None) -> list[str]:
        """Re-check every accepted message in the log against ``limits`` (default: the ones
        enforced; with enforcement off, Telegram's). Empty when the bot behaved."""
        limits = limits or self.limits or DEFAULT_LIMITS
        return ratecheck.violations(self.request_log, limits, self.tolerance_s)

    def _check_rate(self, chat_id: int | str, cost: int, now: float) -> None:
        if self.limits is None:
            return
        wait = ratecheck.retry_after(
            self.request_log, self.limits, chat_id, cost, now, self.tolerance_s
        )
        if wait is not None:
            self.count_429 += 1
            raise ApiError(429, f"Too Many Requests: retry after {wait}", wait)

    # ---------------------------------------------------------------- HTTP

    async def _params(self, request: web.Request) -> tuple[JSON, dict[str, Upload]]:
        raw: dict[str, Any] = dict(request.query)
        uploads: dict[str, Upload] = {}
        if request.content_type == "application/json":
            body = await request.read()
            if body:
                try:
                    decoded = json.loads(body)
                except ValueError:
                    raise bad("can't parse JSON object") from None
                if not isinstance(decoded, dict):
                    raise bad("parameters must be a JSON object")
                raw.update(decoded)
        elif request.content_type in ("multipart/form-data", "application/x-www-form-urlencoded"):
            form: MultiDictProxy[Any] = await request.post()
            for key, value in form.items():
                if isinstance(value, web.FileField):
                    content_type = value.content_type
                    uploads[key] = Upload(value.file.read(), value.filename, content_type)
                else:
                    raw[key] = value
        params: JSON = {}
        for key, value in raw.items():
            params[key] = _decode(key, value)
        for key in uploads:
            params.setdefault(key, f"attach://{key}")
        return params, uploads

    async def _handle_api(self, request: web.Request) -> web.StreamResponse:
        if request.match_info["token"] != self.token:
            return _api_error(401, "Unauthorized")
        method = _BY_LOWER.get(request.match_info["method"].lower())
        if method is None:
            return _api_error(404, "Not Found")
        try:
            params, uploads = await self._params(request)
        except ApiError as exc:
            return web.json_response(exc.body(), status=exc.code)
        chat_id = params.get("chat_id")
        now = self.clock()
        fault = self.faults.take(method, chat_id)
        if fault is not None and fault.kind in ("429", "5xx", "drop"):
            return self._fault_response(request, fault, method, chat_id, now)
        try:
            result, messages = await self._call(method, params, uploads, now)
        except ApiError as exc:
            self.request_log.append(LoggedRequest(now, method, chat_id, exc.code, 0))
            if isinstance(chat_id, int) and _VISIBLE_FAILURES.match(method):
                self.record_error(chat_id, method, exc)
            return web.json_response(exc.body(), status=exc.code)
        self.request_log.append(LoggedRequest(now, method, chat_id, 200, messages))
        if fault is not None:  # "timeout": done, and now the answer is late
            await self._stall(self.timeout_fault_s)
        return web.json_response({"ok": True, "result": result})

    def _fault_response(
        self, request: web.Request, fault: Fault, method: str, chat_id: object, now: float
    ) -> web.StreamResponse:
        logged_chat = chat_id if isinstance(chat_id, int | str) else None
        if fault.kind == "429":
            self.count_429 += 1
            self.request_log.append(LoggedRequest(now, method, logged_chat, 429, 0))
            error = ApiError(
                429, f"Too Many Requests: retry after {fault.retry_after}", fault.retry_after
            )
            if isinstance(chat_id, int):
                self.record_error(chat_id, method, error)
            return web.json_response(error.body(), status=429)
        if fault.kind == "5xx":
            self.request_log.append(LoggedRequest(now, method, logged_chat, 502, 0))
            return _api_error(502, "Bad Gateway")
        self.request_log.append(LoggedRequest(now, method, logged_chat, 0, 0))
        if request.transport is not None:
            request.transport.close()
        return web.Response(status=500)  # never reaches the client: the connection is gone

    async def _handle_file(self, request: web.Request) -> web.StreamResponse:
        if request.match_info["token"] != self.token:
            return _api_error(401, "Unauthorized")
        stored = self.file_at(request.match_info["path"])
        if stored is None:
            return _api_error(404, "Not Found")
        return web.Response(body=stored.data, content_type="application/octet-stream")

    async def _call(
        self, method: str, params: JSON, uploads: dict[str, Upload], now: float
    ) -> tuple[Any, int]:
        for name in METHODS[method]["required"]:
            if params.get(name) in (None, ""):
                raise bad("message text is empty" if name == "text" else f"{name} is empty")
        handler = methods.HANDLERS.get(method)
        if handler is None:
            log.info("stand-in: %s accepted without effect", method)
            return True, 0
        if counts_toward_limits(method):
            chat_id = params["chat_id"]
            media = params.get("media")
            cost = len(media) if method == "sendMediaGroup" and isinstance(media, list) else 1
            methods.check_target(self, chat_id)  # an unknown chat is 400, not 429
            self._check_rate(chat_id, cost, now)
        return await handler(self, params, uploads)


def _decode(key: str, value: Any) -> Any:
    """Form fields are strings on the wire; Telegram reads them by the parameter's type."""
    if not isinstance(value, str):
        return value
    if key in _JSON_PARAMS:
        try:
            return json.loads(value)
        except ValueError:
            raise bad(f"can't parse {key} JSON object") from None
    if key in _INT_PARAMS and re.fullmatch(r"-?\d+", value.strip()):
        return int(value)
    if key in _FLOAT_PARAMS:
        try:
            return float(value)
        except ValueError:
            raise bad(f"wrong {key} specified") from None
    if value in ("true", "false"):
        return value == "true"
    return value


__all__ = ["FACTS", "METHODS", "ApiError", "LoggedRequest", "Sandbox"]
