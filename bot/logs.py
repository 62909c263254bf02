"""Logging helpers: no interaction token (nor any other `token` field) reaches a log, at any level.

discord.py logs every REST request at DEBUG with its URL, and interaction URLs carry the token
(`/interactions/<id>/<token>/callback`, `/webhooks/<app>/<token>/...`); the gateway logs every
event at DEBUG, and INTERACTION_CREATE carries `'token': '...'`.
"""

from __future__ import annotations

import logging
import re

_PATTERNS = (
    (re.compile(r"(/(?:interactions|webhooks)/\d+/)[^/\s?'\"]+"), r"\1<token>"),
    (re.compile(r"""(['"]token['"]\s*:\s*['"])[^'"]+(['"])"""), r"\1<redacted>\2"),
)
# the loggers that write request URLs or gateway payloads
DISCORD_LOGGERS = ("discord.http", "discord.webhook.async_", "discord.gateway", "discord.client", "discord.state",
                   "discord.shard", "discord.interactions", "discord.app_commands.tree")


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
