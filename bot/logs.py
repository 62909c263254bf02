"""Logging helpers: no interaction token (nor any other `token` field) reaches a log, at any level.

discord.py logs every REST request at DEBUG with its URL, and interaction URLs carry the token
(`/interactions/<id>/<token>/callback`, `/webhooks/<app>/<token>/...`); the gateway logs every
event at DEBUG, and INTERACTION_CREATE carries `'token': '...'`.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from dataclasses import dataclass
from typing import TextIO

_PATTERNS = (
    (re.compile(r"(/(?:interactions|webhooks)/\d+/)[^/\s?'\"]+"), r"\1<token>"),
    (re.compile(r"""(['"]token['"]\s*:\s*['"])[^'"]+(['"])"""), r"\1<redacted>\2"),
    # an interaction token wherever it stands (a database error's parameters, a repr):
    # Discord's are base64 of "interaction:<id>:..."
    (re.compile(r"aW50ZXJhY3Rpb246[A-Za-z0-9_\-]+"), "<token>"),
    # a bot token: base64 of the bot's id, a timestamp and an HMAC, dot-separated
    (re.compile(r"\b[MNO][A-Za-z\d_-]{23,27}\.[\w-]{6}\.[\w-]{27,40}\b"), "<bot-token>"),
)
# the loggers that write request URLs or gateway payloads
DISCORD_LOGGERS = (
    "discord.http",
    "discord.webhook.async_",
    "discord.gateway",
    "discord.client",
    "discord.state",
    "discord.shard",
    "discord.interactions",
    "discord.app_commands.tree",
)


def redact(text: str) -> str:
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactTokens(logging.Filter):
    """Formats the record's message once, with every token replaced."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


_FILTER = RedactTokens()
QUIET_LOGGERS = ("aiosqlite",)


def install_redaction() -> None:
    """Put the filter on discord.py's loggers (filters on a logger see that logger's own records,
    before any handler, whoever configured the handlers). Safe to call twice."""
    for name in DISCORD_LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
    # aiosqlite logs every statement with its parameters at DEBUG: the jobs table's token among them
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.INFO)


class _Redacted(logging.Formatter):
    """Whatever another formatter writes (the message, a traceback, an exception's text, a stack),
    with every token replaced: the last step before a line leaves the process."""

    def __init__(self, inner: logging.Formatter):
        super().__init__()
        self.inner = inner

    def format(self, record: logging.LogRecord) -> str:
        return redact(self.inner.format(record))


class _JsonFormatter(logging.Formatter):
    """One JSON object a line, for log collectors."""

    def __init__(self, who: str):
        super().__init__()
        self.who = who

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record),
            "process": self.who,
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


_COLOURS = {
    "DEBUG": "\x1b[2m",
    "INFO": "",
    "WARNING": "\x1b[33m",
    "ERROR": "\x1b[31m",
    "CRITICAL": "\x1b[1;31m",
}


class _ColourFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        colour = _COLOURS.get(record.levelname, "")
        return f"{colour}{text}\x1b[0m" if colour else text


@dataclass(frozen=True)
class LogConfig:
    """How a process logs; handed to worker processes so that they log the same way."""

    level: int = logging.INFO
    json: bool = False
    who: str = "stylebot"  # the process: "stylebot", "worker cpu#0", ...


def configure_logging(config: LogConfig, stream: TextIO | None = None) -> None:
    """The one place logging is set up: one handler on the root logger, one format, colour only on
    a terminal (never in a file or Docker's log), JSON on request, tokens redacted."""
    target: TextIO = stream or sys.stderr
    handler = logging.StreamHandler(target)
    formatter: logging.Formatter
    if config.json:
        formatter = _JsonFormatter(config.who)
    else:
        fmt = f"%(asctime)s {config.who} %(levelname)s %(name)s: %(message)s"
        colour = target.isatty() and not os.environ.get("NO_COLOR")
        formatter = _ColourFormatter(fmt) if colour else logging.Formatter(fmt)
    handler.setFormatter(_Redacted(formatter))
    handler.addFilter(_FILTER)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(config.level)
    install_redaction()
