"""Device choice and mixed precision, shared by training and inference."""

from __future__ import annotations

import contextlib
import functools
from pathlib import Path

import torch

from phonetune.errors import ConfigError


def resolve_device(name: str | torch.device, setting: str = "[train] device") -> torch.device:
    """``auto`` -> CUDA when present, else CPU; an explicit CUDA device must exist (ConfigError naming ``setting``,
    the option the user set, instead of torch's "Torch not compiled with CUDA enabled" at the first tensor)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"{setting} must be available, but device={str(name)!r} and this machine has no CUDA")
    return device


# CPU flags of the instructions that multiply bfloat16 in hardware (AVX512-BF16 on Zen 4 and Cooper Lake, AMX on
# Sapphire Rapids). Without them oneDNN emulates bfloat16 and a step is slower than in float32.
NATIVE_BF16_CPU_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


@functools.cache
def cpu_has_native_bf16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether this CPU multiplies bfloat16 in hardware, read from the kernel's flags (False where there are none)."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return False
    for line in text.splitlines():
        if line.startswith("flags"):
            return bool(NATIVE_BF16_CPU_FLAGS & set(line.partition(":")[2].split()))
    return False


# On a CPU autocast casts the weights at every step, which costs about what a small model's matmuls save, and a
# small batch gives the matmuls too little to save: these two bounds are where bf16 began to pay on the 2-core
# development machine (BENCHMARKS.md, "Accuracy at an equal budget, on two corpora, with bf16 on the CPU").
CPU_BF16_MIN_PARAMS = 30_000
CPU_BF16_MIN_BATCH = 64


def bf16_is_native(device: torch.device) -> bool:
    """Whether the device multiplies bfloat16 in hardware: every CUDA device this project runs on, and CPUs with
    bfloat16 instructions."""
    return device.type == "cuda" or (device.type == "cpu" and cpu_has_native_bf16())


def bf16_pays(device: torch.device, params: int, batch_size: int) -> bool:
    """Where bfloat16 autocast makes a ``params``-parameter model's steps at ``batch_size`` faster: on CUDA always,
    on a CPU with bfloat16 instructions once the matmuls outweigh the casts."""
    if device.type == "cpu":
        return cpu_has_native_bf16() and params >= CPU_BF16_MIN_PARAMS and batch_size >= CPU_BF16_MIN_BATCH
    return bf16_is_native(device)


def autocast_context(device: torch.device, bf16: bool):
    """bfloat16 autocast when asked (callers ask where ``bf16_pays``) and the device computes it natively; float32 (a
    no-op context) otherwise. Either way a run is deterministic on CPU: a resumed run repeats an uninterrupted one bit
    for bit."""
    if bf16 and bf16_is_native(device):
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
