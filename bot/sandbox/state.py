"""The simulated world's state: who exists, what was said, which updates wait for the bot.

`World` keeps everything the Bot API methods and the driver share. It does no HTTP: the server
(`server.py`) and the driver (`driver.py`) build on it.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import itertools
import json
import time
from collections.abc import Callable

from bot.sandbox.errors import ApiError
from bot.sandbox.webhook import Delivery
from bot.sandbox.world import (
    JSON,
    CallbackAnswer,
    Event,
    PendingQuery,
    SentMessage,
    SimChat,
    SimUser,
    StoredFile,
    image_size,
    now_unix,
)

OPT_IN_UPDATES = frozenset({"chat_member", "message_reaction", "message_reaction_count"})
CONFLICT = (
    "Conflict: terminated by other getUpdates request; make sure that only one bot instance "
    "is running"
)


class World:
    def __init__(
        self,
        bot: SimUser,
        *,
        can_read_all_group_messages: bool,
        clock: Callable[[], float],
    ) -> None:
        self.bot = bot
        self.can_read_all_group_messages = can_read_all_group_messages
        self.clock = clock
        self.users: dict[int, SimUser] = {}
        self.chats: dict[int, SimChat] = {}
        self.files: dict[str, StoredFile] = {}
        self._files_by_unique: dict[str, StoredFile] = {}
        self._files_by_path: dict[str, StoredFile] = {}
        self._messages: list[SentMessage] = []
        self._by_key: dict[tuple[int, int], SentMessage] = {}
        self._user_messages: dict[tuple[int, int], JSON] = {}
        self._updates: list[JSON] = []
        self._update_ids = itertools.count(1)
        self.last_offset_confirmed = 0
        self.updates_fetched = 0  # highest update_id handed to the bot at least once
        # How often each update was handed out (getUpdates or a webhook POST): more than once
        # means the bot did not acknowledge it the first time.
        self.handed_out: collections.Counter[int] = collections.Counter()
        self.callback_answers: list[CallbackAnswer] = []
        self.callback_timeout_s = 15.0  # Telegram gives up on an unanswered query about then
        self._queries: dict[str, PendingQuery] = {}
        self._commands: dict[tuple[str, str], list[JSON]] = {}
        self.menu_buttons: dict[int | None, JSON] = {}
        self.webhook: JSON = {}
        self.webhook_deliveries: list[Delivery] = []  # every POST to the bot's webhook
        self.allowed_updates: list[str] = []  # empty: all but the opt-in kinds
        self.events: list[Event] = []
        self._seq = 0
        # One event per change; waiters take the current one and a change replaces it. Plain
        # and synchronous, so a driver call wakes a long poll without a task in between.
        self._changed = asyncio.Event()
        self._releasing = False
        self._closing = False
        self._poll_generation = 0

    # ---------------------------------------------------------------- change notification

    def _notify(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def _wait_change(self, timeout: float) -> None:
        """Until the next change (or ``timeout`` seconds)."""
        changed = self._changed
        try:
            await asyncio.wait_for(changed.wait(), max(timeout, 0))
        except TimeoutError:
            return

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _event(
        self,
        chat_id: int,
        who: str,
        kind: str,
        text: str,
        *,
        album: str | None = None,
        hidden: bool = False,
    ) -> None:
        self.events.append(Event(self._next_seq(), chat_id, who, kind, text, album, hidden))
        self._notify()

    # ---------------------------------------------------------------- people and chats

    def add_user(
        self,
        user_id: int,
        first_name: str,
        *,
        username: str | None = None,
        language_code: str | None = "zh-hans",
        last_name: str | None = None,
    ) -> SimUser:
        if user_id <= 0:
            raise ValueError("user ids are positive")
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
        """A group as it already is (no updates); see `bot_added_to_group` for the arrival."""
        if chat_id >= 0:
            raise ValueError("group chat ids are negative")
        unknown = [uid for uid in [*members, *(admins or [])] if uid not in self.users]
        if unknown:
            raise ValueError(f"add_user() these first: {unknown}")
        chat = SimChat(
            chat_id,
            "supergroup" if supergroup else "group",
            title,
            set(members) | set(admins or []),
            set(admins or []),
            bot_is_member,
            bot_is_admin,
        )
        self.chats[chat_id] = chat
        return chat

    def _private(self, user: SimUser) -> SimChat:
        """The user's private chat with the bot; it exists once the user has written to it."""
        chat = self.chats.get(user.id)
        if chat is None:
            chat = SimChat(user.id, "private")
            self.chats[user.id] = chat
        user.started = True
        return chat

    def chat_label(self, chat_id: int) -> str:
        chat = self.chats.get(chat_id)
        if chat is None:
            return str(chat_id)
        if chat.type == "private":
            user = self.users.get(chat.id)
            return f"{user.name if user else chat.id} ⇄ bot"
        return chat.title or str(chat.id)

    def bot_json(self) -> JSON:
        return self.bot.as_json() | {"is_bot": True}

    # ---------------------------------------------------------------- updates

    def queue_update(self, update: JSON) -> JSON:
        """Queue a raw update (``update_id`` is added) and wake the bot's long poll. Kinds the
        bot did not ask for (allowed_updates) are not kept, as Telegram does."""
        update = {"update_id": next(self._update_ids), **update}
        kinds = [k for k in update if k != "update_id"]
        wanted = (
            any(k in self.allowed_updates for k in kinds)
            if self.allowed_updates
            else not any(k in OPT_IN_UPDATES for k in kinds)
        )
        if wanted:
            self._updates.append(update)
            self._notify()
        return update

    def take_updates(self, offset: int | None, limit: int) -> list[JSON]:
        """Telegram's semantics: ``offset`` confirms every update before it, which is dropped."""
        if offset is not None and offset > 0:
            self.last_offset_confirmed = max(self.last_offset_confirmed, offset)
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
        return self._updates[:limit]

    @property
    def pending_updates(self) -> int:
        return len(self._updates)

    def next_update(self) -> JSON | None:
        """The oldest update not yet confirmed (what a webhook delivers next)."""
        return self._updates[0] if self._updates else None

    def confirm_update(self, update_id: int) -> None:
        """The bot's webhook answered 2xx: the update is delivered and dropped."""
        self._updates = [u for u in self._updates if u["update_id"] != update_id]
        self.updates_fetched = max(self.updates_fetched, update_id)
        self._notify()

    def note_delivery(self, delivery: Delivery) -> None:
        self.webhook_deliveries.append(delivery)
        self.handed_out[delivery.update_id] += 1
        self._notify()

    def note_webhook_error(self, message: str) -> None:
        if self.webhook:
            self.webhook["last_error_date"] = int(time.time())
            self.webhook["last_error_message"] = message

    def note_fetched(self, updates: list[JSON]) -> None:
        self.handed_out.update(u["update_id"] for u in updates)
        if updates:
            self.updates_fetched = max(self.updates_fetched, updates[-1]["update_id"])
            self._notify()

    def new_poll(self) -> int:
        """A getUpdates arrived: any poll still waiting is terminated, as Telegram does."""
        self._poll_generation += 1
        self._notify()
        return self._poll_generation

    async def wait_updates(self, timeout: float, generation: int) -> None:
        """Until an update is queued, ``timeout`` passes, or the stand-in releases its polls.
        A newer poll from another client ends this one with 409 Conflict."""
        deadline = time.monotonic() + timeout
        while not self._updates and not self._releasing and not self._closing:
            if generation != self._poll_generation:
                raise ApiError(409, CONFLICT)
            left = deadline - time.monotonic()
            if left <= 0:
                return
            await self._wait_change(left)

    def release_pollers(self) -> None:
        """Answer every waiting long poll now (empty), so a bot can stop without waiting out
        its poll timeout; later polls wait as usual."""
        self._releasing = True
        self._notify()

        def back_to_normal() -> None:
            self._releasing = False

        try:
            asyncio.get_running_loop().call_later(0.05, back_to_normal)
        except RuntimeError:  # no loop: nobody is polling
            self._releasing = False

    # ---------------------------------------------------------------- files

    def store_file(self, data: bytes, prefix: str, suffix: str) -> StoredFile:
        """Same bytes, same file: ``file_unique_id`` is a hash of the content, as stable as
        Telegram's (the bot detects duplicate photos by it)."""
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
        self._files_by_path[stored.file_path] = stored
        return stored

    def file_for(self, file_id: str) -> StoredFile | None:
        return self.files.get(file_id)

    def file_at(self, file_path: str) -> StoredFile | None:
        return self._files_by_path.get(file_path)

    def photo_sizes(self, stored: StoredFile) -> list[JSON]:
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

    # ---------------------------------------------------------------- messages

    def message(self, chat_id: int, message_id: int) -> SentMessage:
        """A message the bot sent (KeyError if none)."""
        return self._by_key[(chat_id, message_id)]

    def user_message(self, chat_id: int, message_id: int) -> JSON | None:
        return self._user_messages.get((chat_id, message_id))

    def message_exists(self, chat_id: int, message_id: int) -> bool:
        bot = self._by_key.get((chat_id, message_id))
        if bot is not None:
            return not bot.deleted
        return (chat_id, message_id) in self._user_messages

    def message_json(self, message: SentMessage, *, nested: bool = False) -> JSON:
        """The bot's message as the Bot API returns it (valid for PTB's ``Message.de_json``)."""
        chat = self.chats[message.chat_id]
        data: JSON = {
            "message_id": message.message_id,
            "from": self.bot_json(),
            "chat": chat.as_json(self.users),
            "date": int(message.time),
        }
        if message.text is not None:
            data["text"] = message.text
        if message.caption is not None:
            data["caption"] = message.caption
        if message.photo:
            stored = self.files[message.photo[-1]]
            data["photo"] = self.photo_sizes(stored)
        if message.document:
            data["document"] = message.document
        if message.location:
            data["location"] = message.location
        if message.media_group_id:
            data["media_group_id"] = message.media_group_id
        # Only inline keyboards are part of a Message; reply keyboards stay with the client.
        if message.reply_markup and "inline_keyboard" in message.reply_markup:
            data["reply_markup"] = message.reply_markup
        if message.edits:
            data["edit_date"] = now_unix()
        if message.reply_to_message_id is not None and not nested:
            original = self.reply_target_json(message.chat_id, message.reply_to_message_id)
            if original is not None:
                data["reply_to_message"] = original
        return data

    def reply_target_json(self, chat_id: int, message_id: int) -> JSON | None:
        """Any message in the chat (the bot's or a user's) as a ``reply_to_message``, which
        Telegram never nests further."""
        bot = self._by_key.get((chat_id, message_id))
        if bot is not None:
            return self.message_json(bot, nested=True)
        user = self._user_messages.get((chat_id, message_id))
        if user is not None:
            return {k: v for k, v in user.items() if k != "reply_to_message"}
        return None

    def record_user_message(self, message: JSON) -> None:
        self._user_messages[(message["chat"]["id"], message["message_id"])] = message

    def record_sent(self, message: SentMessage, *, label: str | None = None) -> None:
        message.seq = self._next_seq()
        self._messages.append(message)
        self._by_key[(message.chat_id, message.message_id)] = message
        text = label if label is not None else describe(message)
        reply = self._quote(message.chat_id, message.reply_to_message_id)
        self.events.append(
            Event(message.seq, message.chat_id, "bot", "bot", reply + text, message.media_group_id)
        )
        self._notify()

    def _quote(self, chat_id: int, message_id: int | None) -> str:
        if message_id is None:
            return ""
        target = self.reply_target_json(chat_id, message_id)
        if target is None:
            return ""
        words = str(target.get("text") or target.get("caption") or "…").splitlines()[0]
        return f'↩ "{words[:24]}{"…" if len(words) > 24 else ""}" '

    def record_edit(self, message: SentMessage, text: str | None) -> None:
        seq = self._next_seq()
        message.edits.append((seq, text))
        self.events.append(Event(seq, message.chat_id, "bot", "edit", describe(message)))
        self._notify()

    def record_delete(self, message: SentMessage) -> None:
        message.deleted = True
        self._event(message.chat_id, "bot", "delete", message.content.splitlines()[0][:40])

    def record_answer(self, answer: CallbackAnswer, chat_id: int) -> None:
        answer.seq = self._next_seq()
        self.callback_answers.append(answer)
        if answer.text:
            kind = "alert" if answer.show_alert else "answer"
            self.events.append(Event(answer.seq, chat_id, "bot", kind, answer.text))
        self._notify()

    def record_error(self, chat_id: int, method: str, error: ApiError) -> None:
        """A refused call shows in the transcript: the reader sees what the bot tried."""
        self._event(chat_id, "bot", "error", f"{method}: {error.description}")

    def add_query(self, query_id: str, query: PendingQuery) -> None:
        self._queries[query_id] = query

    def take_query(self, query_id: str) -> PendingQuery | None:
        """The query if it can still be answered; answering it twice or late is refused."""
        query = self._queries.pop(query_id, None)
        if query is None or self.clock() - query.t > self.callback_timeout_s:
            return None
        return query

    @staticmethod
    def scope_key(scope: object, language_code: object) -> tuple[str, str]:
        return (json.dumps(scope or {"type": "default"}, sort_keys=True), str(language_code or ""))

    def set_commands(self, key: tuple[str, str], commands: list[JSON] | None) -> None:
        if commands is None:
            self._commands.pop(key, None)
        else:
            self._commands[key] = commands

    def get_commands(self, key: tuple[str, str]) -> list[JSON]:
        return self._commands.get(key, [])


def describe(message: SentMessage) -> str:
    """One transcript body for a bot message: content, attachments, buttons."""
    parts = []
    if message.photo:
        parts.append("[photo]")
    if message.document:
        parts.append(f"[file {message.document.get('file_name', '')}]")
    if message.location:
        parts.append(f"[location {message.location['latitude']}, {message.location['longitude']}]")
    if message.content:
        parts.append(message.content)
    body = " ".join(parts)
    if message.buttons:
        body += "\n" + "\n".join(" ".join(f"[{b}]" for b in row) for row in message.buttons)
    return body
