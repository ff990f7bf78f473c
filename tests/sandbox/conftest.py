"""A stand-in per test: users 1 and 2, group -10 (user 1 its admin); user 1 has opened the bot."""

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from bot.limits import TelegramLimits
from bot.sandbox import Sandbox

TOKEN = "123456:TEST"


@pytest.fixture
async def sb() -> AsyncIterator[Sandbox]:
    sandbox = Sandbox(TOKEN, limits=TelegramLimits().scaled(0.05))
    await sandbox.start()
    sandbox.add_user(1, "甲")
    sandbox.add_user(2, "乙")
    sandbox.add_group(-10, "群", members=[1, 2], admins=[1])
    sandbox.send_text(1, "/start")  # user 1 has opened the bot
    yield sandbox
    await sandbox.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def call(
    http: aiohttp.ClientSession, sb: Sandbox, method: str, token: str = TOKEN, **params: Any
) -> tuple[int, dict[str, Any]]:
    form = {k: json.dumps(v) if isinstance(v, dict | list) else str(v) for k, v in params.items()}
    async with http.post(f"{sb.root_url}/bot{token}/{method}", data=form) as response:
        return response.status, await response.json()
