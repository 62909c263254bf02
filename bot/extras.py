"""The optional parts of the install (pyproject.toml's extras): which one a role needs, and the
one line that says how to add it when it is missing. Never imports the parts themselves."""

from __future__ import annotations

import importlib.util

# the module a part provides -> the extra that installs it
EXTRA_OF = {
    "torch": "engine",
    "cv2": "engine",
    "celery": "celery",
    "redis": "celery",
    "asyncpg": "postgres",
}


def install_hint(extra: str) -> str:
    """How to add an extra: stylebot is installed from its checkout (it is not on the package
    index), so the command runs in that folder."""
    return f"pip install -e '.[{extra}]' in the stylebot folder (README, \"Installing\")"


class MissingExtra(RuntimeError):
    """An optional part of the install is needed and missing; the message says what to install."""

    def __init__(self, module: str, needed_for: str):
        extra = EXTRA_OF[module]
        super().__init__(
            f"{needed_for} needs {module}, which is not installed: {install_hint(extra)}"
        )
        self.module = module


def require(module: str, needed_for: str) -> None:
    """Raise MissingExtra unless `module` can be imported (it is found, not imported)."""
    if importlib.util.find_spec(module) is None:
        raise MissingExtra(module, needed_for)


def from_import_error(exc: ModuleNotFoundError, needed_for: str) -> MissingExtra | None:
    """The MissingExtra for an import that failed on an optional part; None for anything else."""
    top = (exc.name or "").split(".")[0]
    return MissingExtra(top, needed_for) if top in EXTRA_OF else None
