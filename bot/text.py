"""Durations, text progress bars and Discord's length limits, shared by the terminal and the
Discord messages."""

from __future__ import annotations


def format_seconds(seconds: float | None) -> str:
    """`mm:ss`, or `h:mm:ss` from an hour up; `--:--` when unknown."""
    if seconds is None:
        return "--:--"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return (
        f"{hours}:{rest // 60:02d}:{rest % 60:02d}"
        if hours
        else f"{rest // 60:02d}:{rest % 60:02d}"
    )


def bar(step: float, total: float, width: int, *, full: str = "█", empty: str = "░") -> str:
    """A bar of `width` characters, `step / total` of them full."""
    filled = min(width, int(width * step / total)) if total > 0 else 0
    return full * filled + empty * (width - filled)


MESSAGE_LIMIT = 2000  # characters of a Discord message's content


def clip(text: str, limit: int = MESSAGE_LIMIT) -> str:
    """`text`, cut with "…" if it is longer than `limit` characters."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def fit_lines(head: str, lines: list[str], limit: int = MESSAGE_LIMIT) -> str:
    """`head` and as many of `lines` as fit in `limit` characters, one a line; the rest counted
    in a last line ("… and 3 more")."""
    text = head
    for shown, line in enumerate(lines):
        rest = len(lines) - shown - 1
        tail = f"\n… and {rest} more" if rest else ""
        if len(text) + 1 + len(line) + len(tail) > limit:
            return clip(text + f"\n… and {len(lines) - shown} more", limit)
        text += "\n" + line
    return clip(text, limit)


def join_within(items: list[str], limit: int, sep: str = ", ") -> str:
    """`items` joined by `sep`, as many as fit in `limit` characters with "… and N more" for the
    rest (never longer than `limit`, however many and however long the items are)."""
    text = ""
    for shown, item in enumerate(items):
        rest = len(items) - shown - 1
        tail = f"{sep}… and {rest} more" if rest else ""
        candidate = f"{text}{sep}{item}" if text else item
        if len(candidate) + len(tail) > limit:
            return clip(f"{text}{sep if text else ''}… and {len(items) - shown} more", limit)
        text = candidate
    return clip(text, limit)
