"""`python -m bot sandbox`: the stand-in alone, for manual play.

Point a bot at it with BOT_API_BASE_URL=http://127.0.0.1:8081 and BOT_TOKEN=123456:SANDBOX-TOKEN,
then drive the simulated people with the control API, e.g.

    curl -d '{"id": 1001, "first_name": "王主任"}' localhost:8081/_sandbox/users
    curl -d '{"user_id": 1001, "text": "/start"}' localhost:8081/_sandbox/send
    curl localhost:8081/_sandbox/transcript
"""

from __future__ import annotations

import asyncio

from bot.limits import TelegramLimits
from bot.sandbox.server import Sandbox

SANDBOX_TOKEN = "123456:SANDBOX-TOKEN"


async def serve(host: str, port: int) -> None:
    sandbox = Sandbox(SANDBOX_TOKEN, limits=TelegramLimits())
    await sandbox.start(host, port)
    print(f"Telegram stand-in on http://{host}:{sandbox.port} (token {SANDBOX_TOKEN})")
    print(__doc__.split("\n\n", 1)[1] if __doc__ else "")
    try:
        await asyncio.Event().wait()
    finally:
        await sandbox.stop()
