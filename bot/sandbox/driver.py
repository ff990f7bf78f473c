"""The driver: simulated people act ("this user, in this chat, sends this") and tests observe
what the bot sent. Each action builds the update Telegram would send, queues it and wakes the
bot's long poll; it returns the user's message (or the update / query id)."""

from __future__ import annotations

import asyncio
import itertools
import random
import re
import time
from collections.abc import Callable
from pathlib import Path

from bot.sandbox.state import World
from bot.sandbox.transcript import render_transcript
from bot.sandbox.world import (
    ADMIN_RIGHTS,
    JSON,
    CallbackAnswer,
    PendingQuery,
    SentMessage,
    SimChat,
    SimUser,
    now_unix,
    tiny_png,
)

_COMMAND = re.compile(r"(?<![\w/])/[A-Za-z0-9_]{1,32}(?:@[A-Za-z0-9_]{3,64})?(?![\w/])")
_MENTION = re.compile(r"(?<![\w@])@[A-Za-z0-9_]{5,32}\b")
_HASHTAG = re.compile(r"(?<![\w#])#\w+")


def utf16_len(text: str) -> int:
    """Telegram counts entity offsets and lengths in UTF-16 code units."""
    return len(text.encode("utf-16-le")) // 2


def entities(text: str) -> list[JSON]:
    """The entities Telegram's client would attach: commands, @mentions, #hashtags."""
    found: list[tuple[int, str, str]] = []
    for kind, pattern in (("bot_command", _COMMAND), ("mention", _MENTION), ("hashtag", _HASHTAG)):
        found += [(m.start(), kind, m.group(0)) for m in pattern.finditer(text)]
    return [
        {"type": kind, "offset": utf16_len(text[:start]), "length": utf16_len(token)}
        for start, kind, token in sorted(found)
    ]


