"""Real bot processes for the tests: `python -m bot run` as a child against a stand-in hosted by
the test, killed with SIGKILL (by the test, or by the stand-in at a chosen message) and started
again on the same database."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bot.harness import TOKEN
from bot.sandbox import Sandbox, SentMessage
from bot.sandbox.errors import ApiError
from bot.sandbox.world import Upload

# Settings a developer's environment might hold; the child gets only the test's.
SETTING_NAMES = {
    "BOT_TOKEN",
    "BOT_API_BASE_URL",
    "DATABASE_URL",
    "ADMIN_IDS",
    "RULES_FILE",
    "MEDIA_DIR",
    "TIMEZONE",
    "DEFAULT_LOCALE",
    "RATE_LIMIT_SCALE",
    "WEBHOOK_URL",
    "WEBHOOK_SECRET",
    "WEBHOOK_MAX_CONNECTIONS",
    "HTTP_HOST",
    "HTTP_PORT",
    "INBOX_WORKERS",
    "INBOX_MAX_ATTEMPTS",
    "INBOX_RETRY_S",
    "OUTBOX_LEASE_SECONDS",
}


def bot_env(
    sb: Sandbox, db_url: str, workdir: Path, port: int, *, admin: int, speed: float, **extra: str
) -> dict[str, str]:
    """The child's environment: this process's minus any bot setting, plus the test's."""
    env = {k: v for k, v in os.environ.items() if k.upper() not in SETTING_NAMES}
    return env | {
        "BOT_TOKEN": TOKEN,
        "BOT_API_BASE_URL": sb.root_url,
        "DATABASE_URL": db_url,
        "ADMIN_IDS": str(admin),
        "MEDIA_DIR": str(workdir / "media"),
        "RATE_LIMIT_SCALE": str(speed),
        "HTTP_PORT": str(port),
        "INBOX_RETRY_S": "0.2",
        "PYTHONUNBUFFERED": "1",  # a killed process's log ends where it was killed
        **extra,
    }


@dataclass
class BotProcess:
    """One `python -m bot run` child; each start's log goes to a file shown when something
    fails."""

    name: str
    workdir: Path
    env: dict[str, str]
    webhook: bool = False
    proc: asyncio.subprocess.Process | None = None
    starts: int = 0
    log_paths: list[Path] = field(default_factory=list)

    @property
    def port(self) -> int:
        return int(self.env["HTTP_PORT"])

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def start(self) -> None:
        self.starts += 1
        log_path = self.workdir / f"{self.name}-{self.starts}.log"
        self.log_paths.append(log_path)
        with log_path.open("wb") as log:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bot",
                "run",
                *(["--webhook"] if self.webhook else []),
                cwd=self.workdir,  # no .env from the checkout
                env=self.env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
            )

    async def ready(self, timeout: float = 30.0) -> None:
        """Until its /healthz answers 200 (it is then receiving, and has caught up)."""
        deadline = asyncio.get_running_loop().time() + timeout
        async with aiohttp.ClientSession() as http:
            while True:
                assert self.proc is not None
                if self.proc.returncode is not None:
                    raise AssertionError(f"{self.name} exited early:\n{self.logs()}")
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.get(f"http://127.0.0.1:{self.port}/healthz") as response:
                        if response.status == 200:
                            return
                if asyncio.get_running_loop().time() > deadline:
                    raise AssertionError(f"{self.name} not ready in {timeout}s:\n{self.logs()}")
                await asyncio.sleep(0.05)

    async def kill(self) -> None:
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGKILL)
        await self.proc.wait()

    async def killed(self, timeout: float = 30.0) -> None:
        """Until the process has died of SIGKILL (sent by someone else: the stand-in)."""
        assert self.proc is not None
        try:
            code = await asyncio.wait_for(self.proc.wait(), timeout)
        except TimeoutError:
            logs = self.logs()
            raise AssertionError(f"{self.name} was not killed in {timeout}s:\n{logs}") from None
        assert code == -signal.SIGKILL, f"{self.name} exited with {code}:\n{self.logs()}"

    async def stop(self) -> int:
        """SIGTERM, as a service manager stops it; the exit code."""
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), 15)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        assert self.proc.returncode is not None
        return self.proc.returncode

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in self.log_paths
        )


SendFilter = Callable[[str, dict[str, Any]], bool]
Hold = Callable[[], Awaitable[object]]


class KillingSandbox(Sandbox):
    """A stand-in that kills the bot process ``pid`` at a chosen message, once per arming.

    ``victim``: as it records a message to that chat; the message is delivered and the answer
    never reaches the process (the restarted one sends it again: at least once).
    ``kill_before``: as a sending request matching it (method, parameters) comes in; the message
    is not delivered (the restarted one sends it: exactly once); with ``hold``, the request
    first waits for it (the process goes on meanwhile).
    """

    victim: int | None = None
    kill_before: SendFilter | None = None
    hold: Hold | None = None
    pid: int | None = None
    kills: int = 0
    killed_at: list[str]  # what each kill came at, for failure messages

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.killed_at = []

    def arm(
        self,
        pid: int,
        *,
        victim: int | None = None,
        before: SendFilter | None = None,
        hold: Hold | None = None,
    ) -> None:
        self.pid, self.victim, self.kill_before, self.hold = pid, victim, before, hold

    def _kill(self, at: str) -> None:
        assert self.pid is not None
        self.killed_at.append(at)
        os.kill(self.pid, signal.SIGKILL)
        self.pid, self.victim, self.kill_before, self.hold = None, None, None, None
        self.kills += 1

    def record_sent(self, message: SentMessage, *, label: str | None = None) -> None:
        super().record_sent(message, label=label)
        if self.pid is not None and self.victim is not None and message.chat_id == self.victim:
            self._kill(f"delivered {message.method} to {message.chat_id}: {message.content[:60]}")

    async def _call(
        self, method: str, params: dict[str, Any], uploads: dict[str, Upload], now: float
    ) -> tuple[Any, int]:
        if (
            self.pid is not None
            and self.kill_before is not None
            and method.startswith("send")
            and self.kill_before(method, params)
        ):
            if self.hold is not None:
                await self.hold()
            text = str(params.get("text") or params.get("caption") or "")
            self._kill(f"before {method} to {params.get('chat_id')}: {text[:60]}")
            raise ApiError(502, "Bad Gateway")  # never read: the process is gone
        return await super()._call(method, params, uploads, now)


async def until(ready: Callable[[], bool], timeout: float) -> bool:
    deadline = asyncio.get_running_loop().time() + timeout
    while not ready():
        if asyncio.get_running_loop().time() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float) -> bool:
    """Until ``check`` says yes (True), or the time is up (False)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True
