"""Fuzz: random updates from random people in random chats, against one running bot.

One real application (SQLite file, the stand-in over HTTP) stays up across all of hypothesis's
examples. Its world: the example district, people holding every role (and some holding none),
a group bound to 东桥镇, an unbound group the bot administers, an unbound group in privacy mode,
and problems in every status, so that buttons and codes have real targets.

Each example is one person acting one to four times: texts (commands with odd arguments,
4096+ characters, odd unicode, control characters), captions with #问题, entities that may not
match their text, buttons (real ones, real data mutated, random data), locations (out of range
too), photos and documents with file ids Telegram never issued, stickers, edits, replies. Then:

(a) nothing failed: no update was retried or parked in the inbox, nothing was logged at ERROR;
(b) nobody changed what they may not (see `forbidden_changes`: the whole database is compared
    row by row, table by table, against what the actor's roles allow);
(c) every command sent in private got an answer, and every tap an answer to the tap.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

import models
from bot.harness import Harness, running_bot
from bot.sandbox import SentMessage, tiny_png
from bot.sandbox.driver import entities, utf16_len
from bot.sandbox.world import JSON
from bot.services import problems
from bot.services.problem_machine import Action, Refusal
from bot.services.problems import PhotoIn
from bot.services.roles import Role
from tests.e2e.conftest import ADMIN, EXAMPLE_RULES, GROUP, STRANGER, start_world
from tests.e2e.helpers import grant

BOUND = -100900  # bound to 东桥镇; the bot is its admin and sees every message
UNBOUND = -100901  # not bound; the bot is its admin
PRIVACY = GROUP  # start_world's group: not bound, the bot in privacy mode (commands only)
LEADER, LIAISON, OTHER_LIAISON, INSPECTOR = 1101, 2001, 2002, 2101
CADRE, VOLUNTEER, SHOP = 3001, 4001, 5001
SILENT = 6667  # a group member who never opened the bot
NEWCOMERS = (7001, 7002, 7003)  # never seen before their first update

# telegram id → (role, area code) held
ROLES: dict[int, tuple[tuple[Role, str], ...]] = {
    ADMIN: ((Role.admin, "NH"),),
    LEADER: ((Role.leader, "NH"),),
    LIAISON: ((Role.liaison, "NH-DQ"),),
    OTHER_LIAISON: ((Role.liaison, "NH-XS"),),
    INSPECTOR: ((Role.inspector, "NH-DQ"),),
    CADRE: ((Role.cadre, "NH-DQ-01"),),
    VOLUNTEER: ((Role.volunteer, "NH-DQ-01"),),
    SHOP: ((Role.shop, "NH-DQ-01"),),
}
UNPRIVILEGED = (STRANGER, SILENT, *NEWCOMERS)
PEOPLE = (*ROLES, *UNPRIVILEGED)
CHATS: tuple[int | None, ...] = (None, None, BOUND, UNBOUND, PRIVACY)  # None: private

COMMANDS = (
    "start", "help", "lang", "invite", "bindgroup", "report", "rectified", "cancel", "issue",
    "issues", "remind", "rank", "export", "summary", "announce", "announcements", "claim",
    "claims", "points", "adjust", "ledger", "leaderboard", "redeem", "checkout", "shop",
    "parked", "frobnicate",
)  # fmt: skip
ODD = (
    "\u202e", "\u200b", "\u200d", "\ufeff", "\u2028", "\x07", "\x1b", "\r", "\n", "\t", " ",
    "😀", "🏳️‍🌈", "𝕏", "ﷺ", "עברית", "العربية", "\u0301", "#", "#问题", "#report", "@", "/",
    ":", "🙂" * 3, "ǅ", "ß", "İ",
)  # fmt: skip
MIMES = ("image/jpeg", "image/png", "application/pdf", "text/plain", "", "application/x-msdownload")
ENTITY_TYPES = (
    "bot_command", "hashtag", "mention", "bold", "italic", "url", "code", "cashtag",
    "spoiler", "email", "phone_number", "underline", "pre", "text_link",
)  # fmt: skip


# ---------------------------------------------------------------------------- the world


@dataclass(repr=False)
class Fuzz:
    h: Harness
    errors: list[logging.LogRecord]
    codes: list[str]
    # Messages people sent (to reply to or edit later), newest last.
    sent: list[JSON] = field(default_factory=list)
    album_seq: int = 0


class _Collect(logging.Handler):
    def __init__(self, into: list[logging.LogRecord]) -> None:
        super().__init__(logging.ERROR)
        self.into = into

    def emit(self, record: logging.LogRecord) -> None:
        self.into.append(record)


@pytest.fixture
def error_log() -> Iterator[list[logging.LogRecord]]:
    records: list[logging.LogRecord] = []
    handler = _Collect(records)
    root = logging.getLogger()
    root.addHandler(handler)
    yield records
    root.removeHandler(handler)


async def _problem(h: Harness, reporter: int, caption: str) -> str:
    """A tagged photo in the bound group, as any member sends it: the bot's card answers."""
    mark = h.sb.mark()
    h.sb.send_photo(reporter, chat_id=BOUND, caption=caption)
    card = (await h.sb.wait_messages(BOUND, n=1, since=mark))[0]
    return card.content.split("【", 1)[1].split("】", 1)[0]


