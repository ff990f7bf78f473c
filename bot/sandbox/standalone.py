"""`python -m bot sandbox`: the stand-in alone, for manual play (see ``instructions``)."""

from __future__ import annotations

import asyncio

from bot.limits import TelegramLimits
from bot.sandbox.server import Sandbox

SANDBOX_TOKEN = "123456:SANDBOX-TOKEN"


def instructions(host: str, port: int) -> str:
    """How to use the stand-in now running on ``host:port`` (the port it really listens on)."""
    reachable = "127.0.0.1" if host in ("0.0.0.0", "", "::") else host  # listening everywhere
    root = f"http://{reachable}:{port}"
    return f"""Telegram stand-in on {root} (token {SANDBOX_TOKEN})

Point a bot at it with BOT_API_BASE_URL={root} and BOT_TOKEN={SANDBOX_TOKEN},
then drive the simulated people with the control API, e.g.

    curl -d '{{"id": 1001, "first_name": "王主任"}}' {root}/_sandbox/users
    curl -d '{{"user_id": 1001, "text": "/start"}}' {root}/_sandbox/send
    curl {root}/_sandbox/transcript
"""


async def serve(host: str, port: int) -> None:
    sandbox = Sandbox(SANDBOX_TOKEN, limits=TelegramLimits())
    await sandbox.start(host, port)
    print(instructions(host, sandbox.port), flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await sandbox.stop()
