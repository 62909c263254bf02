"""Which device runs the engine, and how: the one place where CPU and GPU paths differ.

A `DevicePolicy` says everything that depends on the device: the memory format of the model,
autocast and its dtype, TF32, cuDNN autotuning, and how often the loop reads values back to the
host. `policy_for(device, precision)` picks it; tests build any policy by hand (for example the
CUDA one on the CPU), so every path that differs by device runs in CI without a GPU.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import torch

from bot.engine.params import PRECISIONS

ModelT = TypeVar("ModelT", bound=torch.nn.Module)


class DeviceError(ValueError):
    """The device asked for does not exist here."""


def mps_available() -> bool:
    return bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()


def best_device() -> torch.device:
    """CUDA if present, else Apple's MPS, else the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    if mps_available():
        return torch.device("mps")
    return torch.device("cpu")


def parse_device(name: str | None) -> torch.device:
    """`auto`/None picks the best device; anything else must exist here."""
    if not name or name == "auto":
        return best_device()
    try:
        device = torch.device(name)
    except RuntimeError:
        raise DeviceError(f"unknown device {name!r}; use auto, cpu, cuda, cuda:N or mps") from None
    if device.type not in ("cpu", "cuda", "mps"):
        raise DeviceError(f"unsupported device {name!r}; use auto, cpu, cuda, cuda:N or mps")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError("CUDA was asked for but no CUDA GPU is available")
    if (
        device.type == "cuda"
        and device.index is not None
        and device.index >= torch.cuda.device_count()
    ):
        raise DeviceError(
            f"no CUDA device {device.index}; this machine has {torch.cuda.device_count()}"
        )
    if device.type == "mps" and not mps_available():
        raise DeviceError("MPS was asked for but is not available")
    return device


def detect_devices() -> tuple[str, ...]:
    """Every CUDA GPU, else MPS, else one CPU device (the worker pool runs one set per device)."""
    if torch.cuda.is_available():
        return tuple(f"cuda:{i}" for i in range(torch.cuda.device_count()))
    if mps_available():
        return ("mps",)
    return ("cpu",)


def resolve_precision(
    device: torch.device, precision: str, model: torch.nn.Module, cache_file: Path | None
) -> tuple[str, str]:
    """The precision a run gets, and why (for the header, the ready line, bench): `auto` on a
    CPU is measured on this machine (bot/engine/cpu_precision.py, kept in `cache_file`), TF32 on
    CUDA, fp32 elsewhere; anything else is what was asked for."""
    if precision != "auto":
        return precision, "asked for"
    if device.type == "cuda":
        return "tf32", "auto on CUDA"
    if device.type == "cpu":
        from bot.engine.cpu_precision import choose

        choice = choose(model, cache_file)
        return choice.precision, choice.why
    return "fp32", f"auto on {device.type}"


@dataclass(frozen=True, kw_only=True)
class DevicePolicy:
    """How the engine runs on one device."""

    device: torch.device
    channels_last: bool = False  # the model's weights (and so its activations) in NHWC
    autocast_dtype: torch.dtype | None = None  # run VGG-19 under autocast to this dtype
    tf32: bool = False  # CUDA matmul and cuDNN convolutions may use TF32
    cudnn_benchmark: bool = False  # autotune per shape: slow first step at every new shape
    sync_interval: float = 0.0  # seconds between reads of the loss to the host; 0 = every step

    @property
    def precision(self) -> str:
        if self.autocast_dtype == torch.bfloat16:
            return "bf16"
        return "tf32" if self.tf32 else "fp32"

    def describe(self) -> str:
        layout = "channels_last" if self.channels_last else "contiguous"
        return f"{self.device.type} {self.precision} {layout}"

    def prepare_model(self, model: ModelT) -> ModelT:
        """The model in this policy's memory format, whatever format an earlier policy left it in
        (the model is shared: a worker's, or a test session's)."""
        layout = torch.channels_last if self.channels_last else torch.contiguous_format
        return model.to(memory_format=layout)

    @contextlib.contextmanager
    def applied(self) -> Iterator[None]:
        """Autocast and the backend flags for the duration of a run; the previous flags come back."""
        saved = (
            torch.backends.cuda.matmul.allow_tf32,
            torch.backends.cudnn.allow_tf32,
            torch.backends.cudnn.benchmark,
        )
        if self.device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = self.tf32
            torch.backends.cudnn.allow_tf32 = self.tf32
            torch.backends.cudnn.benchmark = self.cudnn_benchmark
        try:
            with torch.autocast(
                self.device.type,
                dtype=self.autocast_dtype or torch.float32,
                enabled=self.autocast_dtype is not None,
            ):
                yield
        finally:
            (
                torch.backends.cuda.matmul.allow_tf32,
                torch.backends.cudnn.allow_tf32,
                torch.backends.cudnn.benchmark,
            ) = saved


def policy_for(device: torch.device | str, precision: str = "auto") -> DevicePolicy:
    """The policy a run gets on `device`.

    CUDA: channels_last, TF32 by default (`auto`), bf16 autocast on request, the loss read back
    every 0.2 s so the host queues steps ahead of the GPU. cuDNN autotuning stays off: members
    send every aspect ratio, and autotuning makes the first step at each new shape slow.
    CPU: fp32 contiguous, or bf16 autocast with channels_last. `auto` here is fp32: a run that
    wants the measured choice resolves it first (`resolve_precision`). MPS: fp32.
    """
    if precision not in PRECISIONS:
        raise DeviceError(f"precision must be one of {', '.join(PRECISIONS)}")
    device = torch.device(device)
    if device.type == "cuda":
        return DevicePolicy(
            device=device,
            channels_last=True,
            tf32=precision in ("auto", "tf32", "bf16"),
            autocast_dtype=torch.bfloat16 if precision == "bf16" else None,
            sync_interval=0.2,
        )
    if device.type == "cpu":
        bf16 = precision == "bf16"
        return DevicePolicy(
            device=device, channels_last=bf16, autocast_dtype=torch.bfloat16 if bf16 else None
        )
    return DevicePolicy(device=device)


MEMORY_SHARE = 0.8  # of what is free: the rest is left to the allocator's fragmentation and peers


def machine_memory(device: torch.device) -> int:
    """Bytes jobs may take on this machine: 80 % of the GPU memory free now (the model already
    loaded), or 80 % of the host memory available now."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free * MEMORY_SHARE)
    with open("/proc/meminfo") as meminfo:
        fields = dict(line.split(":", 1) for line in meminfo)
    return int(int(fields["MemAvailable"].split()[0]) * 1024 * MEMORY_SHARE)


def memory_budget(device: torch.device, limit: int | None = None) -> int | None:
    """Bytes a job may take on `device`: on CUDA what `machine_memory` allows, at most `limit`;
    elsewhere `limit` (None: no limit)."""
    if device.type != "cuda":
        return limit
    room = machine_memory(device)
    return min(room, limit) if limit else room