async def _assign(h: Harness, code: str, subject: str) -> None:
    async with h.db.begin() as session:
        admin = await session.scalar(
            select(models.Person.id).where(models.Person.telegram_id == ADMIN)
        )
        area = await session.scalar(select(models.Area.id).where(models.Area.code == subject))
        assert admin is not None and area is not None
        now = h.services.now()
        done = await problems.transition(
            session,
            code,
            Action.assign,
            admin,
            now=now,
            subject_id=area,
            deadline=problems.deadline_after(now, 7, h.services.settings.zone),
        )
        assert not isinstance(done, Refusal)


async def _act(h: Harness, code: str, action: Action, who: int, reason: str | None = None) -> None:
    async with h.db.begin() as session:
        person = await session.scalar(
            select(models.Person.id).where(models.Person.telegram_id == who)
        )
        photo = await session.scalar(select(models.ProblemPhoto.file_id))
        assert person is not None and photo is not None
        done = await problems.transition(
            session,
            code,
            action,
            person,
            now=h.services.now(),
            reason=reason,
            after_photos=[PhotoIn(photo, f"after-{code}")] if action is Action.submit else None,
        )
        assert not isinstance(done, Refusal), done


async def _set_up(h: Harness) -> list[str]:
    await start_world(h)
    sb = h.sb
    for uid, name in [
        (LEADER, "钱领导"),
        (INSPECTOR, "张网格"),
        (SHOP, "好又多超市"),
        (SILENT, "潜水员"),
        *((uid, f"新人{uid}") for uid in NEWCOMERS),
    ]:
        sb.add_user(uid, name)
    for uid, held in ROLES.items():
        for role, area in held:
            if uid != ADMIN:
                await grant(h, uid, role, area)
    for uid in (*ROLES, STRANGER):
        await h.reply_to(uid, "/start")
    sb.add_group(BOUND, "东桥镇生态环境工作群", members=list(PEOPLE), admins=[ADMIN])
    sb.add_group(UNBOUND, "未绑定的群", members=list(PEOPLE), admins=[ADMIN])
    for chat_id in (BOUND, UNBOUND):
        sb.chats[chat_id].bot_is_admin = True
    sb.chats[PRIVACY].members |= set(PEOPLE)
    assert "本群已绑定" in (await h.reply_to(ADMIN, "/bindgroup NH-DQ", chat_id=BOUND)).content

    # Problems in every status, their cards and notices carrying real buttons.
    reported = await _problem(h, INSPECTOR, "#问题 河边有人露天焚烧垃圾")
    rectifying = await _problem(h, VOLUNTEER, "#问题 路边生活垃圾堆放")
    pending = await _problem(h, INSPECTOR, "#问题 工地扬尘严重")
    closed = await _problem(h, VOLUNTEER, "#问题 秸秆焚烧")
    rejected = await _problem(h, STRANGER, "#问题 噪声扰民")
    elsewhere = await _problem(h, INSPECTOR, "#report 西山街道污水直排")
    await _problem(h, STRANGER, "#问题 这里有情况")  # stays reported: the stranger's own
    for code in (rectifying, pending, closed):
        await _assign(h, code, "NH-DQ")
    await _assign(h, elsewhere, "NH-XS")
    await _act(h, pending, Action.submit, LIAISON, "已整改")
    await _act(h, closed, Action.submit, LIAISON, "已整改")
    await _act(h, closed, Action.pass_check, INSPECTOR)
    await _act(h, rejected, Action.reject, ADMIN, "不属本区")
    del reported

    # Menus whose buttons the fuzz can press (or forge from).
    for uid, command in [
        (ADMIN, "/lang"),
        (ADMIN, "/invite"),
        (ADMIN, "/issues"),
        (ADMIN, "/announce"),
        (ADMIN, "/parked"),
        (CADRE, "/invite"),
        (CADRE, "/claims"),
        (VOLUNTEER, "/claim"),
        (VOLUNTEER, "/redeem"),
        (LIAISON, f"/rectified {rectifying}"),
        (STRANGER, "/lang"),
    ]:
        await h.reply_to(uid, command)
    await h.reply_to(ADMIN, "/bindgroup", chat_id=UNBOUND)
    # The inspector's private report, left at its village step (its buttons carry area ids).
    await h.press(INSPECTOR, await h.reply_to(INSPECTOR, "/report"), "露天焚烧")
    mark = sb.mark()
    sb.send_photo(INSPECTOR)
    await h.press(INSPECTOR, (await sb.wait_messages(INSPECTOR, since=mark))[0], "完成")
    await h.reply_to(INSPECTOR, "河边有人烧垃圾")
    assert "东桥村" in str((await h.reply_to(INSPECTOR, "东桥村口")).buttons)
    async with h.db.begin() as session:
        codes = list(await session.scalars(select(models.Problem.code)))
    return codes


