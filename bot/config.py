"""One validated settings object from the environment (prefix STYLEBOT_) and an optional .env file."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class ConfigError(Exception):
    """Settings are missing or invalid; the message names each problem (never a secret's value)."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="STYLEBOT_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    discord_token: SecretStr = Field(
        description="the bot's token from the Discord developer portal"
    )
    database_url: str = "sqlite+aiosqlite:///stylebot.db"
    vgg19_weights: str | None = (
        None  # as for the engine: a file, else the torch hub cache; "random" for tests
    )
    dev_guild: int | None = None  # sync commands to this server only (instant), instead of globally
    discord_api_base: str | None = (
        None  # e.g. http://127.0.0.1:8080/api/v10 (a proxy, or a fake Discord in tests)
    )
    discord_gateway_url: str | None = None  # e.g. ws://127.0.0.1:8080/gateway
    devices: str | None = None  # comma-separated worker devices (cpu, cuda:0, ...); default: auto
    workers_per_device: int = Field(1, ge=1, le=16)
    max_queued: int = Field(50, ge=1)
    per_user_jobs: int = Field(3, ge=1)
    job_time_limit: float = Field(900.0, gt=0)
    progress_edit_interval: float = Field(2.0, ge=0.2)  # seconds between edits of a job's message
    shutdown_grace: float = Field(
        30.0, ge=0
    )  # on SIGTERM, how long running jobs may finish before they are cancelled
    interaction_ttl: float = Field(
        14 * 60, ge=0
    )  # after this, results go to the channel (tokens last 15 min)
    max_attachment_bytes: int = Field(25 * 1024 * 1024, ge=1024)
    max_attachment_pixels: int = Field(40_000_000, ge=1024)
    # attachments are fetched from these hosts only (Discord's CDN); anything else is refused
    attachment_hosts: str = "cdn.discordapp.com,media.discordapp.net"
    download_timeout: float = Field(30.0, gt=0)  # seconds to fetch one attachment
    input_ttl: float = Field(24 * 3600, ge=0)  # how long a job's images are kept (for Retry)
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
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["text", "json"] = "text"  # json: one object a line, for log collectors
    instance_timeout: float = Field(
        90.0, gt=0
    )  # a bot process silent this long is dead: its jobs are recovered

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
    def image_limits(self):
        from bot.engine.params import ImageLimits

        return ImageLimits(
            max_bytes=self.max_attachment_bytes, max_pixels=self.max_attachment_pixels
        )

    @property
    def device_list(self) -> tuple[str, ...] | None:
        return (
            tuple(d.strip() for d in self.devices.split(",") if d.strip()) if self.devices else None
        )


def load_settings(**overrides) -> Settings:
    """Settings from the environment, or ConfigError with one line per problem."""
    try:
        return Settings(**overrides)
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
        raise ConfigError("invalid settings: " + "; ".join(problems)) from None
