"""How a local worker process starts: by the name of its entry function, imported in the child.

The bot's side (bot/executor/pool.py) names the entry and never imports bot/worker/ (which
imports torch at its top): with `spawn`, the child unpickles `run_entry` from this module, then
imports the worker's module itself.
"""

from __future__ import annotations

import importlib

LOCAL_WORKER = "bot.worker.process:worker_main"  # a local pool's worker: a pipe loop over a Batcher


def run_entry(entry: str, *args: object) -> None:
    """Call the function `entry` ("module:function") with `args`, in this (spawned) process."""
    from bot.threads import quiet_openmp

    quiet_openmp()  # before the worker's module imports torch
    module, _, function = entry.partition(":")
    getattr(importlib.import_module(module), function)(*args)
