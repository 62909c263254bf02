"""The house's boundaries, read from the imports of each module (docs/layout.md): a package may
use only the packages beneath it."""

import ast
import pathlib

import pytest

import bot

ROOT = pathlib.Path(bot.__file__).parent

# package -> what none of its modules may import
FORBIDDEN = {
    "media": (
        "torch",
        "discord",
        "asyncio",
        "bot.engine.vgg",
        "bot.jobs",
        "bot.cogs",
        "bot.executor",
    ),
    "jobs": ("torch", "bot.cogs", "bot.engine.painting", "bot.worker", "bot.app"),
    "executor": ("torch", "discord", "bot.worker", "bot.jobs", "bot.cogs"),
    "worker": ("discord", "bot.executor", "bot.jobs", "bot.cogs"),
    "engine": ("discord", "asyncio", "bot.executor", "bot.jobs", "bot.cogs"),
    "protocol": ("torch", "discord", "bot.executor", "bot.worker", "bot.jobs", "bot.cogs"),
    "storage": ("torch", "discord", "bot.jobs", "bot.cogs"),
}


def imports_of(path: pathlib.Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_a_package_imports_nothing_above_it(package):
    broken = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for name in sorted(imports_of(path)):
            for banned in FORBIDDEN[package]:
                if name == banned or name.startswith(banned + "."):
                    broken.append(f"{path.relative_to(ROOT.parent)} imports {name}")
    assert broken == []


def test_cogs_utils_is_gone():
    """The job's life is bot/jobs, Discord-only helpers bot/cogs/ui (issue 44)."""
    assert not (ROOT / "cogs" / "utils").exists()
