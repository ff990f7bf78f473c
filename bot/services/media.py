"""The content-addressed media store: every photo's bytes kept under their SHA-256.

Downloads run in the background after a report is stored; a photo whose bytes are not in the
store yet is tried again later (on the next start, or the next sweep). A photo Telegram refuses
waits longer after each refusal and is given up after a few, so that it never holds up the
photos reported after it.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from models import ProblemPhoto

TELEGRAM_DOWNLOAD_LIMIT = 20 * 1024 * 1024
UNAVAILABLE = "-"  # in place of a digest: never to be downloaded
MAX_DOWNLOAD_ATTEMPTS = 6
FIRST_RETRY = timedelta(minutes=1)


def retry_delay(attempts: int) -> timedelta:
    """How long to wait after the ``attempts``-th refusal: 1, 4, 16, 64 minutes, about 4 h."""
    factor: int = 4 ** (max(attempts, 1) - 1)
    return FIRST_RETRY * factor


@dataclass(frozen=True)
class MediaStore:
    root: Path

    def path_for(self, sha256: str) -> Path:
        return self.root / sha256[:2] / sha256

    def put(self, data: bytes) -> str:
        """Store ``data`` (once per content) and return its SHA-256."""
        digest = hashlib.sha256(data).hexdigest()
        target = self.path_for(digest)
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            # Write then rename, so a kill mid-write never leaves a truncated file under the name.
            handle, tmp = tempfile.mkstemp(dir=target.parent, prefix=".part-")
            with os.fdopen(handle, "wb") as out:
                out.write(data)
            os.replace(tmp, target)
        return digest

    def get(self, sha256: str) -> bytes | None:
        path = self.path_for(sha256)
        return path.read_bytes() if path.exists() else None


@dataclass(frozen=True)
class PendingDownload:
    photo_id: int
    file_id: str
    size: int | None


async def pending_downloads(
    session: AsyncSession, now: datetime, limit: int = 50
) -> list[PendingDownload]:
    """Photos to download now: never refused first (oldest first), then the refused ones whose
    wait is over; those still waiting are left out."""
    rows = await session.execute(
        select(ProblemPhoto.id, ProblemPhoto.file_id, ProblemPhoto.size)
        .where(
            ProblemPhoto.sha256.is_(None),
            ProblemPhoto.download_after.is_(None) | (ProblemPhoto.download_after <= now),
        )
        .order_by(ProblemPhoto.download_attempts, ProblemPhoto.id)
        .limit(limit)
    )
    return [PendingDownload(i, f, s) for i, f, s in rows]


async def mark_stored(session: AsyncSession, photo_id: int, sha256: str, size: int) -> None:
    # One UPDATE (a photo deleted meanwhile matches no row), not a read and then a write.
    await session.execute(
        update(ProblemPhoto).where(ProblemPhoto.id == photo_id).values(sha256=sha256, size=size)
    )


async def mark_unavailable(session: AsyncSession, photo_id: int) -> None:
    """Too large for a bot to download (over 20 MB): remembered, never tried again."""
    photo = await session.get(ProblemPhoto, photo_id)
    if photo is not None:
        photo.sha256 = UNAVAILABLE


async def mark_refused(session: AsyncSession, photo_id: int, now: datetime) -> bool:
    """Telegram refused the download: wait longer each time, give up after a few refusals
    (True when given up). Its file_id stays, so the photo can still be shown in chat."""
    photo = await session.get(ProblemPhoto, photo_id)
    if photo is None:
        return True
    photo.download_attempts += 1
    if photo.download_attempts >= MAX_DOWNLOAD_ATTEMPTS:
        photo.sha256 = UNAVAILABLE
        return True
    photo.download_after = now + retry_delay(photo.download_attempts)
    return False
