"""Per-guild settings over SQLAlchemy async (SQLite by default, PostgreSQL for several processes).

The schema is versioned: `schema_version` holds the number of migrations applied, and
`Storage.open()` applies the missing ones in order.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from bot.engine.params import COLOR_MODES, MAX_SIZE, MAX_STEPS, OPTIMIZERS, StyleParams

DEFAULTS = StyleParams()


class SettingsError(ValueError):
    """A per-guild setting is out of range; the message says what is allowed."""


@dataclass(frozen=True, kw_only=True)
class GuildSettings:
    """What admins can set for their server. None: the engine's default."""

    strength: float = DEFAULTS.strength
    content_weight: float | None = None  # alpha; with style_weight replaces strength
    style_weight: float | None = None  # beta
    style_layer_weights: tuple[float, ...] | None = None  # lambda per default style layer
    steps: int = 200
    size: int = 512
    optimizer: str = DEFAULTS.optimizer
    preserve_colors: str = DEFAULTS.preserve_colors
    max_size: int = 1024  # the largest size members may ask for
    max_steps: int = 500  # the most steps members may ask for
    cooldown_seconds: int = 30  # between two /stylize of one member
    allowed_channels: tuple[int, ...] = field(default=())  # empty: every channel

    def replace(self, **changes: Any) -> GuildSettings:
        return dataclasses.replace(self, **changes).validate()

    def validate(self) -> GuildSettings:
        def need(ok: bool, message: str) -> None:
            if not ok:
                raise SettingsError(message)

        numbers = [("strength", self.strength), ("alpha", self.content_weight), ("beta", self.style_weight),
                   *(("a layer weight", w) for w in self.style_layer_weights or ())]
        for name, value in numbers:
            need(value is None or math.isfinite(value), f"{name} must be a finite number, not {value}")
        need(0 <= self.strength <= 100, "strength must be between 0 and 100")
        need((self.content_weight is None) == (self.style_weight is None), "set both alpha and beta, or neither")
        need(self.content_weight is None or self.content_weight >= 0, "alpha must be 0 or more")
        need(self.style_weight is None or self.style_weight >= 0, "beta must be 0 or more")
        if self.style_layer_weights is not None:
            need(len(self.style_layer_weights) == len(DEFAULTS.style_layers),
                 f"give {len(DEFAULTS.style_layers)} layer weights, one for each of {', '.join(DEFAULTS.style_layers)}")
            need(all(w >= 0 for w in self.style_layer_weights) and sum(self.style_layer_weights) > 0,
                 "layer weights must be 0 or more and not all 0")
        need(64 <= self.max_size <= MAX_SIZE, f"the size cap must be between 64 and {MAX_SIZE}")
        need(1 <= self.max_steps <= MAX_STEPS, f"the steps cap must be between 1 and {MAX_STEPS}")
        need(64 <= self.size <= self.max_size, f"size must be between 64 and the size cap ({self.max_size})")
        need(1 <= self.steps <= self.max_steps, f"steps must be between 1 and the steps cap ({self.max_steps})")
        need(self.optimizer in OPTIMIZERS, f"optimizer must be one of {', '.join(OPTIMIZERS)}")
        need(self.preserve_colors in COLOR_MODES, f"colour preservation must be one of {', '.join(COLOR_MODES)}")
        need(0 <= self.cooldown_seconds <= 86400, "cooldown must be between 0 and 86400 seconds")
        return self

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> GuildSettings:
        known = {f.name for f in dataclasses.fields(cls)}
        data = {k: tuple(v) if isinstance(v, list) else v for k, v in json.loads(text).items() if k in known}
        return cls(**data)


metadata = sa.MetaData()
schema_version = sa.Table("schema_version", metadata, sa.Column("version", sa.Integer, nullable=False))
guild_settings = sa.Table(
    "guild_settings",
    metadata,
    sa.Column("guild_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("settings", sa.Text, nullable=False),  # GuildSettings as JSON
    sa.Column("updated_by", sa.BigInteger, nullable=True),
    sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
)

# Each migration brings the schema from version i to i + 1. Never edit one that has shipped.
MIGRATIONS: list[list[sa.schema.ExecutableDDLElement]] = [
    [sa.schema.CreateTable(guild_settings, if_not_exists=True)],
]


class Storage:
    def __init__(self, engine: AsyncEngine):
        self.engine = engine
        self._cache: dict[int, GuildSettings] = {}

    @classmethod
    async def open(cls, url: str) -> Storage:
        storage = cls(create_async_engine(url))
        await storage.migrate()
        return storage

    async def migrate(self) -> int:
        async with self.engine.begin() as conn:
            await conn.run_sync(lambda c: schema_version.create(c, checkfirst=True))
            version = (await conn.execute(sa.select(sa.func.max(schema_version.c.version)))).scalar() or 0
            for number, steps in enumerate(MIGRATIONS[version:], start=version + 1):
                for step in steps:
                    await conn.execute(step)
                await conn.execute(schema_version.insert().values(version=number))
            return len(MIGRATIONS)

    async def close(self) -> None:
        await self.engine.dispose()

    async def get(self, guild_id: int) -> GuildSettings:
        if guild_id in self._cache:
            return self._cache[guild_id]
        async with self.engine.connect() as conn:
            row = (await conn.execute(sa.select(guild_settings.c.settings).where(guild_settings.c.guild_id == guild_id))).first()
        settings = GuildSettings.from_json(row[0]) if row else GuildSettings()
        self._cache[guild_id] = settings
        return settings

    async def put(self, guild_id: int, settings: GuildSettings, *, by: int | None = None) -> None:
        settings.validate()
        async with self.engine.begin() as conn:
            updated = await conn.execute(
                guild_settings.update().where(guild_settings.c.guild_id == guild_id)
                .values(settings=settings.to_json(), updated_by=by, updated_at=sa.func.now())
            )
            if updated.rowcount == 0:
                await conn.execute(guild_settings.insert().values(guild_id=guild_id, settings=settings.to_json(), updated_by=by))
        self._cache.pop(guild_id, None)

    async def reset(self, guild_id: int) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(guild_settings.delete().where(guild_settings.c.guild_id == guild_id))
        self._cache.pop(guild_id, None)
