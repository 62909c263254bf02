"""The database: tables, migrations, the engine, and the small `meta` facts.

Tables (each has one store in this package that reads and writes it):
- `guild_settings` (settings.py): each server's GuildSettings as JSON.
- `jobs`, `instances` (jobs.py): every job a member started, from submit to the message that
  ends it, and the bot processes that follow them, so that a bot that died mid-job can tell its
  members at the next start (see bot/cogs/recovery.py).
- `blobs`, `job_inputs` (blobs.py): bytes with an expiry (results not yet delivered, preset
  images), and job images stored once by content, kept while a job uses them.
- `style_presets` (presets.py): each server's named style presets (bot/presets.py).
- `meta` (here): facts about the deployment, e.g. the hash of the synced command tree, and the
  servers the bot has left (guilds.py).

The schema is versioned: `schema_version` holds the number of migrations applied, and
`Database.migrate()` applies the missing ones in order.
"""

from __future__ import annotations

import json
import os
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

metadata = sa.MetaData()
schema_version = sa.Table(
    "schema_version", metadata, sa.Column("version", sa.Integer, nullable=False)
)
guild_settings = sa.Table(
    "guild_settings",
    metadata,
    sa.Column("guild_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("settings", sa.Text, nullable=False),  # GuildSettings as JSON
    sa.Column("updated_by", sa.BigInteger, nullable=True),
    sa.Column(
        "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
    ),
)
jobs = sa.Table(
    "jobs",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("instance", sa.String(32), nullable=False),  # the bot process that follows it
    sa.Column("user_id", sa.BigInteger, nullable=False),
    sa.Column("guild_id", sa.BigInteger, nullable=True),
    sa.Column("channel_id", sa.BigInteger, nullable=True),
    sa.Column("application_id", sa.BigInteger, nullable=False),
    sa.Column("token", sa.Text, nullable=False),  # the interaction token: edits the job's message
    sa.Column("token_expires_at", sa.Float, nullable=False),  # epoch seconds
    sa.Column("state", sa.String(16), nullable=False),  # JobStatus
    sa.Column("params", sa.Text, nullable=False),  # StyleParams as JSON
    sa.Column("summary", sa.Text, nullable=False),  # the caption's description of the parameters
    sa.Column(
        "styles", sa.Integer, nullable=False
    ),  # how many style images (blobs job:<id>:style:<n>)
    sa.Column("outcome", sa.Text, nullable=True),  # the final message, kept until it is delivered
    sa.Column("delivered", sa.Boolean, nullable=False, default=False),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),  # failed deliveries so far
    sa.Column("message_id", sa.BigInteger, nullable=True),  # the message that ended the job
    # the member who uploaded the content (a button press's job keeps it): guild_policy.may_reveal
    sa.Column("content_owner", sa.BigInteger, nullable=True),
    # bytes the result may take (the channel's upload limit when the job started); None: unknown
    sa.Column("result_limit", sa.BigInteger, nullable=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)
instances = sa.Table(  # bot processes, each alive while it keeps writing seen_at
    "instances",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("seen_at", sa.Float, nullable=False),  # epoch seconds
    # where it runs: a process on the same host can tell at once that it is gone
    sa.Column("host", sa.String(255), nullable=True),
    sa.Column("pid", sa.Integer, nullable=True),
)
meta = sa.Table(  # small facts about the deployment, e.g. the hash of the synced command tree
    "meta",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)
blobs = sa.Table(
    "blobs",
    metadata,
    sa.Column("key", sa.String(128), primary_key=True),
    sa.Column("data", sa.LargeBinary, nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),  # epoch seconds
)

job_inputs = sa.Table(  # which images a job uses: content-addressed blobs, shared between jobs
    "job_inputs",
    metadata,
    sa.Column("job_id", sa.String(32), primary_key=True),
    sa.Column("position", sa.Integer, primary_key=True),  # 0: the content, then the styles
    sa.Column("blob", sa.String(128), nullable=False),  # blobs.key: img:<sha-256 of the bytes>
    sa.Column("expires_at", sa.Float, nullable=False),  # this job's use of it ends (Retry, buttons)
)

style_presets = sa.Table(  # named style images of a server (bot/presets.py); images in blobs
    "style_presets",
    metadata,
    sa.Column("guild_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("key", sa.String(64), primary_key=True),  # the name, compared without case
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("strength", sa.Float, nullable=True),
    sa.Column("preserve_colors", sa.String(16), nullable=True),
    sa.Column("created_by", sa.BigInteger, nullable=True),
    sa.Column("created_at", sa.Float, nullable=False),
)


def _add_columns(table: str, *columns: tuple[str, str]):
    """A migration step that adds (name, SQL type) columns to `table`, each unless it is there
    (a database made since has them: migration 2 makes the tables as they are now)."""

    def step(conn: sa.Connection) -> None:
        existing = {column["name"] for column in sa.inspect(conn).get_columns(table)}
        for name, kind in columns:
            if name not in existing:
                conn.execute(sa.text(f"ALTER TABLE {table} ADD COLUMN {name} {kind}"))

    return step


def _steps_300_to_schedule(conn: sa.Connection) -> None:
    """Servers' stored default steps of 300 (the engine's default until issue 29, written with
    every other change an admin made) become 0, the size's own schedule: such servers get the
    fast default. An admin who chose 300 on purpose sets it again (CHANGELOG says so)."""
    rows = conn.execute(sa.select(guild_settings.c.guild_id, guild_settings.c.settings)).all()
    for guild_id, text in rows:
        data = json.loads(text)
        if data.get("steps") == 300:
            data["steps"] = 0
            conn.execute(
                guild_settings.update()
                .where(guild_settings.c.guild_id == guild_id)
                .values(settings=json.dumps(data))
            )


# Each migration brings the schema from version i to i + 1. Never edit one that has shipped.
# A step is a DDL statement, or a function run with a connection.
MIGRATIONS: list[list[Any]] = [
    [sa.schema.CreateTable(guild_settings, if_not_exists=True)],
    [
        sa.schema.CreateTable(jobs, if_not_exists=True),
        sa.schema.CreateTable(blobs, if_not_exists=True),
        sa.schema.CreateTable(instances, if_not_exists=True),
        sa.schema.CreateIndex(
            sa.Index("jobs_open", jobs.c.delivered, jobs.c.state), if_not_exists=True
        ),
    ],
    [sa.schema.CreateTable(meta, if_not_exists=True)],
    [sa.schema.CreateTable(style_presets, if_not_exists=True)],
    [_add_columns("instances", ("host", "VARCHAR(255)"), ("pid", "INTEGER"))],  # where it runs
    [_add_columns("jobs", ("content_owner", "BIGINT"))],  # who uploaded the content
    [sa.schema.CreateTable(job_inputs, if_not_exists=True)],  # images stored once, shared
    [_add_columns("jobs", ("result_limit", "BIGINT"))],  # the result's size limit, for recovery
    [_steps_300_to_schedule],  # the fast default reaches servers that saved settings before it
]


class StorageError(Exception):
    """The database cannot be reached or used; the message says why in one line."""


class Database:
    """The engine and what every store shares: migrations and the atomic upsert."""

    def __init__(self, engine: AsyncEngine):
        self.engine = engine

    @classmethod
    async def open(cls, url: str) -> Database:
        """Connect and migrate; StorageError with one line that says what is wrong."""
        try:
            # hide_parameters: a failed statement's error text never lists its values (the
            # jobs table holds interaction tokens), so no log line or traceback can carry them
            engine = create_async_engine(url, hide_parameters=True)
        except (sa_exc.ArgumentError, sa_exc.NoSuchModuleError, ImportError, ValueError) as exc:
            raise StorageError(
                f"STYLEBOT_DATABASE_URL is not a usable database URL ({reason(exc)}); "
                "use sqlite+aiosqlite:///PATH or postgresql+asyncpg://USER@HOST/DB"
            ) from None
        database = cls(engine)
        try:
            await database.migrate()
        except (OSError, sa_exc.SQLAlchemyError, ConnectionError) as exc:
            await database.close()
            raise StorageError(
                f"the database at STYLEBOT_DATABASE_URL cannot be used: {reason(exc)}"
            ) from None
        except BaseException:
            await database.close()
            raise
        return database

    async def migrate(self) -> int:
        """Apply the missing migrations; return the schema version now."""
        async with self.engine.begin() as conn:
            await conn.run_sync(lambda c: schema_version.create(c, checkfirst=True))
            version = (
                await conn.execute(sa.select(sa.func.max(schema_version.c.version)))
            ).scalar() or 0
            for number, steps in enumerate(MIGRATIONS[version:], start=version + 1):
                for step in steps:
                    if isinstance(step, sa.schema.ExecutableDDLElement):
                        await conn.execute(step)
                    else:
                        await conn.run_sync(step)
                await conn.execute(schema_version.insert().values(version=number))
            return (
                await conn.execute(sa.select(sa.func.max(schema_version.c.version)))
            ).scalar() or 0

    async def close(self) -> None:
        await self.engine.dispose()

    def upsert(self, table: sa.Table, values: dict[str, Any], key: str, update: dict[str, Any]):
        """INSERT ... ON CONFLICT (key) DO UPDATE (with nothing to update: DO NOTHING): one
        atomic statement on SQLite and PostgreSQL."""
        insert = postgresql_insert if self.engine.dialect.name == "postgresql" else sqlite_insert
        statement = insert(table).values(**values)
        if not update:
            return statement.on_conflict_do_nothing(index_elements=[key])
        return statement.on_conflict_do_update(index_elements=[key], set_=update)


class Meta:
    """Small facts about the deployment, by key."""

    def __init__(self, db: Database):
        self.db = db

    async def get(self, key: str) -> str | None:
        async with self.db.engine.connect() as conn:
            return (await conn.execute(sa.select(meta.c.value).where(meta.c.key == key))).scalar()

    async def put(self, key: str, value: str) -> None:
        async with self.db.engine.begin() as conn:
            await conn.execute(
                self.db.upsert(meta, {"key": key, "value": value}, "key", {"value": value})
            )


def reason(exc: BaseException) -> str:
    """An exception as one line: its class and the first line of its message."""
    original = getattr(exc, "orig", None) or exc
    text = str(original).strip().splitlines()[0] if str(original).strip() else ""
    return f"{original.__class__.__name__}: {text}" if text else original.__class__.__name__


def check_database_url(url: str) -> None:
    """Refuse a wrong URL, or an SQLite file in a folder that does not exist, without creating anything."""
    try:
        parsed = sa.engine.make_url(url)
        parsed.port  # noqa: B018  (the port is parsed only when read: "abc" raises ValueError)
    except (sa_exc.ArgumentError, ValueError) as exc:
        raise StorageError(f"STYLEBOT_DATABASE_URL is not a database URL ({exc})") from None
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        folder = os.path.dirname(os.path.abspath(parsed.database))
        if not os.path.isdir(folder):
            raise StorageError(f"the folder of the SQLite database does not exist: {folder}")


def describe_database(url: str) -> str:
    """Where the jobs and settings live, for the line at start: an SQLite file by its absolute
    path (a relative one is the folder the bot starts in), and whether it is made now; any other
    database by its backend and host, never its password."""
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return f"database: {parsed.get_backend_name()} on {parsed.host or 'localhost'}"
    if parsed.database in (None, "", ":memory:"):
        return "database: SQLite in memory (nothing kept after the bot stops)"
    path = os.path.abspath(parsed.database)
    made = "exists" if os.path.exists(path) else "created now"
    return f"database: SQLite file {path} ({made})"