@pytest.fixture
async def fuzz(
    sqlite_url: str, tmp_path: Path, error_log: list[logging.LogRecord]
) -> AsyncIterator[Fuzz]:
    async with running_bot(
        sqlite_url, admin_ids=[ADMIN], media_dir=tmp_path / "media", rules_file=EXAMPLE_RULES
    ) as h:
        codes = await _set_up(h)
        await _settle(h)
        assert error_log == [], [r.getMessage() for r in error_log]
        yield Fuzz(h, error_log, codes)
        if dump := os.environ.get("GREENGRID_FUZZ_TRANSCRIPT"):  # to read what was tried
            await asyncio.to_thread(Path(dump).write_text, h.sb.transcript())


# ---------------------------------------------------------------------------- strategies


def _odd_text(max_size: int = 60) -> st.SearchStrategy[str]:
    pieces = st.one_of(
        st.text(
            st.characters(exclude_categories=["Cs"], exclude_characters="\x00"),
            max_size=12,
        ),
        st.sampled_from(ODD),
        st.sampled_from(("河边", "垃圾", "焚烧", "扬尘", "污水", "噪声", "NH-DQ", "西山")),
    )
    return st.lists(pieces, max_size=max_size // 6).map("".join)


def _args(codes: list[str]) -> st.SearchStrategy[str]:
    code = st.sampled_from(codes)
    arg = st.one_of(
        code,
        code.map(str.lower),
        code.map(lambda c: c[:-1] + "9"),
        st.sampled_from(("NH-2026-9999", "NH-0000-0000", "XX-2026-0001", "NH--", "-", "--")),
        st.integers(-(10**20), 10**20).map(str),
        st.sampled_from(("123456", "000000", "99999", "1e9", "NaN", "-0", "0", "20", "100")),
        st.sampled_from(("2026-13", "2026-00", "2026-02-30", "2026-W60", "9999-12", "2026")),
        st.sampled_from(("admin", "volunteer", "shop", "leader", "ADMIN", "cadre", "nobody")),
        st.sampled_from(("NH", "NH-DQ", "NH-DQ-01", "NH-XS", "NH-ZZ", "status=reported")),
        st.sampled_from(("zh", "en", "zh_CN", "xx", "𝕖𝕟")),
        _odd_text(20),
    )
    return st.lists(arg, max_size=3).map(" ".join)


def _command(codes: list[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.builds(
            lambda name, at, args: f"/{name}{at}" + (f" {args}" if args else ""),
            st.sampled_from(COMMANDS),
            st.sampled_from(("", "", "", "@greengrid_bot", "@GreenGrid_Bot", "@otherbot")),
            _args(codes),
        ),
        st.sampled_from(
            (
                "/report",
                "/assign",
                "/checkout 123456 99999",
                "/checkout 123456 -5",
                "/rank 2026-13",
                "/issue",
                "/start " + "x" * 80,
                "/start inv_garbage",
                "/adjust 4001 -100000 因为",
                "/export 2026-13-01 2026-00-00",
                "/",
                "//",
                "/ start",
            )
        ),
        st.sampled_from(codes).map(lambda c: f"/issue {c}"),
    )


def _text(codes: list[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        _command(codes),
        _command(codes),
        _odd_text(),
        _odd_text().map(lambda t: "#问题 " + t),
        st.builds(lambda c, n: c * n, st.sampled_from("字a🙂\u200b"), st.integers(4097, 5000)),
        st.just(""),  # Telegram sends no empty text, but a bot must not mind
    )


@st.composite
def _entities(draw: st.DrawFn, content: str, key: str) -> JSON:
    """Telegram's own entities, none, or random ones that need not fit the text."""
    mode = draw(st.sampled_from(("auto", "auto", "none", "random")))
    if mode == "none" or not content:
        return {}
    if mode == "auto":
        found = entities(content)
        return {key: found} if found else {}
    size = utf16_len(content)
    chosen = []
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(ENTITY_TYPES))
        entity: JSON = {
            "type": kind,
            "offset": draw(st.integers(0, size + 3)),
            "length": draw(st.integers(0, size + 3)),
        }
        if kind == "text_link":
            entity["url"] = "https://example.invalid/x"
        if kind == "pre":
            entity["language"] = "python"
        chosen.append(entity)
    return {key: sorted(chosen, key=lambda e: e["offset"])}


def _bogus_id(prefix: str) -> st.SearchStrategy[str]:
    return st.text("ABCDEFabcdef0123456789-_", min_size=1, max_size=40).map(lambda s: prefix + s)


@dataclass(frozen=True)
class Step:
    """One thing one person does; ``extra`` is the message's own fields (or the button's
    data, for a press)."""

    kind: str  # message | album | edit | press
    chat: int | None
    extra: Any = None
    pick: int | None = None  # which message to reply to or edit, resolved when it runs
    label: str = ""


@st.composite
def _message(draw: st.DrawFn, f: Fuzz, chat: int | None) -> Step:
    codes = f.codes
    kind = draw(
        st.sampled_from(
            ("text", "text", "text", "text", "photo", "photo", "document", "location", "other")
        )
    )
    extra: JSON
    if kind == "text":
        body = draw(_text(codes))
        extra = {"text": body, **draw(_entities(body, "entities"))}
    elif kind == "photo":
        caption = draw(st.one_of(st.none(), _text(codes).map(lambda t: t[:1100])))
        extra = {"photo": draw(_photo(f))}
        if caption is not None:
            extra |= {"caption": caption, **draw(_entities(caption, "caption_entities"))}
        if draw(st.integers(0, 9)) == 0:
            extra["media_group_id"] = draw(st.sampled_from(("album1", "x", "album-fuzz")))
    elif kind == "document":
        real = draw(st.booleans())
        stored = f.h.sb.store_file(b"%PDF-1.4 fuzz " + bytes(draw(st.integers(0, 9))), "d", ".pdf")
        doc: JSON = {
            "file_id": stored.file_id if real else draw(_bogus_id("BQAC")),
            "file_unique_id": stored.file_unique_id if real else draw(_bogus_id("AgAD")),
            "file_name": draw(st.one_of(_odd_text(30), st.just("台账.xlsx"), st.just("a.exe"))),
            "mime_type": draw(st.sampled_from(MIMES)),
            "file_size": draw(st.integers(0, 60_000_000)),
        }
        extra = {"document": doc}
        if draw(st.booleans()):
            caption = draw(_text(codes).map(lambda t: t[:1100]))
            extra |= {"caption": caption, **draw(_entities(caption, "caption_entities"))}
    elif kind == "location":
        coordinate = st.one_of(
            st.floats(-200, 200, allow_nan=False),
            st.sampled_from((0.0, 90.0, -90.0, 180.0, -180.0, 91.0, 1e300, 30.6, 114.3)),
        )
        extra = {"location": {"latitude": draw(coordinate), "longitude": draw(coordinate)}}
        if draw(st.booleans()):
            extra["location"]["horizontal_accuracy"] = draw(st.floats(0, 1500))
    else:
        extra = draw(st.sampled_from(OTHER_MEDIA))
    # A reply to something in the same chat (the pick is resolved against what is there then).
    reply = draw(st.one_of(st.none(), st.none(), st.none(), st.integers(0, 10**6)))
    return Step("message", chat, extra, reply, kind)


OTHER_MEDIA: tuple[JSON, ...] = (
    {"sticker": {"file_id": "CAACsticker", "file_unique_id": "AgADst", "type": "regular",
                 "width": 512, "height": 512, "is_animated": False, "is_video": False}},
    {"voice": {"file_id": "AwACvoice", "file_unique_id": "AgADvo", "duration": 3}},
    {"contact": {"phone_number": "+8613800000000", "first_name": "某人"}},
    {"dice": {"emoji": "🎲", "value": 6}},
    {"video": {"file_id": "BAACvideo", "file_unique_id": "AgADvi", "width": 1, "height": 1,
               "duration": 1}},
    {"venue": {"location": {"latitude": 30.6, "longitude": 114.3}, "title": "河口",
               "address": "河口村"}},
)  # fmt: skip


@st.composite
def _photo(draw: st.DrawFn, f: Fuzz) -> list[JSON]:
    if draw(st.integers(0, 3)) == 0:  # a file id Telegram never issued
        size: JSON = {
            "file_id": draw(_bogus_id("AgAC")),
            "file_unique_id": draw(_bogus_id("AQAD")),
            "width": draw(st.integers(0, 10_000)),
            "height": draw(st.integers(0, 10_000)),
        }
        if draw(st.booleans()):
            size["file_size"] = draw(st.integers(0, 10**9))
        return [size]
    stored = f.h.sb.store_file(tiny_png(draw(st.integers(1, 10**6))), "photos", ".png")
    sizes = f.h.sb.photo_sizes(stored)
    if draw(st.integers(0, 5)) == 0:
        sizes[-1]["file_size"] = 25_000_000  # over what a bot may download
    return sizes


@dataclass(frozen=True)
class Press:
    """A tap, drawn before knowing which messages exist: the picks are resolved (modulo) against
    the messages and buttons there are when it runs, so that generation never depends on
    the world's state."""

    how: str  # real | mutated | foreign | random
    message_pick: int
    data_pick: int
    swap_at: int
    replacement: str
    cut: int
    mutation: str  # swap | cut | append
    random_data: str


_REPLACEMENTS = st.one_of(
    st.integers(-5, 10**12).map(str),
    st.sampled_from(("9223372036854775808", "-9223372036854775809", "1" + "0" * 30, "٣", "²")),
    st.sampled_from(("", "x", "admin", "NH-XS", "999999", "-1", "status=closed", "0", "CODE")),
    _odd_text(8),
)


def _press() -> st.SearchStrategy[Press]:
    return st.builds(
        Press,
        st.sampled_from(("real", "real", "mutated", "mutated", "foreign", "random")),
        st.integers(0, 10**6),
        st.integers(0, 10**6),
        st.integers(0, 10),
        _REPLACEMENTS,
        st.integers(0, 64),
        st.sampled_from(("swap", "swap", "cut", "append")),
        st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=32),
    )


def _fit(data: str) -> str:
    """Callback data as Telegram allows it: 1 to 64 bytes."""
    raw = data.encode()[:64].decode(errors="ignore")
    return raw or "x"


def _buttons(message: SentMessage) -> list[str]:
    return [
        button["callback_data"]
        for row in (message.reply_markup or {}).get("inline_keyboard", [])
        for button in row
        if "callback_data" in button
    ]


def _resolve_press(f: Fuzz, actor: int, press: Press) -> tuple[SentMessage, str] | None:
    visible = (actor, BOUND, UNBOUND, PRIVACY)
    anything = [m for m in f.h.sb.sent() if m.chat_id in visible and not m.deleted]
    with_buttons = [m for m in anything if _buttons(m)]
    if not anything:
        return None
    pool = with_buttons or anything
    message = pool[press.message_pick % len(pool)]
    own = _buttons(message)
    every = sorted({d for m in f.h.sb.sent() for d in _buttons(m)})
    if press.how == "random" or not (own or every):
        return message, _fit(press.random_data)
    if press.how == "foreign":  # another message's (maybe another person's) button
        return message, every[press.data_pick % len(every)]
    data = (own or every)[press.data_pick % len(own or every)]
    if press.how == "real":
        return message, data
    replacement = press.replacement.replace("CODE", f.codes[press.data_pick % len(f.codes)])
    if press.mutation == "swap":
        parts = data.split(":")
        parts[press.swap_at % len(parts)] = replacement
        return message, _fit(":".join(parts))
    if press.mutation == "cut":
        return message, _fit(data[: press.cut % max(1, len(data))])
    return message, _fit(data + ":" + replacement)


@st.composite
def _edit(draw: st.DrawFn, f: Fuzz) -> Step:
    body = draw(_text(f.codes))
    found = draw(_entities(body, "entities"))
    return Step("edit", None, (body, found.get("entities")), draw(st.integers(0, 10**6)))


@st.composite
def _step(draw: st.DrawFn, f: Fuzz) -> Step:
    chat = draw(st.sampled_from(CHATS))
    kind = draw(st.sampled_from(("message",) * 6 + ("press",) * 3 + ("edit", "album")))
    if kind == "press":
        return Step("press", None, draw(_press()))
    if kind == "edit":
        return draw(_edit(f))
    if kind == "album" and chat is not None:
        caption = draw(st.one_of(st.none(), _odd_text().map(lambda t: "#问题 " + t)))
        return Step("album", chat, (draw(st.integers(1, 4)), caption))
    return draw(_message(f, chat))


# ---------------------------------------------------------------------------- running


async def _settle(h: Harness, timeout: float = 15.0) -> None:
    """Until the bot has fetched every update and its inbox has nothing left to do."""
    await h.sb.wait_fetched(timeout)
    deadline = time.monotonic() + timeout
    while True:
        async with h.db.begin() as session:
            pending = await session.scalar(
                select(func.count())
                .select_from(models.InboxUpdate)
                .where(models.InboxUpdate.status == "pending")
            )
            albums = await session.scalar(
                select(func.count())
                .select_from(models.IntakePart)
                .where(models.IntakePart.media_group_id.is_not(None), ~models.IntakePart.done)
            )
        if not pending and not albums:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"the bot did not settle: {pending} updates, {albums} album parts")
        await asyncio.sleep(0.02)