class Driver(World):
    def __init__(
        self,
        bot: SimUser,
        *,
        can_read_all_group_messages: bool,
        clock: Callable[[], float],
    ) -> None:
        super().__init__(bot, can_read_all_group_messages=can_read_all_group_messages, clock=clock)
        self._photo_seed = itertools.count(1)
        self._media_groups = itertools.count(1)
        self._query_ids = itertools.count(1)
        self._random = random.Random(0)

    # ---------------------------------------------------------------- people act

    def open_private_chat(self, user_id: int) -> None:
        """The user opened the bot some time ago: the bot may write to them. No update is sent
        (for setting up many recipients at once; ``send_text`` is the visible way)."""
        self._private(self.users[user_id])

    def block_bot(self, user_id: int, blocked: bool = True) -> None:
        """The user blocks (or unblocks) the bot; the bot gets a my_chat_member update."""
        user = self.users[user_id]
        if user.blocked == blocked:
            return
        user.blocked = blocked
        if user.id in self.chats:
            statuses = ("member", "kicked") if blocked else ("kicked", "member")
            self._member_update(self.chats[user.id], user, *statuses)
            self._event(user.id, user.name, "system", "blocks the bot" if blocked else "unblocks")

    def bot_added_to_group(self, chat_id: int, by_user_id: int, *, admin: bool = False) -> JSON:
        """``by_user_id`` adds the bot: a my_chat_member update, then the service message."""
        chat = self.chats[chat_id]
        was = chat.bot_gone or "left"
        chat.bot_is_member, chat.bot_is_admin, chat.bot_gone = True, admin, None
        by = self.users[by_user_id]
        self._event(chat_id, by.name, "system", "adds the bot")
        update = self._member_update(chat, by, was, "administrator" if admin else "member")
        service, _ = self._user_message(
            by_user_id, chat_id, {"new_chat_members": [self.bot_json()]}
        )
        self.queue_update({"message": service})
        return update

    def remove_bot_from_group(self, chat_id: int, by_user_id: int) -> JSON:
        chat = self.chats[chat_id]
        old = "administrator" if chat.bot_is_admin else "member"
        chat.bot_is_member, chat.bot_is_admin, chat.bot_gone = False, False, "kicked"
        by = self.users[by_user_id]
        self._event(chat_id, by.name, "system", "removes the bot")
        return self._member_update(chat, by, old, "kicked")

    def bot_left(self, chat: SimChat, old: str) -> JSON:
        """The bot left ``chat`` by itself (leaveChat)."""
        self._event(chat.id, "bot", "system", "leaves")
        return self._member_update(chat, self.bot, old, "left")

    def _member_update(self, chat: SimChat, by: SimUser, old: str, new: str) -> JSON:
        def member(status: str) -> JSON:
            data: JSON = {"status": status, "user": self.bot_json()}
            if status == "kicked":
                data["until_date"] = 0
            if status == "administrator":
                data |= ADMIN_RIGHTS
            return data

        return self.queue_update(
            {
                "my_chat_member": {
                    "chat": chat.as_json(self.users),
                    "from": self.bot_json() if by is self.bot else by.as_json(),
                    "date": now_unix(),
                    "old_chat_member": member(old),
                    "new_chat_member": member(new),
                }
            }
        )

    def _chat_for(self, user: SimUser, chat_id: int | None) -> SimChat:
        if chat_id is None or chat_id == user.id:
            if user.blocked:  # writing to the bot again means unblocking it first
                self.block_bot(user.id, False)
            return self._private(user)
        chat = self.chats.get(chat_id)
        if chat is None:
            raise ValueError(f"no chat {chat_id}: add_group() it first")
        if user.id not in chat.members:
            raise ValueError(f"user {user.id} is not a member of chat {chat_id}")
        return chat

    def _user_message(
        self, user_id: int, chat_id: int | None, extra: JSON, reply_to: JSON | int | None = None
    ) -> tuple[JSON, SimChat]:
        user = self.users[user_id]
        chat = self._chat_for(user, chat_id)
        message: JSON = {
            "message_id": chat.take_message_id(),
            "from": user.as_json(),
            "chat": chat.as_json(self.users),
            "date": now_unix(),
            **extra,
        }
        if reply_to is not None:
            reply_id = reply_to if isinstance(reply_to, int) else int(reply_to["message_id"])
            original = self.reply_target_json(chat.id, reply_id)
            if original is None:
                raise ValueError(f"no message {reply_id} in chat {chat.id} to reply to")
            message["reply_to_message"] = original
        self.record_user_message(message)
        return message, chat

    def _bot_sees(self, chat: SimChat, message: JSON) -> bool:
        """Privacy mode: in groups a bot that is not an admin and cannot read all messages gets
        only commands, replies to its own messages and service messages."""
        if chat.type == "private":
            return True
        if not chat.bot_is_member:
            return False
        if self.can_read_all_group_messages or chat.bot_is_admin:
            return True
        if "new_chat_members" in message or "left_chat_member" in message:
            return True
        reply = message.get("reply_to_message") or {}
        if (reply.get("from") or {}).get("id") == self.bot.id:
            return True
        content = str(message.get("text") or message.get("caption") or "")
        command = _COMMAND.match(content)
        if command is None:
            return False
        addressed = command.group(0).partition("@")[2]
        return not addressed or addressed.lower() == (self.bot.username or "").lower()

    def _deliver(
        self, message: JSON, chat: SimChat, label: str, *, album: str | None = None
    ) -> JSON:
        user = self.users[message["from"]["id"]]
        seen = self._bot_sees(chat, message)
        reply = message.get("reply_to_message")
        quote = self._quote(chat.id, reply["message_id"]) if reply else ""
        self._event(chat.id, user.name, "user", quote + label, album=album, hidden=not seen)
        self._action_mark = self._seq
        if seen:
            self.queue_update({"message": message})
        return message

    def send_text(
        self,
        user_id: int,
        text: str,
        *,
        chat_id: int | None = None,
        reply_to: JSON | int | None = None,
    ) -> JSON:
        """A text message; ``chat_id`` defaults to the user's private chat with the bot."""
        extra: JSON = {"text": text}
        if found := entities(text):
            extra["entities"] = found
        message, chat = self._user_message(user_id, chat_id, extra, reply_to)
        return self._deliver(message, chat, text)

    def _photo_extra(self, image: bytes | None, caption: str | None) -> JSON:
        stored = self.store_file(image or tiny_png(next(self._photo_seed)), "photos", ".png")
        extra: JSON = {"photo": self.photo_sizes(stored)}
        if caption is not None:
            extra["caption"] = caption
            if found := entities(caption):
                extra["caption_entities"] = found
        return extra

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
        """A photo (by default a small generated PNG, different every call). ``declared_size``
        pretends it is that large (Telegram's ``file_size``)."""
        extra = self._photo_extra(image, caption)
        if declared_size is not None:
            extra["photo"][-1]["file_size"] = declared_size
        if media_group_id is not None:
            extra["media_group_id"] = media_group_id
        message, chat = self._user_message(user_id, chat_id, extra, reply_to)
        label = "[photo]" + (f" {caption}" if caption else "")
        return self._deliver(message, chat, label, album=media_group_id)

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
        """An album: one update per photo sharing a media_group_id, the caption on the first
        (as Telegram's clients send it). ``shuffle`` delivers the parts out of order;
        ``delay_s`` spaces them in time (this call returns once all are queued)."""
        images = (
            [tiny_png(next(self._photo_seed)) for _ in range(count_or_images)]
            if isinstance(count_or_images, int)
            else count_or_images
        )
        group = f"album{next(self._media_groups)}"
        parts: list[tuple[JSON, SimChat]] = []
        for i, image in enumerate(images):
            extra = self._photo_extra(image, caption if i == 0 else None)
            extra["media_group_id"] = group
            parts.append(self._user_message(user_id, chat_id, extra))
        order = list(parts)
        if shuffle:
            self._random.shuffle(order)
        for i, (message, chat) in enumerate(order):
            if i and delay_s:
                await asyncio.sleep(delay_s)
            label = f"[album ×{len(images)}]" + (f" {caption}" if caption else "")
            self._deliver(message, chat, label, album=group)
        return [message for message, _ in parts]

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
        stored = self.store_file(data, "documents", Path(file_name).suffix)
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
        message, chat = self._user_message(user_id, chat_id, extra)
        return self._deliver(
            message, chat, f"[file {file_name}]" + (f" {caption}" if caption else "")
        )

    def send_location(
        self, user_id: int, latitude: float, longitude: float, *, chat_id: int | None = None
    ) -> JSON:
        extra: JSON = {"location": {"latitude": latitude, "longitude": longitude}}
        message, chat = self._user_message(user_id, chat_id, extra)
        return self._deliver(message, chat, f"[location {latitude}, {longitude}]")

    def send_message(
        self,
        user_id: int,
        extra: JSON,
        *,
        chat_id: int | None = None,
        reply_to: JSON | int | None = None,
        label: str = "[message]",
    ) -> JSON:
        """A message with whatever fields ``extra`` gives (text with odd entities, a sticker, a
        document whose file id the stand-in never issued…): for feeding the bot input no
        well-behaved client would send. Privacy mode applies as to any message."""
        message, chat = self._user_message(user_id, chat_id, extra, reply_to)
        return self._deliver(message, chat, label)

    def edit_message(self, message: JSON, extra: JSON) -> JSON | None:
        """The user edits their ``message``: its fields are replaced by ``extra`` and the bot
        gets an ``edited_message`` update if it can see the chat's messages. Returns the edited
        message, or None if the bot was not told."""
        chat = self.chats[message["chat"]["id"]]
        edited: JSON = {
            **{k: v for k, v in message.items() if k not in ("text", "caption", "entities")},
            **extra,
            "edit_date": now_unix(),
        }
        self.record_user_message(edited)
        user = self.users[edited["from"]["id"]]
        seen = self._bot_sees(chat, edited)
        self._event(chat.id, user.name, "user", "[edit] " + str(extra)[:60], hidden=not seen)
        self._action_mark = self._seq
        if not seen:
            return None
        self.queue_update({"edited_message": edited})
        return edited

    def press(
        self,
        user_id: int,
        message: SentMessage | JSON,
        *,
        text: str | None = None,
        data: str | None = None,
    ) -> str:
        """The user taps the inline button labelled ``text`` on the bot's ``message`` (as the
        message is now, after edits), or sends raw ``data`` as if from a forged or outdated
        button. Returns the callback query id."""
        if isinstance(message, dict):
            message = self.message(message["chat"]["id"], message["message_id"])
        if message.deleted:
            raise AssertionError(f"message {message.message_id} was deleted: nothing to press")
        if data is None:
            if text is None:
                raise ValueError("press needs the button's text or raw data")
            try:
                data = message.button_data(text)
            except KeyError as exc:
                raise AssertionError(exc.args[0]) from None
        user = self.users[user_id]
        query_id = str(next(self._query_ids))
        self.add_query(
            query_id, PendingQuery(user_id, message.chat_id, message.message_id, self.clock())
        )
        self._event(message.chat_id, user.name, "press", f"[{text}]" if text else f"⟨{data}⟩")
        self._action_mark = self._seq
        self.queue_update(
            {
                "callback_query": {
                    "id": query_id,
                    "from": user.as_json(),
                    "chat_instance": str(message.chat_id),
                    "message": self.message_json(message),
                    "data": data,
                }
            }
        )
        return query_id

    # ---------------------------------------------------------------- observe

    _action_mark = 0

    def mark(self) -> int:
        """A cursor: pass it as ``since`` to wait only for what happens after now."""
        return self._seq

    def sent(self, chat_id: int | None = None) -> list[SentMessage]:
        """Every message the bot sent (to ``chat_id``), oldest first, edits applied."""
        return [m for m in self._messages if chat_id is None or m.chat_id == chat_id]

    def commands(self, scope: JSON | None = None, language_code: str | None = None) -> list[JSON]:
        """The command list the bot set for exactly this scope and language."""
        return self.get_commands(self.scope_key(scope, language_code))

    async def wait_until(
        self, ready: Callable[[], bool], *, timeout: float = 10.0, what: str = "a condition"
    ) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(
                    f"timed out after {timeout}s waiting for {what}; recent: {self._recent()}"
                )
            await self._wait_change(left)

    async def wait_messages(
        self,
        chat_id: int | None = None,
        *,
        n: int = 1,
        since: int | None = None,
        timeout: float = 10.0,
    ) -> list[SentMessage]:
        """The first ``n`` messages the bot sends (to ``chat_id``) after the cursor ``since``
        (default: the last user action). Fails listing what was sent if they do not come."""
        start = self._action_mark if since is None else since

        def new() -> list[SentMessage]:
            return [
                m
                for m in self._messages
                if m.seq > start and (chat_id is None or m.chat_id == chat_id)
            ]

        try:
            await self.wait_until(lambda: len(new()) >= n, timeout=timeout)
        except AssertionError:
            got = [m.content[:80] for m in new()]
            where = "" if chat_id is None else f" to {self.chat_label(chat_id)}"
            raise AssertionError(
                f"expected {n} message(s){where} within {timeout}s, got {len(got)}: {got}; "
                f"recent: {self._recent()}"
            ) from None
        return new()[:n]

    async def wait_change(
        self, message: SentMessage, *, since: int, timeout: float = 10.0
    ) -> SentMessage:
        """``message`` once edited after ``since``, or the bot's next message in its chat,
        whichever comes first."""

        def changed() -> SentMessage | None:
            if any(seq > since for seq, _ in message.edits):
                return message
            later = [m for m in self._messages if m.seq > since and m.chat_id == message.chat_id]
            return later[0] if later else None

        await self.wait_until(
            lambda: changed() is not None,
            timeout=timeout,
            what=f"an edit of message {message.message_id}",
        )
        result = changed()
        assert result is not None
        return result

    async def wait_answer(self, query_id: str, timeout: float = 10.0) -> CallbackAnswer:
        def found() -> CallbackAnswer | None:
            return next((a for a in self.callback_answers if a.query_id == query_id), None)

        await self.wait_until(
            lambda: found() is not None,
            timeout=timeout,
            what=f"an answer to callback query {query_id}",
        )
        answer = found()
        assert answer is not None
        return answer

    async def wait_fetched(self, timeout: float = 10.0) -> None:
        """Until the bot has fetched every update queued so far."""
        target = self._updates[-1]["update_id"] if self._updates else 0
        await self.wait_until(
            lambda: self.updates_fetched >= target,
            timeout=timeout,
            what=f"the bot to fetch update {target}",
        )

    def _recent(self) -> list[str]:
        return [f"{e.who}: {e.text[:60]}" for e in self.events[-6:]]

    def transcript(self) -> str:
        """The whole simulated world so far, chronologically, as readable text."""
        return render_transcript(self.events, self.chat_label)
