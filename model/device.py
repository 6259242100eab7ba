"""Device choice and mixed precision, shared by training and inference."""

from __future__ import annotations

import contextlib

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


def autocast_context(device: torch.device, bf16: bool):
    """bfloat16 autocast on CUDA when asked; float32 (a no-op context) on CPU, which keeps runs bitwise repeatable."""
    if bf16 and device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()