async def _run(f: Fuzz, actor: int, step: Step) -> None:
    sb = f.h.sb
    mark = sb.mark()
    private = step.chat is None
    if step.kind == "press":
        resolved = _resolve_press(f, actor, step.extra)
        if resolved is None:
            return
        message, data = resolved
        query = sb.press(actor, message, data=data)
        await _settle(f.h)
        await sb.wait_answer(query, timeout=5)  # every tap is answered: no endless spinner
        return
    elif step.kind == "edit":
        mine = [m for m in f.sent if m["from"]["id"] == actor]
        if not mine or step.pick is None:
            return
        original = sb.user_message(mine[step.pick % len(mine)]["chat"]["id"],
                                   mine[step.pick % len(mine)]["message_id"])  # fmt: skip
        assert original is not None
        body, found = step.extra
        media = "photo" in original or "document" in original
        key, entities_key = ("caption", "caption_entities") if media else ("text", "entities")
        extra: JSON = {key: body[:1100] if media else body}
        if found is not None:
            extra[entities_key] = found
        sb.edit_message(original, extra)
    elif step.kind == "album":
        f.album_seq += 1
        count, caption = step.extra
        for i in range(count):
            part: JSON = {
                "photo": sb.photo_sizes(
                    sb.store_file(tiny_png(900_000 + f.album_seq * 10 + i), "photos", ".png")
                ),
                "media_group_id": f"fuzz{f.album_seq}",
            }
            if i == 0 and caption is not None:
                part["caption"] = caption
                if found_entities := entities(caption):
                    part["caption_entities"] = found_entities
            f.sent.append(sb.send_message(actor, part, chat_id=step.chat, label="[album]"))
    else:
        reply_to = None
        if step.pick is not None:
            there = _messages_in(f, step.chat if step.chat is not None else actor)
            reply_to = there[step.pick % len(there)] if there else None
        f.sent.append(
            sb.send_message(
                actor, step.extra, chat_id=step.chat, reply_to=reply_to, label=_label(step.extra)
            )
        )
    await _settle(f.h)
    # (c) a command in private gets an answer (not silence)
    if step.kind == "message" and private:
        found = step.extra.get("entities") or []
        if found and found[0]["type"] == "bot_command" and found[0]["offset"] == 0:
            await sb.wait_messages(actor, since=mark, timeout=5)


