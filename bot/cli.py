"""`python -m bot <command>` (also installed as `greengrid`)."""

from __future__ import annotations

import argparse
import asyncio
import errno
import logging
import sys
from pathlib import Path

from bot.settings import ConfigError, Settings, load_settings

log = logging.getLogger("greengrid")
_HTTP_HINT = "set HTTP_PORT to a free port (0 picks one) or HTTP_HOST to an address of this machine"


def _logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # Every getUpdates call would otherwise be logged.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)


class StartUpError(ConfigError):
    """The Bot API server or the database cannot be reached: one line saying which and how."""


def check_start_up(settings: Settings) -> None:
    """Reach the Bot API server (getMe) and the database once before starting, so that a wrong
    token, an unreachable server or an unreachable database is one line with the fix rather
    than a traceback (the application itself retries and logs at length)."""
    from sqlalchemy import text
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import DBAPIError
    from telegram import Bot
    from telegram.error import InvalidToken, NetworkError

    from bot.db import Database

    def one_line(exc: BaseException) -> str:
        detail = getattr(exc, "orig", None) or exc  # the driver's own words, not SQLAlchemy's
        return " ".join(str(detail).split()) or exc.__class__.__name__

    async def reach_bot_api() -> None:
        urls = settings.api_urls
        bot = Bot(settings.token(), *(urls or ()))
        try:
            await bot.initialize()  # asks getMe
        finally:
            await bot.shutdown()

    async def reach_database() -> None:
        db = Database.connect(settings.database_url)
        try:
            async with db.engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
        finally:
            await db.dispose()

    server = settings.bot_api_base_url or "Telegram's Bot API server"
    try:
        asyncio.run(reach_bot_api())
    except InvalidToken:
        raise StartUpError(
            f"BOT_TOKEN: {server} refused this token; "
            "copy the token @BotFather gave you into BOT_TOKEN"
        ) from None
    except NetworkError as exc:
        raise StartUpError(
            f"BOT_API_BASE_URL: cannot reach {server} ({one_line(exc)}); check the address "
            "(unset BOT_API_BASE_URL for Telegram's own) and the network"
        ) from None
    try:
        asyncio.run(reach_database())
    except (OSError, DBAPIError) as exc:
        where = make_url(settings.database_url).render_as_string(hide_password=True)
        raise StartUpError(
            f"DATABASE_URL: cannot open {where} ({one_line(exc)}); check DATABASE_URL, that "
            "the database server is running, and that the bot may write there"
        ) from None


def cmd_run(args: argparse.Namespace) -> int:
    settings = load_settings()
    settings.token()  # fail before anything starts
    if args.webhook:
        settings.webhook()
    check_start_up(settings)

    from bot.app import build_application
    from bot.runtime import run_until_stopped

    app = build_application(settings)
    log.info(
        "greengrid starting (%s, database %s)",
        "webhook" if args.webhook else "long polling",
        settings.database_url.split("://", 1)[0],
    )
    try:
        asyncio.run(run_until_stopped(app, webhook=args.webhook))
    except OSError as exc:
        if exc.errno in (errno.EADDRINUSE, errno.EACCES, errno.EADDRNOTAVAIL):
            raise ConfigError(
                f"cannot listen on {settings.http_host}:{settings.http_port} ({exc.strerror}): "
                + _HTTP_HINT
            ) from None
        raise
    return 0


def cmd_migrate(_args: argparse.Namespace) -> int:
    from bot.db import migrate_url

    settings = load_settings()
    migrate_url(settings.database_url)
    print("database schema is up to date")
    return 0


def cmd_import_org(args: argparse.Namespace) -> int:
    from bot.db import Database, migrate
    from bot.services.org import OrgFileError, import_org, parse_org_file

    settings = load_settings()
    try:
        specs = parse_org_file(Path(args.file))
    except OrgFileError as exc:
        print(f"import-org: {exc}", file=sys.stderr)
        return 2

    async def _run() -> str:
        db = Database.connect(settings.database_url)
        try:
            await migrate(db)
            async with db.begin() as session:
                result = await import_org(session, specs)
        finally:
            await db.dispose()
        return (
            f"{len(result.created)} created, {len(result.updated)} updated, "
            f"{result.unchanged} unchanged"
        )

    print(f"import-org: {asyncio.run(_run())}")
    return 0


def cmd_backup(args: argparse.Namespace) -> int:
    from bot.backup import BackupError, backup

    settings = load_settings()
    try:
        print(f"backup: {backup(settings.database_url, Path(args.file), force=args.force)}")
    except BackupError as exc:
        print(f"backup: {exc}", file=sys.stderr)
        return 2
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    from bot.backup import BackupError, restore

    settings = load_settings()
    try:
        print(f"restore: {restore(settings.database_url, Path(args.file), force=args.force)}")
    except BackupError as exc:
        print(f"restore: {exc}", file=sys.stderr)
        return 2
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from bot.demo import run_demo

    return asyncio.run(run_demo(Path(args.out), speed=args.speed))


def cmd_sandbox(args: argparse.Namespace) -> int:
    from bot.sandbox.standalone import serve

    asyncio.run(serve(args.host, args.port))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="greengrid", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the bot (long polling, or --webhook)")
    run.add_argument(
        "--webhook",
        action="store_true",
        help="receive through a webhook at WEBHOOK_URL (with WEBHOOK_SECRET) instead of polling",
    )
    run.set_defaults(func=cmd_run)
    sub.add_parser("migrate", help="upgrade the database schema").set_defaults(func=cmd_migrate)
    imp = sub.add_parser("import-org", help="import areas from a YAML or CSV file")
    imp.add_argument("file")
    imp.set_defaults(func=cmd_import_org)
    backup = sub.add_parser(
        "backup", help="copy the database to FILE (consistent while the bot runs)"
    )
    backup.add_argument("file")
    backup.add_argument("--force", action="store_true", help="replace FILE if it exists")
    backup.set_defaults(func=cmd_backup)
    restore = sub.add_parser(
        "restore", help="replace the database with the backup FILE (stop the bot first)"
    )
    restore.add_argument("file")
    restore.add_argument(
        "--force", action="store_true", help="replace an existing database (it is lost)"
    )
    restore.set_defaults(func=cmd_restore)
    demo = sub.add_parser("demo", help="play a scripted scene against the local stand-in")
    demo.add_argument("--out", default="demo-out")
    demo.add_argument(
        "--speed",
        type=float,
        default=0.1,
        help="rate-limit windows multiplied by this (1 = Telegram's real limits)",
    )
    demo.set_defaults(func=cmd_demo)
    sandbox = sub.add_parser("sandbox", help="run the local Telegram stand-in alone")
    sandbox.add_argument("--host", default="127.0.0.1")
    sandbox.add_argument(
        "--port", type=int, default=8081, help="port to listen on (default 8081; 0: any free one)"
    )
    sandbox.set_defaults(func=cmd_sandbox)
    args = parser.parse_args(argv)
    _logging(args.verbose)
    try:
        return int(args.func(args))
    except StartUpError as exc:
        print(f"cannot start: {exc}", file=sys.stderr)
        return 2
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
