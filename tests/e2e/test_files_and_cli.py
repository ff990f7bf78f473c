"""Files come through BOT_API_BASE_URL too; the command line fails clearly on bad settings."""

import asyncio
import os
import socket
import subprocess
import sys
from pathlib import Path

from bot.harness import TOKEN, Harness
from bot.sandbox import Sandbox, tiny_png

ROOT = Path(__file__).resolve().parents[2]


async def test_file_download_follows_the_base_url(bot: Harness) -> None:
    image = tiny_png(7)
    sent = bot.sb.send_photo(4001, image=image)
    file = await bot.app.bot.get_file(sent["photo"][-1]["file_id"])
    assert file.file_path is not None and bot.sb.file_base_url in file.file_path
    assert bytes(await file.download_as_bytearray()) == image


def _cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in {"BOT_TOKEN", "TIMEZONE"}}
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=clean | env,
        cwd=ROOT / "tests",  # no .env there
    )


def test_run_without_token_says_what_to_do() -> None:
    result = _cli("run")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "BOT_TOKEN is not set" in lines[0] and "make demo" in lines[0]


def test_bad_setting_names_it(tmp_path: Path) -> None:
    result = _cli("migrate", TIMEZONE="Moon/Base", DATABASE_URL=f"sqlite:///{tmp_path}/x.db")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "configuration error: TIMEZONE: unknown time zone 'Moon/Base'; "
        "set TIMEZONE to an IANA zone name, e.g. Asia/Shanghai"
    )


def test_import_org_twice_is_idempotent(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/org.db"
    first = _cli("import-org", str(ROOT / "examples" / "org.yaml"), DATABASE_URL=url)
    second = _cli("import-org", str(ROOT / "examples" / "org.csv"), DATABASE_URL=url)
    assert first.stdout.strip() == "import-org: 9 created, 0 updated, 0 unchanged"
    assert second.stdout.strip() == "import-org: 0 created, 0 updated, 9 unchanged"
    broken = tmp_path / "broken.csv"
    broken.write_text("kind,code,name,parent_code\nvillage,V,村,NOPE\n", encoding="utf-8")
    failed = _cli("import-org", str(broken), DATABASE_URL=url)
    assert failed.returncode == 2 and "parent 'NOPE'" in failed.stderr


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port  # nothing listens there once the socket is closed


async def _run_bot(tmp_path: Path, **env: str) -> tuple[int, list[str]]:
    """`python -m bot run` with ``env``: its exit code and stderr lines (it must stop at once)."""
    clean = {k: v for k, v in os.environ.items() if k not in {"BOT_TOKEN", "TIMEZONE"}}
    defaults = {"DATABASE_URL": f"sqlite:///{tmp_path}/run.db", "MEDIA_DIR": str(tmp_path)}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "run",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        env=clean | defaults | env,
        cwd=ROOT / "tests",
    )
    _, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    return process.returncode or 0, stderr.decode().strip().splitlines()


async def test_start_up_failures_are_one_line_with_the_fix(tmp_path: Path) -> None:
    """A wrong token, a Bot API server or database that cannot be reached, a wrong rules
    file: `bot run` stops with one line on stderr saying which setting and how to fix it."""
    (tmp_path / "a-file").write_text("not a folder")
    bad_rules = tmp_path / "r.yaml"
    bad_rules.write_text("ranking: {weight_closure: -1}\n")
    async with Sandbox(TOKEN) as sb:
        ok = {"BOT_TOKEN": TOKEN, "BOT_API_BASE_URL": sb.api_base_url}
        cases = {
            "cannot start: BOT_TOKEN: ": {**ok, "BOT_TOKEN": "123456:WRONG"},
            "cannot start: BOT_API_BASE_URL: cannot reach ": {
                **ok,
                "BOT_API_BASE_URL": f"http://127.0.0.1:{_closed_port()}",
            },
            "cannot start: DATABASE_URL: cannot open postgresql": {
                **ok,
                "DATABASE_URL": f"postgresql://postgres@127.0.0.1:{_closed_port()}/greengrid",
            },
            "cannot start: DATABASE_URL: cannot open sqlite": {
                **ok,
                "DATABASE_URL": f"sqlite:///{tmp_path}/a-file/greengrid.db",
            },
            "configuration error: RULES_FILE ": {**ok, "RULES_FILE": str(bad_rules)},
        }
        results = await asyncio.gather(*(_run_bot(tmp_path, **env) for env in cases.values()))
    for (says, _env), (code, lines) in zip(cases.items(), results, strict=True):
        assert code == 2 and len(lines) == 1, (says, lines)
        assert lines[0].startswith(says), lines
    by_case = dict(zip(cases, (lines[0] for _, lines in results), strict=True))
    assert "refused this token" in by_case["cannot start: BOT_TOKEN: "]
    assert (
        "weights must not be negative; fix the file" in by_case["configuration error: RULES_FILE "]
    )
