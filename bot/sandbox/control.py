"""A small JSON control API on the stand-in, for manual play (``greengrid sandbox``).

POST /_sandbox/users      {"id", "first_name", "username"?, "language_code"?}
POST /_sandbox/groups     {"id", "title", "members", "admins"?, "bot_is_admin"?, "announce"?}
POST /_sandbox/send       {"user_id", "chat_id"?, "text" | "photo": true + "caption"? |
                           "album": n + "caption"? | "latitude" + "longitude"}
POST /_sandbox/press      {"user_id", "chat_id", "message_id", "text" | "data"}
GET  /_sandbox/messages?chat_id=
GET  /_sandbox/transcript
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from bot.sandbox.server import Sandbox


def add_control_routes(app: web.Application, sb: Sandbox) -> None:
    async def body(request: web.Request) -> dict[str, Any]:
        try:
            data = await request.json()
        except ValueError:
            raise web.HTTPBadRequest(text="send a JSON object") from None
        if not isinstance(data, dict):
            raise web.HTTPBadRequest(text="send a JSON object")
        return data

    async def users(request: web.Request) -> web.Response:
        data = await body(request)
        user = sb.add_user(
            int(data["id"]),
            str(data["first_name"]),
            username=data.get("username"),
            language_code=data.get("language_code", "zh-hans"),
        )
        return web.json_response(user.as_json())

    async def groups(request: web.Request) -> web.Response:
        data = await body(request)
        chat = sb.add_group(
            int(data["id"]),
            str(data["title"]),
            members=[int(m) for m in data.get("members", [])],
            admins=[int(m) for m in data.get("admins", [])],
            bot_is_admin=bool(data.get("bot_is_admin", False)),
        )
        if data.get("announce", True) and chat.members:
            sb.bot_added_to_group(chat.id, sorted(chat.admins or chat.members)[0])
        return web.json_response(chat.as_json(sb.users))

    async def send(request: web.Request) -> web.Response:
        data = await body(request)
        chat_id = int(data["chat_id"]) if data.get("chat_id") is not None else None
        if "latitude" in data:
            message = sb.send_location(
                int(data["user_id"]),
                float(data["latitude"]),
                float(data["longitude"]),
                chat_id=chat_id,
            )
        elif data.get("album"):
            album = await sb.send_album(
                int(data["user_id"]),
                int(data["album"]),
                chat_id=chat_id,
                caption=data.get("caption"),
            )
            return web.json_response(album)
        elif data.get("photo"):
            message = sb.send_photo(
                int(data["user_id"]), chat_id=chat_id, caption=data.get("caption")
            )
        else:
            message = sb.send_text(int(data["user_id"]), str(data["text"]), chat_id=chat_id)
        return web.json_response(message)

    async def press(request: web.Request) -> web.Response:
        data = await body(request)
        try:
            message = sb.message(int(data["chat_id"]), int(data["message_id"]))
        except KeyError:
            raise web.HTTPNotFound(text="no such bot message") from None
        query_id = sb.press(
            int(data["user_id"]), message, text=data.get("text"), data=data.get("data")
        )
        return web.json_response({"callback_query_id": query_id})

    async def messages(request: web.Request) -> web.Response:
        chat = request.query.get("chat_id")
        return web.json_response([m.as_dict() for m in sb.sent(int(chat) if chat else None)])

    async def transcript(_request: web.Request) -> web.Response:
        return web.Response(text=sb.transcript() + "\n")

    app.router.add_post("/_sandbox/users", users)
    app.router.add_post("/_sandbox/groups", groups)
    app.router.add_post("/_sandbox/send", send)
    app.router.add_post("/_sandbox/press", press)
    app.router.add_get("/_sandbox/messages", messages)
    app.router.add_get("/_sandbox/transcript", transcript)
