"""Alembic environment. The application passes its own connection (``bot.db.migrate``); the
``alembic`` command line uses DATABASE_URL from the settings."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import Connection

import models
from bot.db import create_engine

target_metadata = models.Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_online_from_settings() -> None:
    from bot.settings import load_settings

    engine = create_engine(load_settings().database_url)
    async with engine.begin() as connection:
        await connection.run_sync(_run)
    await engine.dispose()


connection = context.config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    asyncio.run(_run_online_from_settings())