def _label(extra: JSON) -> str:
    words = str(extra.get("text", extra.get("caption", "")))[:80]
    media = next(
        (k for k in extra if k not in ("text", "caption", "entities", "caption_entities")), ""
    )
    return f"[{media}] {words}" if media else words


def _messages_in(f: Fuzz, chat_id: int) -> list[int]:
    """Message ids in the chat, the bot's and people's, the latest few of each."""
    ours = [m.message_id for m in f.h.sb.sent(chat_id) if not m.deleted]
    theirs = [m["message_id"] for m in f.sent if m["chat"]["id"] == chat_id]
    return ours[-15:] + theirs[-15:]


# ---------------------------------------------------------------------------- permissions

Rows = dict[str, dict[tuple[Any, ...], dict[str, Any]]]
# Tables written by the bot's own jobs, whoever acts: not anyone's change.
BACKGROUND = frozenset({"inbox", "schedule_runs", "ranking_snapshots", "ranking_snapshot_rows"})


async def _snapshot(h: Harness) -> Rows:
    rows: Rows = {}
    async with h.db.begin() as session:
        for table in models.Base.metadata.sorted_tables:
            if table.name in BACKGROUND:
                continue
            keys = [c.name for c in table.primary_key.columns]
            result = await session.execute(select(table))
            rows[table.name] = {tuple(r[k] for k in keys): dict(r) for r in result.mappings().all()}
    return rows


