"""How fast this machine trains MLPs: seconds per training frame as a line in the parameter count, measured.

A training step of an MLP costs about 6 multiply-adds per parameter per frame (forward, two backward products), plus
a per-frame cost that does not grow with the model (gathering windows, the loss, the optimizer's fixed overheads).
``measure_speed`` times real training steps (AdamW, batch norm, GELU) of two model sizes on random windows and fits
``seconds_per_frame = fixed + per_param * params`` through them, so a planner can price a full-data run of any
candidate before it starts. On CUDA the steps run under bf16 autocast as in training.

Example::

    speed = measure_speed(device="cpu")
    speed.frames_per_s(1_000_000)          # training frames per second of a 1M-parameter MLP here
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from phonetune.model.budget import count_params
from phonetune.model.config import ModelConfig, ModelIO
from phonetune.model.device import autocast_context, resolve_device
from phonetune.model.network import build_model

# Evaluating a frame (forward only) costs about a third of training it (forward + backward).
EVAL_COST_FRACTION = 1 / 3
# Two probe models: one dominated by the per-frame cost, one by the per-parameter cost.
PROBES = (
    (ModelConfig(hidden_layers=1, base_width=64, activation="gelu", batchnorm="after"), ModelIO(41 * 28, 40)),
    (ModelConfig(hidden_layers=3, base_width=512, activation="gelu", batchnorm="after"), ModelIO(51 * 28, 40)),
)


@dataclass(frozen=True)
class Speed:
    """``seconds_per_frame(params) = fixed + per_param * params`` for training; evaluation costs a third of it."""

    fixed: float  # seconds per training frame that do not depend on the model size
    per_param: float  # seconds per training frame per parameter
    device: str

    def seconds_per_frame(self, params: int) -> float:
        return self.fixed + self.per_param * params

    def frames_per_s(self, params: int) -> float:
        return 1.0 / self.seconds_per_frame(params)

    def epoch_seconds(self, params: int, train_frames: int, dev_frames: int) -> float:
        """One epoch: every training frame trained once, then every dev frame evaluated."""
        return self.seconds_per_frame(params) * (train_frames + EVAL_COST_FRACTION * dev_frames)

    def largest_params(self, seconds_per_frame: float) -> int:
        """The most parameters a model may have to train at ``seconds_per_frame`` (0 when even a tiny one cannot)."""
        return max(0, int((seconds_per_frame - self.fixed) / self.per_param))

    def to_dict(self) -> dict:
        return asdict(self)


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
