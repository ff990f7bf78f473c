"""A local stand-in for the Telegram Bot API, over real HTTP, with a driver for tests and demos.

It speaks enough of the Bot API for python-telegram-bot to run against it unchanged, rejects what
Telegram rejects (with Telegram's error shape), enforces the rate limits with 429 + retry_after,
and injects faults on request. Method names and required parameters come from
`botapi_facts.json`, derived from the official machine-readable description (`gen_facts.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import json
import logging
import math
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from aiohttp import web
from multidict import MultiDictProxy

from bot.limits import TelegramLimits, counts_toward_limits
from bot.sandbox import methods
from bot.sandbox.errors import ApiError, bad
from bot.sandbox.transcript import render_transcript
from bot.sandbox.world import (
    JSON,
    CallbackAnswer,
    Event,
    SentMessage,
    SimChat,
    SimUser,
    StoredFile,
    image_size,
    now_unix,
    tiny_png,
)

log = logging.getLogger(__name__)

FACTS = json.loads(Path(__file__).with_name("botapi_facts.json").read_text(encoding="utf-8"))
METHODS: dict[str, JSON] = FACTS["methods"]
_BY_LOWER = {name.lower(): name for name in METHODS}

# Parameters that arrive JSON-serialised inside form fields.
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
    }
)
_INT_PARAMS = frozenset(
    {
        "chat_id",
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
FaultKind = Literal["5xx", "timeout", "drop"]


@dataclass
class LoggedRequest:
    t: float
    method: str
    chat_id: int | str | None
    status: int
    messages: int  # how many messages it put into the chat (0 unless accepted)


@dataclass
class _Fault:
    kind: FaultKind | Literal["429"]
    remaining: int
    method: str | None = None
    chat_id: int | None = None
    retry_after: int = 1

    def matches(self, method: str, chat_id: object) -> bool:
        if self.method is not None and self.method != method:
            return False
        if self.kind == "429" and not counts_toward_limits(method):
            return False
        return self.chat_id is None or self.chat_id == chat_id


class Sandbox:
    """The stand-in server plus its simulated world and driver API."""

    def __init__(
        self,
        token: str = "123456:TEST",
        *,
        bot_id: int = 7000000001,
        bot_username: str = "greengrid_bot",
        bot_name: str = "greengrid",
        can_read_all_group_messages: bool = False,
        limits: TelegramLimits | None = None,
        tolerance_s: float = 0.02,
        timeout_fault_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.token = token
        self.bot = SimUser(bot_id, bot_name, bot_username, None)
        self.can_read_all_group_messages = can_read_all_group_messages
        self.limits = limits
        self.tolerance_s = tolerance_s
        self.timeout_fault_s = timeout_fault_s
        self.clock = clock
        self.users: dict[int, SimUser] = {}
        self.chats: dict[int, SimChat] = {}
        self.files: dict[str, StoredFile] = {}
        self._files_by_unique: dict[str, StoredFile] = {}
        self._messages: list[SentMessage] = []
        self._by_key: dict[tuple[int, int], SentMessage] = {}
        self._updates: list[JSON] = []
        self._update_ids = itertools.count(1)
        self.last_offset_confirmed = 0
        self._releasing = False
        self.callback_answers: list[CallbackAnswer] = []
        self._queries: dict[str, tuple[int, int, int]] = {}  # id -> (user, chat, message)
        self._commands: dict[tuple[str, str], list[JSON]] = {}
        self.webhook: JSON = {}
        self.events: list[Event] = []
        self._seq = 0
        self.request_log: list[LoggedRequest] = []
        self.count_429 = 0
        self._faults: list[_Fault] = []
        self._fault_rate = 0.0
        self._fault_kinds: tuple[FaultKind, ...] = ("5xx",)
        self._random = random.Random(0)
        self._changed: asyncio.Condition | None = None
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self.port = 0
        self._photo_seed = itertools.count(1)
        self._media_groups = itertools.count(1)
        self._query_ids = itertools.count(1)

    # ---------------------------------------------------------------- life cycle

    def app(self) -> web.Application:
        app = web.Application(client_max_size=60 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle_api)
        app.router.add_get("/file/bot{token}/{path:.+}", self._handle_file)
        from bot.sandbox.control import add_control_routes

        add_control_routes(app, self)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._changed = asyncio.Condition()
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        self._site = web.TCPSite(self._runner, host, port)
        await self._site.start()
        server = self._site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        self.host = host

    async def stop(self) -> None:
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
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_base_url(self) -> str:
        return f"{self.root_url}/bot"

    @property
    def file_base_url(self) -> str:
        return f"{self.root_url}/file/bot"

    # ---------------------------------------------------------------- world set-up

    def add_user(
        self,
        user_id: int,
        first_name: str,
        *,
        username: str | None = None,
        language_code: str | None = "zh-hans",
        last_name: str | None = None,
    ) -> SimUser:
        user = SimUser(user_id, first_name, username, language_code, last_name)
        self.users[user_id] = user
        return user

    def add_group(
        self,
        chat_id: int,
        title: str,
        *,
        members: list[int],
        admins: list[int] | None = None,
        bot_is_member: bool = True,
        bot_is_admin: bool = False,
        supergroup: bool = True,
    ) -> SimChat:
        if chat_id >= 0:
            raise ValueError("group chat ids are negative")
        chat = SimChat(
            chat_id,
            "supergroup" if supergroup else "group",
            title,
            set(members),
            set(admins or []),
            bot_is_member,
            bot_is_admin,
        )
        self.chats[chat_id] = chat
        return chat

    def block_bot(self, user_id: int, blocked: bool = True) -> None:
        self.users[user_id].blocked = blocked

    def _private(self, user: SimUser) -> SimChat:
        chat = self.chats.get(user.id)
        if chat is None:
            chat = SimChat(user.id, "private")
            self.chats[user.id] = chat
        user.started = True
        return chat

    # ---------------------------------------------------------------- driver: users act

    def _event(self, chat_id: int, who: str, kind: str, text: str) -> None:
        self._seq += 1
        self.events.append(Event(self._seq, chat_id, who, kind, text))
        self._notify()

    def _notify(self) -> None:
        if self._changed is None:
            return
        changed = self._changed

        async def wake() -> None:
            async with changed:
                changed.notify_all()

        with contextlib.suppress(RuntimeError):  # no loop yet: nobody can be waiting
            asyncio.get_running_loop().create_task(wake())

    def queue_update(self, update: JSON) -> JSON:
        update = {"update_id": next(self._update_ids), **update}
        self._updates.append(update)
        self._notify()
        return update

    def _user_message(
        self, user_id: int, chat_id: int | None, extra: JSON, reply_to: JSON | int | None
    ) -> tuple[JSON, SimChat]:
        user = self.users[user_id]
        chat = self._private(user) if chat_id is None or chat_id == user_id else self.chats[chat_id]
        if chat.type != "private" and user_id not in chat.members:
            raise ValueError(f"user {user_id} is not in chat {chat.id}")
        message: JSON = {
            "message_id": chat.take_message_id(),
            "from": user.as_json(),
            "chat": chat.as_json(self.users),
            "date": now_unix(),
            **extra,
        }
        if reply_to is not None:
            reply_id = reply_to if isinstance(reply_to, int) else reply_to["message_id"]
            original = self._by_key.get((chat.id, reply_id))
            message["reply_to_message"] = (
                self._message_json(original)
                if original is not None
                else reply_to
                if isinstance(reply_to, dict)
                else {"message_id": reply_id, "chat": chat.as_json(self.users), "date": now_unix()}
            )
        return message, chat

    def _entities(self, text: str) -> list[JSON]:
        entities: list[JSON] = []
        match = re.match(r"/[A-Za-z0-9_]{1,32}(@[A-Za-z0-9_]{3,64})?", text)
        if match:
            entities.append({"type": "bot_command", "offset": 0, "length": _u16(match.group(0))})
        for mention in re.finditer(r"@[A-Za-z0-9_]{5,32}", text):
            if match and mention.start() < match.end():
                continue
            entities.append(
                {
                    "type": "mention",
                    "offset": _u16(text[: mention.start()]),
                    "length": _u16(mention.group(0)),
                }
            )
        return entities

    def send_text(
        self,
        user_id: int,
        text: str,
        *,
        chat_id: int | None = None,
        reply_to: JSON | int | None = None,
    ) -> JSON:
        extra: JSON = {"text": text}
        entities = self._entities(text)
        if entities:
            extra["entities"] = entities
        message, chat = self._user_message(user_id, chat_id, extra, reply_to)
        self._event(chat.id, self.users[user_id].name, "user", text)
        self.queue_update({"message": message})
        return message

    def _store_file(self, data: bytes, prefix: str, suffix: str) -> StoredFile:
        unique = hashlib.sha256(data).hexdigest()[:16]
        existing = self._files_by_unique.get(unique)
        if existing is not None:
            return existing
        n = len(self.files) + 1
        stored = StoredFile(
            f"{prefix}{n:06d}{unique[:8]}", unique, data, f"{prefix}/file_{n}{suffix}"
        )
        self.files[stored.file_id] = stored
        self._files_by_unique[unique] = stored
        return stored

    def _photo_sizes(self, stored: StoredFile) -> list[JSON]:
        width, height = image_size(stored.data)
        return [
            {
                "file_id": stored.file_id,
                "file_unique_id": stored.file_unique_id,
                "width": width,
                "height": height,
                "file_size": len(stored.data),
            }
        ]

    def send_photo(
        self,
        user_id: int,
        *,
        chat_id: int | None = None,
        image: bytes | None = None,
        caption: str | None = None,
        media_group_id: str | None = None,
        reply_to: JSON | int | None = None,
        declared_size: int | None = None,
    ) -> JSON:
        """``declared_size`` pretends the photo is that large (Telegram's file_size)."""
        stored = self._store_file(image or tiny_png(next(self._photo_seed)), "photos", ".png")
        sizes = self._photo_sizes(stored)
        if declared_size is not None:
            sizes[-1]["file_size"] = declared_size
        extra: JSON = {"photo": sizes}
        if caption is not None:
            extra["caption"] = caption
        if media_group_id is not None:
            extra["media_group_id"] = media_group_id
        message, chat = self._user_message(user_id, chat_id, extra, reply_to)
        label = "[photo]" + (f" {caption}" if caption else "")
        self._event(chat.id, self.users[user_id].name, "user", label)
        self.queue_update({"message": message})
        return message

    async def send_album(
        self,
        user_id: int,
        count_or_images: int | list[bytes],
        *,
        chat_id: int | None = None,
        caption: str | None = None,
        shuffle: bool = False,
        delay_s: float = 0.0,
    ) -> list[JSON]:
        """An album: one update per item sharing a media_group_id, the caption on the first.
        ``shuffle`` delivers the parts out of order; ``delay_s`` spaces them in time."""
        images = (
            [tiny_png(next(self._photo_seed)) for _ in range(count_or_images)]
            if isinstance(count_or_images, int)
            else count_or_images
        )
        group = f"album{next(self._media_groups)}"
        user = self.users[user_id]
        chat = self._private(user) if chat_id is None else self.chats[chat_id]
        messages: list[JSON] = []
        for i, image in enumerate(images):
            stored = self._store_file(image, "photos", ".png")
            extra: JSON = {"photo": self._photo_sizes(stored), "media_group_id": group}
            if i == 0 and caption is not None:
                extra["caption"] = caption
            messages.append(self._user_message(user_id, chat.id, extra, None)[0])
        label = f"[album ×{len(images)}]" + (f" {caption}" if caption else "")
        self._event(chat.id, user.name, "user", label)
        order = list(messages)
        if shuffle:
            self._random.shuffle(order)
        for message in order:
            self.queue_update({"message": message})
            if delay_s:
                await asyncio.sleep(delay_s)
        return messages

    def send_document(
        self,
        user_id: int,
        data: bytes,
        file_name: str,
        mime_type: str,
        *,
        chat_id: int | None = None,
        caption: str | None = None,
    ) -> JSON:
        stored = self._store_file(data, "documents", Path(file_name).suffix)
        extra: JSON = {
            "document": {
                "file_id": stored.file_id,
                "file_unique_id": stored.file_unique_id,
                "file_name": file_name,
                "mime_type": mime_type,
                "file_size": len(data),
            }
        }
        if caption is not None:
            extra["caption"] = caption
        message, chat = self._user_message(user_id, chat_id, extra, None)
        self._event(chat.id, self.users[user_id].name, "user", f"[file {file_name}]")
        self.queue_update({"message": message})
        return message

    def send_location(
        self, user_id: int, latitude: float, longitude: float, *, chat_id: int | None = None
    ) -> JSON:
        extra: JSON = {"location": {"latitude": latitude, "longitude": longitude}}
        message, chat = self._user_message(user_id, chat_id, extra, None)
        self._event(
            chat.id, self.users[user_id].name, "user", f"[location {latitude}, {longitude}]"
        )
        self.queue_update({"message": message})
        return message

    def press(
        self,
        user_id: int,
        message: SentMessage,
        *,
        text: str | None = None,
        data: str | None = None,
    ) -> str:
        """The user taps a button of ``message`` (by its text), or sends raw ``data`` as if from
        a forged or outdated button. Returns the callback query id."""
        if data is None:
            if text is None:
                raise ValueError("press needs the button's text or raw data")
            data = message.button_data(text)
        user = self.users[user_id]
        query_id = str(next(self._query_ids))
        self._queries[query_id] = (user_id, message.chat_id, message.message_id)
        self._event(
            message.chat_id, user.name, "press", f"[{text}]" if text else f"[data {data!r}]"
        )
        self.queue_update(
            {
                "callback_query": {
                    "id": query_id,
                    "from": user.as_json(),
                    "chat_instance": str(message.chat_id),
                    "message": self._message_json(message),
                    "data": data,
                }
            }
        )
        return query_id

    def bot_added_to_group(self, chat_id: int, by_user_id: int) -> JSON:
        chat = self.chats[chat_id]
        chat.bot_is_member = True
        bot = self.bot.as_json() | {"is_bot": True}
        self._event(chat_id, self.users[by_user_id].name, "system", "adds the bot to the group")
        return self.queue_update(
            {
                "my_chat_member": {
                    "chat": chat.as_json(self.users),
                    "from": self.users[by_user_id].as_json(),
                    "date": now_unix(),
                    "old_chat_member": {"status": "left", "user": bot},
                    "new_chat_member": {"status": "member", "user": bot},
                }
            }
        )

    # ---------------------------------------------------------------- driver: observe

    def mark(self) -> int:
        return self._seq

    def sent(self, chat_id: int | None = None) -> list[SentMessage]:
        return [m for m in self._messages if chat_id is None or m.chat_id == chat_id]

    def message(self, chat_id: int, message_id: int) -> SentMessage:
        return self._by_key[(chat_id, message_id)]

    def commands(self, scope: JSON | None = None, language_code: str | None = None) -> list[JSON]:
        key = (json.dumps(scope or {"type": "default"}, sort_keys=True), language_code or "")
        return self._commands.get(key, [])

    async def _wait(
        self, ready: Callable[[], bool], timeout: float, what: Callable[[], str]
    ) -> None:
        assert self._changed is not None, "start() the sandbox first"
        deadline = time.monotonic() + timeout
        async with self._changed:
            while not ready():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"timed out after {timeout}s waiting for {what()}")
                try:
                    await asyncio.wait_for(self._changed.wait(), left)
                except TimeoutError:
                    continue

    async def wait_messages(
        self,
        chat_id: int | None = None,
        *,
        n: int = 1,
        since: int | None = None,
        timeout: float = 10.0,
    ) -> list[SentMessage]:
        """The next ``n`` messages the bot sends (to ``chat_id``) after the mark ``since``."""
        start = self._seq if since is None else since

        def new() -> list[SentMessage]:
            return [
                m
                for m in self._messages
                if m.seq > start and (chat_id is None or m.chat_id == chat_id)
            ]

        def describe() -> str:
            got = [m.content[:80] for m in new()]
            return f"{n} message(s) to {chat_id}; got {got}; recent events: {self._recent()}"

        await self._wait(lambda: len(new()) >= n, timeout, describe)
        return new()[:n]

    async def wait_change(
        self, message: SentMessage, *, since: int, timeout: float = 10.0
    ) -> SentMessage:
        """``message`` as it is once edited after ``since``, or the bot's next message in its
        chat, whichever comes first."""

        def changed() -> SentMessage | None:
            if any(seq > since for seq, _ in message.edits):
                return message
            later = [m for m in self._messages if m.seq > since and m.chat_id == message.chat_id]
            return later[0] if later else None

        await self._wait(
            lambda: changed() is not None,
            timeout,
            lambda: f"an edit of message {message.message_id}; {self._recent()}",
        )
        result = changed()
        assert result is not None
        return result

    async def wait_answer(self, query_id: str, timeout: float = 10.0) -> CallbackAnswer:
        def found() -> CallbackAnswer | None:
            return next((a for a in self.callback_answers if a.query_id == query_id), None)

        await self._wait(
            lambda: found() is not None,
            timeout,
            lambda: f"an answer to callback query {query_id}; {self._recent()}",
        )
        answer = found()
        assert answer is not None
        return answer

    def _recent(self) -> list[str]:
        return [f"{e.who}: {e.text[:60]}" for e in self.events[-6:]]

    def transcript(self) -> str:
        return render_transcript(self.events, self.chats, self.users)

    # ---------------------------------------------------------------- faults and limits

    def inject_faults(
        self,
        kind: FaultKind,
        *,
        count: int = 1,
        method: str | None = None,
        chat_id: int | None = None,
    ) -> None:
        """The next ``count`` matching calls fail. ``5xx``: 502, nothing done. ``timeout``: done,
        then the answer stalls past the client's patience (as real networks can). ``drop``: the
        connection closes with no answer, nothing done."""
        self._faults.append(_Fault(kind, count, method, chat_id))

    def force_429(self, chat_id: int, retry_after: int, count: int = 1) -> None:
        self._faults.append(_Fault("429", count, None, chat_id, retry_after))

    def clear_faults(self) -> None:
        self._faults.clear()
        self._fault_rate = 0.0

    def fault_rate(
        self, p: float, kinds: tuple[FaultKind, ...] = ("5xx", "timeout", "drop"), seed: int = 0
    ) -> None:
        """A fraction ``p`` of all calls (getUpdates included) fail with one of ``kinds``."""
        self._fault_rate, self._fault_kinds, self._random = p, kinds, random.Random(seed)

    def _take_fault(self, method: str, chat_id: object) -> _Fault | None:
        for fault in self._faults:
            if fault.remaining > 0 and fault.matches(method, chat_id):
                fault.remaining -= 1
                return fault
        if self._fault_rate and self._random.random() < self._fault_rate:
            return _Fault(self._random.choice(self._fault_kinds), 1)
        return None

    def _window_tolerance(self, window_s: float) -> float:
        return min(self.tolerance_s, window_s * 0.2)

    def _check_rate(self, method: str, chat_id: int | str, cost: int, now: float) -> None:
        """429 if accepting ``cost`` more messages would break a window (checked on arrival)."""
        if self.limits is None:
            return
        rate = self.limits.chat_window(chat_id)
        waits = []
        for limit, relevant in (
            (self.limits.overall, [r for r in self.request_log if r.messages]),
            (rate, [r for r in self.request_log if r.messages and r.chat_id == chat_id]),
        ):
            start = now - limit.window_s + self._window_tolerance(limit.window_s)
            # A batch larger than a window fills it (Telegram delivers albums whole).
            times = [r.t for r in relevant if r.t > start for _ in range(min(r.messages, limit.n))]
            effective = min(cost, limit.n)
            if len(times) + effective > limit.n:
                oldest = sorted(times)[len(times) + effective - limit.n - 1]
                waits.append(oldest + limit.window_s - now)
        if waits:
            self.count_429 += 1
            retry = max(1, math.ceil(max(waits)))
            raise ApiError(429, f"Too Many Requests: retry after {retry}", retry)

    def limit_violations(self) -> list[str]:
        """Re-check every accepted message in the log against the limits."""
        if self.limits is None:
            return []
        found: list[str] = []
        accepted = [r for r in self.request_log if r.messages and r.status == 200]
        groups: dict[object, list[float]] = {"overall": []}
        for r in accepted:
            assert r.chat_id is not None
            chat_n = self.limits.chat_window(r.chat_id).n
            groups["overall"] += [r.t] * min(r.messages, self.limits.overall.n)
            groups.setdefault(r.chat_id, []).extend([r.t] * min(r.messages, chat_n))
        for key, times in groups.items():
            limit = (
                self.limits.overall if key == "overall" else self.limits.chat_window(key)  # type: ignore[arg-type]
            )
            times.sort()
            slack = self._window_tolerance(limit.window_s)
            for i in range(len(times) - limit.n):
                if times[i + limit.n] - times[i] < limit.window_s - slack:
                    found.append(
                        f"{key}: {limit.n + 1} messages within "
                        f"{times[i + limit.n] - times[i]:.3f}s (limit {limit.n} per "
                        f"{limit.window_s}s)"
                    )
                    break
        return found

    # ---------------------------------------------------------------- HTTP

    async def _params(self, request: web.Request) -> tuple[JSON, dict[str, bytes]]:
        raw: dict[str, Any] = dict(request.query)
        uploads: dict[str, bytes] = {}
        if request.content_type == "application/json":
            body = await request.read()
            if body:
                decoded = json.loads(body)
                if not isinstance(decoded, dict):
                    raise bad("parameters must be a JSON object")
                raw.update(decoded)
        elif request.content_type in ("multipart/form-data", "application/x-www-form-urlencoded"):
            form: MultiDictProxy[Any] = await request.post()
            for key, value in form.items():
                if isinstance(value, web.FileField):
                    uploads[key] = value.file.read()
                else:
                    raw[key] = value
        params: JSON = {}
        for key, value in raw.items():
            if isinstance(value, str):
                if key in _JSON_PARAMS:
                    try:
                        value = json.loads(value)
                    except ValueError:
                        raise bad(f"can't parse {key} JSON object") from None
                elif key in _INT_PARAMS and re.fullmatch(r"-?\d+", value):
                    value = int(value)
                elif key in _FLOAT_PARAMS:
                    try:
                        value = float(value)
                    except ValueError:
                        raise bad(f"{key} must be a number") from None
                elif value in ("true", "false"):
                    value = value == "true"
            params[key] = value
        for key in uploads:
            params.setdefault(key, f"attach://{key}")
        return params, uploads

    async def _handle_api(self, request: web.Request) -> web.StreamResponse:
        if request.match_info["token"] != self.token:
            return web.json_response(
                {"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401
            )
        method = _BY_LOWER.get(request.match_info["method"].lower())
        if method is None:
            return web.json_response(
                {"ok": False, "error_code": 404, "description": "Not Found"}, status=404
            )
        try:
            params, uploads = await self._params(request)
        except ApiError as exc:
            return web.json_response(exc.body(), status=exc.code)
        chat_id = params.get("chat_id")
        fault = self._take_fault(method, chat_id)
        now = self.clock()
        if fault is not None and fault.kind == "429":
            self.count_429 += 1
            self.request_log.append(LoggedRequest(now, method, chat_id, 429, 0))
            err = ApiError(
                429, f"Too Many Requests: retry after {fault.retry_after}", fault.retry_after
            )
            return web.json_response(err.body(), status=429)
        if fault is not None and fault.kind == "5xx":
            self.request_log.append(LoggedRequest(now, method, chat_id, 502, 0))
            return web.json_response(
                {"ok": False, "error_code": 502, "description": "Bad Gateway"}, status=502
            )
        if fault is not None and fault.kind == "drop":
            self.request_log.append(LoggedRequest(now, method, chat_id, 0, 0))
            if request.transport is not None:
                request.transport.close()
            return web.Response(status=500)
        try:
            result, messages = await self._call(method, params, uploads, now)
        except ApiError as exc:
            self.request_log.append(LoggedRequest(now, method, chat_id, exc.code, 0))
            return web.json_response(exc.body(), status=exc.code)
        self.request_log.append(LoggedRequest(now, method, chat_id, 200, messages))
        if fault is not None and fault.kind == "timeout":
            await asyncio.sleep(self.timeout_fault_s)
        return web.json_response({"ok": True, "result": result})

    async def _handle_file(self, request: web.Request) -> web.StreamResponse:
        if request.match_info["token"] != self.token:
            return web.json_response(
                {"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401
            )
        path = request.match_info["path"]
        for stored in self.files.values():
            if stored.file_path == path:
                return web.Response(body=stored.data, content_type="application/octet-stream")
        return web.json_response(
            {"ok": False, "error_code": 404, "description": "Not Found"}, status=404
        )

    # ---------------------------------------------------------------- methods

    async def _call(
        self, method: str, params: JSON, uploads: dict[str, bytes], now: float
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
            cost = (
                len(params["media"])
                if method == "sendMediaGroup" and isinstance(params.get("media"), list)
                else 1
            )
            methods.check_target(self, chat_id)
            self._check_rate(method, chat_id, cost, now)
        return await handler(self, params, uploads)

    # helpers used by the method handlers

    def record_sent(self, message: SentMessage) -> None:
        self._seq += 1
        message.seq = self._seq
        self._messages.append(message)
        self._by_key[(message.chat_id, message.message_id)] = message
        label = message.content
        if message.photo:
            label = "[photo] " + label
        if message.document:
            label = f"[file {message.document.get('file_name', '')}] " + label
        if message.location:
            label = "[location]"
        self.events.append(Event(self._seq, message.chat_id, "bot", "bot", label.strip()))
        self._attach_buttons(message)
        self._notify()

    def _attach_buttons(self, message: SentMessage) -> None:
        if message.buttons:
            self.events[-1].text += "\n" + "\n".join(
                " ".join(f"[{b}]" for b in row) for row in message.buttons
            )

    def record_edit(self, message: SentMessage, text: str | None) -> None:
        self._seq += 1
        message.edits.append((self._seq, text))
        shown = message.content + (
            "\n" + "\n".join(" ".join(f"[{b}]" for b in row) for row in message.buttons)
            if message.buttons
            else ""
        )
        self.events.append(Event(self._seq, message.chat_id, "bot", "edit", shown.strip()))
        self._notify()

    def record_answer(self, answer: CallbackAnswer, chat_id: int) -> None:
        self._seq += 1
        answer.seq = self._seq
        self.callback_answers.append(answer)
        if answer.text:
            self.events.append(Event(self._seq, chat_id, "bot", "answer", answer.text))
        self._notify()

    def message_json(self, message: SentMessage) -> JSON:
        return self._message_json(message)

    def _message_json(self, message: SentMessage) -> JSON:
        chat = self.chats[message.chat_id]
        data: JSON = {
            "message_id": message.message_id,
            "from": self.bot.as_json() | {"is_bot": True},
            "chat": chat.as_json(self.users),
            "date": int(message.time),
        }
        if message.text is not None:
            data["text"] = message.text
        if message.caption is not None:
            data["caption"] = message.caption
        if message.photo:
            data["photo"] = [
                size for fid in message.photo[-1:] for size in self._photo_sizes(self.files[fid])
            ]
        if message.document:
            data["document"] = message.document
        if message.location:
            data["location"] = message.location
        if message.media_group_id:
            data["media_group_id"] = message.media_group_id
        if message.reply_markup:
            data["reply_markup"] = message.reply_markup
        if message.edits:
            data["edit_date"] = now_unix()
        if message.reply_to_message_id is not None:
            original = self._by_key.get((message.chat_id, message.reply_to_message_id))
            data["reply_to_message"] = (
                self._message_json(original)
                if original is not None
                else {
                    "message_id": message.reply_to_message_id,
                    "chat": chat.as_json(self.users),
                    "date": now_unix(),
                }
            )
        return data

    def queries(self) -> dict[str, tuple[int, int, int]]:
        return self._queries

    def commands_store(self) -> dict[tuple[str, str], list[JSON]]:
        return self._commands

    def take_updates(self, offset: int | None, limit: int) -> list[JSON]:
        if offset is not None and offset > 0:
            self.last_offset_confirmed = max(self.last_offset_confirmed, offset)
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
        return self._updates[:limit]

    async def wait_updates(self, timeout: float) -> None:
        assert self._changed is not None
        deadline = time.monotonic() + timeout
        async with self._changed:
            while not self._updates and not self._releasing:
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                try:
                    await asyncio.wait_for(self._changed.wait(), left)
                except TimeoutError:
                    return

    def release_pollers(self) -> None:
        """Answer every waiting long poll now (empty), so a bot can stop without waiting out
        its poll timeout; later polls wait as usual."""
        self._releasing = True
        self._notify()

        async def back_to_normal() -> None:
            await asyncio.sleep(0.05)
            self._releasing = False

        with contextlib.suppress(RuntimeError):
            asyncio.get_running_loop().create_task(back_to_normal())

    def file_for(self, file_id: str) -> StoredFile | None:
        return self.files.get(file_id)

    def store_upload(self, data: bytes, prefix: str, suffix: str) -> StoredFile:
        return self._store_file(data, prefix, suffix)

    def photo_sizes(self, stored: StoredFile) -> list[JSON]:
        return self._photo_sizes(stored)


def _u16(text: str) -> int:
    """Telegram counts entity offsets in UTF-16 code units."""
    return len(text.encode("utf-16-le")) // 2


__all__ = ["ApiError", "LoggedRequest", "Sandbox"]