@dataclass(frozen=True)
class Actor:
    telegram_id: int
    person_id: int | None
    roles: frozenset[tuple[str, int]]  # (role, area id)

    def holds(self, role: Role, area_id: int | None = None) -> bool:
        return any(r == role and (area_id is None or a == area_id) for r, a in self.roles)


def _actor(rows: Rows, telegram_id: int) -> Actor:
    person = next((p for p in rows["people"].values() if p["telegram_id"] == telegram_id), None)
    pid = person["id"] if person else None
    roles = frozenset(
        (g["role"], g["area_id"]) for g in rows["role_grants"].values() if g["person_id"] == pid
    )
    return Actor(telegram_id, pid, roles)


def forbidden_changes(before: Rows, after: Rows, telegram_id: int) -> list[str]:
    """Every change between the snapshots that this person could not rightly have made.

    Anyone: their own person row (name, language, having opened the bot); a group the bot
    sees for the first time (unbound); a problem reported by a tagged photo in a bound group,
    its photos and history; the intake's record of their own photos; their own dialog drafts.
    Beyond that, by role: an admin anything; a problem's reporter its category; the problem's
    subject's liaison (submit, extension) and inspector (verify) that problem; a volunteer
    their own claims and redemption codes; a cadre the claims and invites; a shop checkouts.
    The bot's own work in between (sending the outbox, downloading photos, expiring codes)
    is no one's change."""
    # The roles held before acting (a role gained by the act is what is being checked); the
    # person row may be new.
    actor = replace(_actor(before, telegram_id), person_id=_actor(after, telegram_id).person_id)
    if actor.holds(Role.admin):
        return []
    wrong: list[str] = []
    now = max(
        (p["created_at"] for p in after["people"].values()), default=None
    )  # the latest thing that happened; codes that expired before it may be swept

    def diff(
        table: str,
    ) -> tuple[
        list[dict[str, Any]], list[tuple[dict[str, Any], dict[str, Any]]], list[dict[str, Any]]
    ]:
        old, new = before[table], after[table]
        added = [new[k] for k in new.keys() - old.keys()]
        removed = [old[k] for k in old.keys() - new.keys()]
        changed = [(old[k], new[k]) for k in old.keys() & new.keys() if old[k] != new[k]]
        return added, changed, removed

    def columns(old: dict[str, Any], new: dict[str, Any]) -> set[str]:
        return {k for k in new if old.get(k) != new[k]}

    new_problems = set(after["problems"]) - set(before["problems"])
    problem_rows = after["problems"]

    def may_change_problem(problem_id: int) -> bool:
        p = problem_rows.get((problem_id,))
        if p is None or (problem_id,) in new_problems:
            return True
        subject = p["subject_id"]
        return (
            p["reporter_id"] == actor.person_id
            or (subject is not None and actor.holds(Role.liaison, subject))
            or (subject is not None and actor.holds(Role.inspector, subject))
        )

    bound_chats = {c["telegram_chat_id"] for c in after["chats"].values() if c["area_id"]}
    for table in before:
        added, changed, removed = diff(table)
        label = f"{table} (by {telegram_id})"
        if table == "people":
            wrong += [f"{label}: added {r}" for r in added if r["telegram_id"] != telegram_id]
            for old, new in changed:
                cols = columns(old, new) - {"started_private", "unreachable_reported_at"}
                if new["telegram_id"] != telegram_id and cols:
                    wrong.append(f"{label}: changed {cols} of {new['telegram_id']}")
        elif table == "chats":
            wrong += [f"{label}: added bound {r}" for r in added if r["area_id"] is not None]
            for old, new in changed:
                if cols := columns(old, new) - {"title"}:
                    wrong.append(f"{label}: changed {cols} of chat {new['telegram_chat_id']}")
        elif table == "problems":
            for r in added:
                if r["status"] != "reported" or r["source_chat_id"] not in (
                    bound_chats | ({None} if actor.roles else set())
                ):
                    wrong.append(
                        f"{label}: added {r['code']} {r['status']} from {r['source_chat_id']}"
                    )
            for old, new in changed:
                cols = columns(old, new)
                if not may_change_problem(new["id"]) or (
                    new["reporter_id"] == actor.person_id
                    and not actor.roles
                    and cols - {"category"}
                ):
                    wrong.append(f"{label}: changed {cols} of {new['code']} ({old['status']})")
        elif table in ("problem_events", "problem_photos"):
            for r in added:
                if not may_change_problem(r["problem_id"]):
                    wrong.append(f"{label}: added {r}")
            if table == "problem_photos":
                for old, new in changed:
                    if cols := columns(old, new) & {
                        "problem_id",
                        "kind",
                        "file_id",
                        "file_unique_id",
                    }:
                        wrong.append(f"{label}: changed {cols}")
            else:
                wrong += [f"{label}: changed {new}" for _, new in changed]
        elif table == "intake_parts":
            wrong += [
                f"{label}: added {r}" for r in added if r["sender_telegram_id"] != telegram_id
            ]
            for old, new in changed:
                if cols := columns(old, new) - {"done"}:
                    wrong.append(f"{label}: changed {cols}")
        elif table == "drafts":
            for r in [*added, *removed, *(new for _, new in changed)]:
                if r["person_id"] != actor.person_id:
                    wrong.append(f"{label}: someone else's draft {r}")
            continue
        elif table == "outbox":
            continue  # the sender's bookkeeping; what is queued follows the changes above
        elif table == "announcements":
            wrong += [f"{label}: added {r}" for r in added]
            for old, new in changed:
                if cols := columns(old, new) - {"status", "released_at", "recipients"}:
                    wrong.append(f"{label}: changed {cols}")
        elif table == "activity_claims":
            wrong += [f"{label}: added {r}" for r in added if r["person_id"] != actor.person_id]
            if changed and not actor.holds(Role.cadre):
                wrong += [f"{label}: decided {new}" for _, new in changed]
        elif table == "redemption_codes":
            wrong += [f"{label}: added {r}" for r in added if r["person_id"] != actor.person_id]
            for old, new in changed:
                cols = columns(old, new)
                swept = cols == {"live_code"} and new["live_code"] is None
                if not (actor.holds(Role.shop) or new["person_id"] == actor.person_id or swept):
                    wrong.append(f"{label}: changed {cols} of code {new['id']}")
        elif table == "checkout_attempts":
            if not actor.holds(Role.shop):
                wrong += [f"{label}: added {r}" for r in added]
        elif table in ("points_entries", "points_accounts"):
            if not {r for r, _ in actor.roles} & {"cadre", "shop", "liaison", "inspector"}:
                wrong += [f"{label}: added {r}" for r in added]
                wrong += [f"{label}: changed {new}" for _, new in changed]
        elif table in ("invites",) and actor.holds(Role.cadre):
            pass
        else:  # areas, role_grants, invite_uses, and invites for everyone else
            wrong += [f"{label}: added {r}" for r in added]
            wrong += [f"{label}: changed {new}" for _, new in changed]
        wrong += [f"{label}: removed {r}" for r in removed]
    del now
    return wrong


