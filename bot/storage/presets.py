"""Each server's named style presets (`style_presets`; bot/presets.py), their images in blobs."""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from bot.presets import Preset, PresetError, image_key, preset_key
from bot.storage.blobs import KEEP_FOREVER, BlobStore
from bot.storage.db import Database, blobs, style_presets


class PresetStore:
    def __init__(self, db: Database, blobs: BlobStore):
        self.db, self.blobs = db, blobs

    async def list(self, guild_id: int) -> list[Preset]:
        async with self.db.engine.connect() as conn:
            rows = (
                await conn.execute(
                    sa.select(style_presets)
                    .where(style_presets.c.guild_id == guild_id)
                    .order_by(style_presets.c.key)
                )
            ).all()
        return [preset_of(r) for r in rows]

    async def add(self, guild_id: int, preset: Preset, image: bytes, *, limit: int) -> None:
        """Save a new preset with its image, in one transaction; PresetError if the name is
        taken or the server has `limit` presets already. The limit holds under concurrent adds:
        on PostgreSQL a lock per server orders them; on SQLite the insert is one statement that
        counts under the write lock."""
        async with self.db.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                await conn.execute(sa.text("SELECT pg_advisory_xact_lock(:g)"), {"g": guild_id})
            await _check_room(conn, guild_id, preset, limit)
            values = {
                "guild_id": guild_id,
                "key": preset.key,
                "name": preset.name,
                "strength": preset.strength,
                "preserve_colors": preset.preserve_colors,
                "created_by": preset.created_by,
                "created_at": time.time(),
            }
            under_limit = (
                sa.select(sa.func.count())
                .select_from(style_presets)
                .where(style_presets.c.guild_id == guild_id)
                .scalar_subquery()
                < limit
            )
            row = sa.select(*(sa.literal(v, style_presets.c[k].type) for k, v in values.items()))
            try:
                inserted = await conn.execute(
                    style_presets.insert().from_select(list(values), row.where(under_limit))
                )
            except sa_exc.IntegrityError:  # the same name, added at the same moment
                raise PresetError(
                    f"this server already has a preset called {preset.name}; remove it first"
                ) from None
            if inserted.rowcount == 0:  # another add took the last place meanwhile
                raise PresetError(
                    f"this server has {limit} presets, the most it may keep; remove one first"
                )
            await self.blobs.put_in(
                conn, image_key(guild_id, preset.name), image, keep=KEEP_FOREVER
            )

    async def remove(self, guild_id: int, name: str) -> Preset | None:
        """Remove a preset and its image; the removed preset, or None if there was none."""
        async with self.db.engine.begin() as conn:
            row = await preset_row(conn, guild_id, name)
            if row is None:
                return None
            await conn.execute(
                style_presets.delete().where(
                    style_presets.c.guild_id == guild_id, style_presets.c.key == row.key
                )
            )
            await conn.execute(blobs.delete().where(blobs.c.key == image_key(guild_id, row.name)))
        return preset_of(row)

    async def get(self, guild_id: int, name: str) -> tuple[Preset, bytes] | None:
        """A preset and its image, by name (any case)."""
        async with self.db.engine.connect() as conn:
            row = await preset_row(conn, guild_id, name)
        if row is None:
            return None
        images = await self.blobs.get([image_key(guild_id, row.name)])
        return (preset_of(row), images[0]) if images else None


async def preset_row(conn: Any, guild_id: int, name: str) -> Any:
    """A server's preset by name (compared without case), or None."""
    query = sa.select(style_presets).where(
        style_presets.c.guild_id == guild_id, style_presets.c.key == preset_key(name)
    )
    return (await conn.execute(query)).first()


def preset_of(row: Any) -> Preset:
    return Preset(
        name=row.name,
        strength=row.strength,
        preserve_colors=row.preserve_colors,
        created_by=row.created_by,
        created_at=row.created_at,
    )


async def _check_room(conn: Any, guild_id: int, preset: Preset, limit: int) -> None:
    """PresetError if the server has a preset of that name, or `limit` presets already."""
    count = (
        await conn.execute(
            sa.select(sa.func.count())
            .select_from(style_presets)
            .where(style_presets.c.guild_id == guild_id)
        )
    ).scalar_one()
    taken = (
        await conn.execute(
            sa.select(style_presets.c.name).where(
                style_presets.c.guild_id == guild_id, style_presets.c.key == preset.key
            )
        )
    ).scalar()
    if taken is not None:
        raise PresetError(f"this server already has a preset called {taken}; remove it first")
    if count >= limit:
        raise PresetError(
            f"this server has {count} presets, the most it may keep; remove one first"
        )
