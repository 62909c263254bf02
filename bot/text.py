"""Durations and text progress bars, shared by the terminal and the Discord messages."""

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


def bar(step: int, total: int, width: int, *, full: str = "█", empty: str = "░") -> str:
    """A bar of `width` characters, `step / total` of them full."""
    filled = width * step // max(1, total)
    return full * filled + empty * (width - filled)