# ---------------------------------------------------------------------------- the test


async def _failures(f: Fuzz) -> list[str]:
    async with f.h.db.begin() as session:
        rows = await session.execute(
            select(models.InboxUpdate.update_id, models.InboxUpdate.status,
                   models.InboxUpdate.last_error).where(
                (models.InboxUpdate.attempts > 1) | (models.InboxUpdate.status == "parked")
                | models.InboxUpdate.last_error.is_not(None)
            )
        )  # fmt: skip
        failed = [f"update {uid} {status}: {error}" for uid, status, error in rows]
    formatter = logging.Formatter("%(name)s: %(message)s")
    logged = [formatter.format(r) for r in f.errors]
    return failed + logged


@settings(
    # More for a hunt by hand: GREENGRID_FUZZ_EXAMPLES=1000 (and a --hypothesis-seed).
    max_examples=int(os.environ.get("GREENGRID_FUZZ_EXAMPLES", "60")),
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
    # The world lives on between examples, so an example does not replay exactly: report the
    # failure as it happened (with the transcript), neither stored nor shrunk.
    database=None,
    phases=[Phase.explicit, Phase.generate],
)
@given(data=st.data())
async def test_random_updates_crash_nothing_and_change_only_what_is_allowed(
    fuzz: Fuzz, data: st.DataObject
) -> None:
    f = fuzz
    actor = data.draw(st.sampled_from(PEOPLE), label="actor")
    before = await _snapshot(f.h)
    # Every step is drawn before any runs: a failure at any step leaves the draws complete.
    steps = data.draw(st.lists(_step(f), min_size=1, max_size=4), label="steps")
    for step in steps:
        await _run(f, actor, step)
    assert await _failures(f) == [], _recent(f)
    after = await _snapshot(f.h)
    assert forbidden_changes(before, after, actor) == [], _recent(f)


