"""Files come through BOT_API_BASE_URL too; the command line fails clearly on bad settings."""

import os
import subprocess
import sys
from pathlib import Path

from bot.harness import Harness
from bot.sandbox import tiny_png

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
