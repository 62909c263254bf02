"""Bytes kept in the database: blobs with an expiry (results not yet delivered, preset images),
and job images, stored once by content (`img:<sha-256>`) and kept while a job uses them: a
`job_inputs` row is one job's use of one image, with its own expiry (Retry, the result buttons),
and an image goes as soon as no job uses it."""

from __future__ import annotations

import hashlib
import time
from typing import Any

import sqlalchemy as sa

from bot.storage.db import Database, blobs, job_inputs

IMAGE = "img:"  # blob key prefix of job images; such a blob lives while a job_inputs row uses it
KEEP_FOREVER = 100 * 365 * 24 * 3600.0  # blobs that stay until removed (preset images)
FOREVER = 2.0**62  # the expiry of a job image (epoch seconds): it goes when no job uses it


def result_key(job_id: str) -> str:
    """The blob of a job's result, kept until its ending is delivered."""
    return f"job:{job_id}:result"


class BlobStore:
    def __init__(self, db: Database):
        self.db = db

    async def put(self, key: str, data: bytes, *, keep: float) -> None:
        async with self.db.engine.begin() as conn:
            await self.put_in(conn, key, data, keep=keep)

    async def put_in(self, conn: Any, key: str, data: bytes, *, keep: float) -> None:
        """`put` inside the caller's transaction."""
        expires = time.time() + keep
        await conn.execute(
            self.db.upsert(
                blobs,
                {"key": key, "data": data, "expires_at": expires},
                "key",
                {"data": data, "expires_at": expires},
            )
        )

    async def get(self, keys: list[str]) -> list[bytes] | None:
        """The bytes under every key, in order; None if any is missing or expired."""
        async with self.db.engine.connect() as conn:
            rows = (
                await conn.execute(
                    sa.select(blobs.c.key, blobs.c.data).where(
                        blobs.c.key.in_(keys), blobs.c.expires_at > time.time()
                    )
                )
            ).all()
        found = {key: bytes(data) for key, data in rows}
        return [found[k] for k in keys] if all(k in found for k in keys) else None

    async def use_images(self, conn: Any, job_id: str, images: list[bytes], until: float) -> None:
        """Inside the caller's transaction: `job_id` uses these images (content first) until
        `until`; each is stored once, whoever sends the same picture again (a button press does).

        A use and a drop of one image serialise: the upsert writes the image's row (DO UPDATE,
        not DO NOTHING), so it holds that row's lock until the caller commits, and a concurrent
        `drop_unused_images` waits for it, then sees the new use (rows locked in key order on
        both sides: no deadlock)."""
        keyed = [(IMAGE + hashlib.sha256(data).hexdigest(), data) for data in images]
        for key, data in sorted(set(keyed)):
            await conn.execute(
                self.db.upsert(
                    blobs,
                    {"key": key, "data": data, "expires_at": FOREVER},
                    "key",
                    {"expires_at": FOREVER},
                )
            )
        for position, (key, _) in enumerate(keyed):
            await conn.execute(
                job_inputs.insert().values(
                    job_id=job_id, position=position, blob=key, expires_at=until
                )
            )

    async def images(self, job_id: str) -> list[bytes] | None:
        """The job's content and style images, in order; None once they are no longer kept."""
        async with self.db.engine.connect() as conn:
            uses = (
                await conn.execute(
                    sa.select(job_inputs.c.expires_at, blobs.c.data)
                    .join(blobs, blobs.c.key == job_inputs.c.blob)
                    .where(job_inputs.c.job_id == job_id)
                    .order_by(job_inputs.c.position)
                )
            ).all()
        if not uses or any(use.expires_at <= time.time() for use in uses):
            return None
        return [bytes(use.data) for use in uses]

    async def drop_uses(self, conn: Any, job_ids: list[str]) -> None:
        """Inside the caller's transaction: these jobs use no image any more, and every image
        that no job uses goes."""
        if job_ids:
            await conn.execute(job_inputs.delete().where(job_inputs.c.job_id.in_(job_ids)))
        await drop_unused_images(conn)

    async def purge_expired(self) -> int:
        """Remove what is kept past its time: blobs, jobs' uses of images, and images no job
        uses any more; the number of blobs removed."""
        async with self.db.engine.begin() as conn:
            await conn.execute(job_inputs.delete().where(job_inputs.c.expires_at <= time.time()))
            removed = await drop_unused_images(conn)
            result = await conn.execute(blobs.delete().where(blobs.c.expires_at <= time.time()))
        return removed + (result.rowcount or 0)


async def drop_unused_images(conn: Any) -> int:
    """Delete every job image that no job uses; how many. The images that look unused are
    locked first (in key order; a use being written holds its image's lock until it commits),
    then deleted by a second statement, whose fresh snapshot sees every use committed meanwhile
    (PostgreSQL, READ COMMITTED; SQLite has one writer at a time)."""
    used = sa.select(job_inputs.c.blob)
    candidates = (
        (
            await conn.execute(
                sa.select(blobs.c.key)
                .where(blobs.c.key.startswith(IMAGE), blobs.c.key.not_in(used))
                .order_by(blobs.c.key)
                .with_for_update()
            )
        )
        .scalars()
        .all()
    )
    if not candidates:
        return 0
    result = await conn.execute(
        blobs.delete().where(blobs.c.key.in_(candidates), blobs.c.key.not_in(used))
    )
    return result.rowcount or 0
