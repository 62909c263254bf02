"""One validated settings object from the environment (prefix STYLEBOT_) and an optional .env file."""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Literal, TypeVar

from dotenv import dotenv_values
from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from bot.engine.params import WEIGHTS_ENV, ImageLimits
from bot.protocol.celery_config import CeleryConfig

S = TypeVar("S", bound="CommonSettings")


class ConfigError(Exception):
    """Settings are missing or invalid; the message names each problem (never a secret's value)."""


class CommonSettings(BaseSettings):
    """What the bot and a `stylebot worker` on another host both read."""

    model_config = SettingsConfigDict(
        env_prefix="STYLEBOT_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    # as for the engine (bot/engine/weights.py): unset is the bundled original VGG-19;
    # `torchvision`, a state-dict file, caffe:FILE; "random" for tests
    vgg19_weights: str | None = None
    job_time_limit: float = Field(900.0, gt=0)
    max_attachment_bytes: int = Field(25 * 1024 * 1024, ge=1024)
    max_attachment_pixels: int = Field(40_000_000, ge=1024)
    # a moving picture's frames x canvas pixels read at most (longer ones are cut, with a note)
    max_clip_pixels: int = Field(1_000_000_000, ge=1024)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"  # in any case
    # the workers' precision: auto is TF32 on CUDA and, on a CPU, bf16 where a short measurement
    # on this machine finds it clearly faster (kept in precision_cache_file()), else fp32
    precision: Literal["auto", "fp32", "tf32", "bf16"] = "auto"
    log_format: Literal["text", "json"] = "text"  # json: one object a line, for log collectors
    # GB (2^30 bytes) the jobs of one worker may use; a larger job is refused with the size
    # that fits. Default: 80 % of the GPU memory free after loading (no limit on the CPU)
    gpu_memory_limit: float | None = Field(None, gt=0)
    # a worker that batches paints each still at its shape bucket (bot/media/buckets.py), so
    # that more jobs share a pass; off: measured 4-20 % further from the style on five of six
    # pairs (docs/benchmarks.md), pending the GPU's figures of what it gains
    shape_buckets: bool = False
    # where jobs run: "local" (worker processes of the bot) or "celery" (`stylebot worker`s)
    executor: Literal["local", "celery"] = "local"
    redis_url: str = "redis://127.0.0.1:6379/0"  # celery: image store, progress, results
    broker_url: str | None = None  # celery: the broker (redis:// or amqp://); default: redis_url
    celery_queue: str = "stylebot"  # celery: the queue (one per deployment sharing a broker)
    celery_max_attempts: int = Field(3, ge=1)  # deliveries of a job before it is failed
    # celery: seconds before the Redis broker hands an unacknowledged job to another worker;
    # default: the time limit plus ten minutes (it must be above the longest job)
    celery_visibility_timeout: float | None = Field(None, gt=0)
    celery_restore_interval: float = Field(
        5.0, gt=0
    )  # celery + Redis broker: seconds between scans for jobs of dead workers
    blob_ttl: float = Field(
        24 * 3600, gt=0
    )  # celery: seconds job images and results are kept in Redis
    worker_max_memory_mb: int = Field(
        16384, ge=256
    )  # celery: a worker process above this resident size is replaced after its job

    @property
    def image_limits(self) -> ImageLimits:
        return ImageLimits(
            max_bytes=self.max_attachment_bytes,
            max_pixels=self.max_attachment_pixels,
            max_clip_pixels=max(self.max_clip_pixels, self.max_attachment_pixels),
        )

    @property
    def memory_limit_bytes(self) -> int | None:
        return int(self.gpu_memory_limit * 2**30) if self.gpu_memory_limit else None

    @property
    def celery(self) -> CeleryConfig:
        return CeleryConfig(
            redis_url=self.redis_url,
            broker_url=self.broker_url or self.redis_url,
            time_limit=self.job_time_limit,
            max_attempts=self.celery_max_attempts,
            visibility_timeout=self.celery_visibility_timeout or self.job_time_limit + 600,
            restore_interval=self.celery_restore_interval,
            blob_ttl=self.blob_ttl,
            max_memory_mb=self.worker_max_memory_mb,
            queue=self.celery_queue,
        )

    @field_validator("log_level", mode="before")
    @classmethod
    def _level_in_any_case(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value


class WorkerSettings(CommonSettings):
    """`stylebot worker`: no Discord token, no database."""

    # serve Prometheus metrics of this worker's device (bot/metrics.py) here; off if unset
    metrics_port: int | None = Field(None, ge=1, le=65535)
    metrics_host: str = "127.0.0.1"  # 0.0.0.0 in a container, so that Prometheus can reach it


class Settings(CommonSettings):
    discord_token: SecretStr = Field(
        description="the bot's token from the Discord developer portal"
    )
    database_url: str = "sqlite+aiosqlite:///stylebot.db"
    dev_guild: int | None = None  # sync commands to this server only (instant), instead of globally
    discord_api_base: str | None = (
        None  # e.g. http://127.0.0.1:8080/api/v10 (a proxy, or a fake Discord in tests)
    )
    discord_gateway_url: str | None = None  # e.g. ws://127.0.0.1:8080/gateway
    devices: str | None = None  # comma-separated worker devices (cpu, cuda:0, ...); default: auto
    workers_per_device: int = Field(1, ge=1, le=16)
    # torch threads of each local CPU worker; default: the cores shared out among CPU workers
    worker_threads: int | None = Field(None, ge=1, le=256)
    # jobs one local worker steps together (one VGG-19 pass per shape); default: 16 on CUDA, else 1
    batch_size: int | None = Field(None, ge=1, le=256)
    # how local workers start: spawn (each imports torch itself, about 3 s of a core) or
    # forkserver (a server imports it once and forks each worker from it; CUDA stays untouched
    # until a worker runs); the test suite starts its bots' workers so
    worker_start: Literal["spawn", "forkserver"] = "spawn"
    max_queued: int = Field(50, ge=1)
    per_user_jobs: int = Field(3, ge=1)
    progress_edit_interval: float = Field(2.0, ge=0.2)  # seconds between edits of a job's message
    shutdown_grace: float = Field(
        30.0, ge=0
    )  # on SIGTERM, how long running jobs may finish before they are cancelled
    interaction_ttl: float = Field(
        14 * 60, ge=0
    )  # after this, results go to the channel (tokens last 15 min)
    # attachments are fetched from these hosts only (Discord's CDN); anything else is refused
    attachment_hosts: str = "cdn.discordapp.com,media.discordapp.net"
    download_timeout: float = Field(30.0, gt=0)  # seconds to fetch one attachment
    input_ttl: float = Field(24 * 3600, ge=0)  # how long a job's images are kept (for Retry)
    max_presets: int = Field(25, ge=0, le=25)  # style presets per server (autocomplete shows 25)
    delivery_retry_interval: float = Field(
        60.0, gt=0
    )  # seconds between tries of undelivered results
    settings_cache_ttl: float = Field(
        5.0, ge=0
    )  # seconds a process trusts its copy of a server's settings
    health_port: int | None = Field(
        None, ge=1, le=65535
    )  # serve /healthz and /metrics here; off if unset
    health_host: str = (
        "127.0.0.1"  # 0.0.0.0 in a container, so that Docker and Prometheus can reach it
    )
    instance_timeout: float = Field(
        90.0, gt=0
    )  # a bot process silent this long is dead: its jobs are recovered
    # seconds a server's settings, presets and jobs are kept after the bot left it (30 days)
    guild_data_grace: float = Field(30 * 24 * 3600, ge=0)

    @field_validator("discord_token")
    @classmethod
    def _token_not_blank(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().strip():
            raise ValueError("must not be empty")
        return value

    @property
    def attachment_host_set(self) -> frozenset[str]:
        return frozenset(h.strip().lower() for h in self.attachment_hosts.split(",") if h.strip())

    @property
    def device_list(self) -> tuple[str, ...] | None:
        return (
            tuple(d.strip() for d in self.devices.split(",") if d.strip()) if self.devices else None
        )


# STYLEBOT_* variables that are not settings: the test suite's and .ci/run's own
NOT_SETTINGS = frozenset({"STYLEBOT_TEST_POSTGRES_URL", "STYLEBOT_VENV"})


def precision_cache_file() -> Path:
    """Where a CPU's measured precision is kept: $XDG_CACHE_HOME/stylebot, else ~/.cache/stylebot."""
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(root) / "stylebot" / "cpu-precision.json"


def health_port_from_environment() -> int | None:
    """$STYLEBOT_HEALTH_PORT, for `stylebot health` (which reads no other setting); None if unset
    or not a number."""
    value = os.environ.get("STYLEBOT_HEALTH_PORT", "").strip()
    return int(value) if value.isdigit() else None


def weights_from_environment() -> str | None:
    """$STYLEBOT_VGG19_WEIGHTS, for the command line's engine commands (the bot and `stylebot
    worker` read it as their settings' `vgg19_weights`): the engine reads no environment."""
    return os.environ.get(WEIGHTS_ENV) or None


def unknown_variables(
    environ: Mapping[str, str] | None = None, cls: type[BaseSettings] | None = None
) -> list[str]:
    """One warning per STYLEBOT_* name in the environment or .env that no setting of `cls` (the
    bot's Settings, or WorkerSettings for `stylebot worker`) reads (a typo would otherwise be
    ignored in silence), naming the closest known one."""
    names = set(os.environ if environ is None else environ)
    if environ is None and os.path.isfile(".env"):
        names |= set(dotenv_values(".env"))
    fields = (cls or Settings).model_fields
    known = {"STYLEBOT_" + name.upper() for name in fields} | NOT_SETTINGS
    warnings = []
    for name in sorted(n for n in names if n.upper().startswith("STYLEBOT_")):
        if name.upper() in known:
            continue
        # compared without the common prefix, which would make every name look alike
        close = difflib.get_close_matches(name.upper()[9:], [k[9:] for k in known], n=1, cutoff=0.7)
        hint = f"; did you mean STYLEBOT_{close[0]}?" if close else ' (README, "Settings")'
        warnings.append(f"{name} is not a setting and is ignored{hint}")
    return warnings


def load_settings(cls: type[S] = Settings, **overrides) -> S:
    """Settings from the environment, or ConfigError with one line per problem."""
    try:
        return cls(**overrides)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            name = "STYLEBOT_" + "_".join(str(p) for p in error["loc"]).upper()
            if error["type"] == "missing":
                problems.append(f"{name} is not set")
            else:
                problems.append(
                    f"{name}: {error['msg']}"
                )  # pydantic never echoes a SecretStr's value here
        # a misspelt name is often why a setting is missing: say so here too
        problems += unknown_variables(cls=cls)
        raise ConfigError("invalid settings: " + "; ".join(problems)) from None


def env_file_used() -> str:
    """Which .env the settings were read from, for the line at start: the one in the folder the
    bot starts in, or none (the environment alone)."""
    found = os.path.abspath(".env")
    if os.path.isfile(found):
        return f"the environment and {found}"
    return f"the environment (no .env in {os.getcwd()})"
