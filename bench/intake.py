"""Durable intake: how fast the webhook answers (the update committed to the inbox first) and
how fast the inbox is worked off, with the real application against the stand-in.

    .venv/bin/python bench/intake.py [--updates 500] [--connections 8] [--workers 1]
                                     [--database-url postgresql://postgres@127.0.0.1/bench]

Each update is a /help from a different person (a new person for the bot: identify writes a
row), answered through the rate limiter with Telegram's limits scaled by --speed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path

import aiohttp
from sqlalchemy import func, select

import models
from bot.harness import WEBHOOK_SECRET, running_bot
from bot.receiving.web import SECRET_HEADER


async def bench(args: argparse.Namespace) -> None:
    url = args.database_url or f"sqlite+aiosqlite:///{Path(tempfile.mkdtemp()) / 'bench.db'}"
    async with running_bot(
        url,
        admin_ids=[1],
        speed=args.speed,
        webhook=True,
        inbox_workers=args.workers,
        media_dir=Path(tempfile.mkdtemp()),
    ) as h:
        sb = h.sb
        # Queue the updates while the stand-in does not deliver, then post them ourselves.
        hook_url, secret = sb.webhook["url"], sb.webhook["secret_token"]
        await sb.set_webhook("", None)
        for i in range(args.updates):
            sb.add_user(100000 + i, f"U{i}")
            sb.send_text(100000 + i, "/help")
        updates = sb.take_updates(None, args.updates)
        sb.take_updates(updates[-1]["update_id"] + 1, 1)  # confirmed: we deliver them
        bodies = [json.dumps(u).encode() for u in updates]
        headers = {"Content-Type": "application/json", SECRET_HEADER: WEBHOOK_SECRET}
        latencies: list[float] = []
        queue: asyncio.Queue[bytes] = asyncio.Queue()
        for body in bodies:
            queue.put_nowait(body)

        async def connection(http: aiohttp.ClientSession) -> None:
            while not queue.empty():
                body = queue.get_nowait()
                started = time.perf_counter()
                async with http.post(hook_url, data=body, headers=headers) as response:
                    assert response.status == 200, response.status
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        async with aiohttp.ClientSession() as http:
            await asyncio.gather(*(connection(http) for _ in range(args.connections)))
        stored_s = time.perf_counter() - started
        while True:
            async with h.db.begin() as session:
                done = await session.scalar(
                    select(func.count())
                    .select_from(models.InboxUpdate)
                    .where(models.InboxUpdate.status == "done")
                )
            if done == args.updates:
                break
            await asyncio.sleep(0.05)
        processed_s = time.perf_counter() - started
        await sb.set_webhook(hook_url, secret)
    q = statistics.quantiles(latencies, n=100)
    print(
        f"{args.updates} updates over {args.connections} connections, "
        f"{h.db.dialect}, {args.workers} worker(s):\n"
        f"  webhook answer (stored): p50 {q[49] * 1000:.1f} ms, p95 {q[94] * 1000:.1f} ms, "
        f"p99 {q[98] * 1000:.1f} ms; {args.updates / stored_s:.0f} updates/s stored\n"
        f"  all processed (handlers + replies) after {processed_s:.2f} s: "
        f"{args.updates / processed_s:.0f} updates/s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--updates", type=int, default=500)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--speed", type=float, default=0.01, help="rate-limit windows × this")
    parser.add_argument("--database-url", default=None)
    asyncio.run(bench(parser.parse_args()))


if __name__ == "__main__":
    main()
