"""``measure_speed``: time real training steps on this machine and fit ``model.speed.Speed`` through them.

The steps are what training does (AdamW, batch norm, GELU, cross-entropy; bf16 autocast on CUDA) on random windows,
for two model sizes: a small one, dominated by the per-frame cost, and a larger one, dominated by the per-parameter
cost. About ``2 * seconds`` in all.

Example::

    speed = measure_speed(device="cpu")
    speed.epoch_seconds(1_000_000, train_frames=977_855, dev_frames=146_806)
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F

from phonetune.model.budget import count_params
from phonetune.model.config import ModelConfig, ModelIO
from phonetune.model.device import autocast_context, resolve_device
from phonetune.model.network import build_model
from phonetune.model.speed import Speed

# Two probe models: one dominated by the per-frame cost, one by the per-parameter cost.
PROBES = (
    (ModelConfig(hidden_layers=1, base_width=64, activation="gelu", batchnorm="after"), ModelIO(41 * 28, 40)),
    (ModelConfig(hidden_layers=3, base_width=512, activation="gelu", batchnorm="after"), ModelIO(51 * 28, 40)),
)


def _seconds_per_frame(config: ModelConfig, io: ModelIO, batch_size: int, device: torch.device, seconds: float) -> float:
    model = build_model(config, io).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    generator = torch.Generator(device="cpu").manual_seed(0)
    x = torch.randn(batch_size, io.input_dim, generator=generator).to(device)
    y = torch.randint(0, io.num_classes, (batch_size,), generator=generator).to(device)

    def step() -> None:
        with autocast_context(device, True):
            loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(3):  # warm-up: allocator, kernels, caches
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    steps, started = 0, time.perf_counter()
    while True:
        step()
        steps += 1
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        elapsed = time.perf_counter() - started
        if elapsed >= seconds and steps >= 3:
            return elapsed / (steps * batch_size)


def measure_speed(device: str = "auto", batch_size: int = 1024, seconds: float = 1.5) -> Speed:
    """Time both probes for about ``seconds`` each and fit the line through them (see the module docstring)."""
    target = resolve_device(device)
    (small, small_io), (large, large_io) = PROBES
    small_params, large_params = count_params(small, small_io), count_params(large, large_io)
    small_time = _seconds_per_frame(small, small_io, batch_size, target, seconds)
    large_time = _seconds_per_frame(large, large_io, batch_size, target, seconds)
    # A noisy probe can invert the two; a model is never cheaper per frame than a smaller one.
    per_param = max((large_time - small_time) / (large_params - small_params), large_time / large_params / 10)
    fixed = max(small_time - per_param * small_params, 0.0)
    return Speed(fixed=fixed, per_param=per_param, device=str(target))