def _recent(f: Fuzz) -> str:
    return "\n".join(f.h.sb.transcript().splitlines()[-60:])


def test_the_permission_oracle_sees_forbidden_changes() -> None:
    """`forbidden_changes` itself: it must flag what it is there to flag, or the fuzz could
    never fail."""
    empty: Rows = {
        t.name: {} for t in models.Base.metadata.sorted_tables if t.name not in BACKGROUND
    }

    def world(status: str, *, grants: tuple[tuple[int, str, int], ...] = ()) -> Rows:
        rows: Rows = {name: dict(table) for name, table in empty.items()}
        rows["people"] = {
            (1,): {"id": 1, "telegram_id": ADMIN, "created_at": 0},
            (2,): {"id": 2, "telegram_id": STRANGER, "created_at": 0},
            (3,): {"id": 3, "telegram_id": LIAISON, "created_at": 0},
        }
        rows["role_grants"] = {
            (i,): {"id": i, "person_id": p, "role": r, "area_id": a}
            for i, (p, r, a) in enumerate(((1, "admin", 1), (3, "liaison", 2), *grants), 1)
        }
        rows["problems"] = {
            (1,): {"id": 1, "code": "NH-2026-0001", "status": status, "reporter_id": 1,
                   "subject_id": 2, "source_chat_id": BOUND, "category": "noise"},
        }  # fmt: skip
        return rows

    before = world("rectifying")
    closed = world("pending_check")
    assert forbidden_changes(before, closed, STRANGER) != []
    assert forbidden_changes(before, closed, LIAISON) == []  # the subject's liaison submits
    assert forbidden_changes(before, closed, ADMIN) == []
    promoted = world("rectifying", grants=((2, "admin", 1),))
    assert forbidden_changes(before, promoted, STRANGER) != []
    assert forbidden_changes(before, before, STRANGER) == []
