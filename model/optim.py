"""Optimizer and learning-rate schedule built from a ``TrainConfig``, and when each schedule steps.

Schedules step once per epoch (step, exponential, cosine; plateau on the dev loss) except one-cycle and the horizon
schedules, which step once per batch because their warm-up and annealing are defined over optimizer steps.

A horizon schedule (``HorizonSchedule``: ``linear`` always, ``cosine`` and ``onecycle`` in a run sized in steps) is
budgeted training: a warm-up, then a decay to zero at the run's last step, so a run sized to its deadline ends
exactly annealed, and the end can be replanned while it runs. The linear one may also hold the full rate after its
warm-up; while a run is still in its warm-up or hold, its total may be changed: the steps taken so far had the same
learning rates under either total.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from phonetune.model.train_config import HORIZON_SHAPES, TrainConfig


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """``model``'s parameters in two optimizer groups: weight matrices decay by ``weight_decay``; biases and batch
    norm scales and shifts (every parameter of fewer than 2 dimensions) do not, since shrinking a shift or a
    normalization scale towards zero does not regularize the function, it only biases it."""
    matrices = [param for param in model.parameters() if param.ndim >= 2]
    vectors = [param for param in model.parameters() if param.ndim < 2]
    groups = [{"params": matrices, "weight_decay": weight_decay}, {"params": vectors, "weight_decay": 0.0}]
    return [group for group in groups if group["params"]]


def build_optimizer(model: nn.Module, config: TrainConfig, device: torch.device) -> torch.optim.Optimizer:
    """The configured optimizer over ``model``'s parameters, weight decay on matrices only (see ``parameter_groups``),
    with fused Adam/AdamW kernels on CUDA."""
    params = parameter_groups(model, config.weight_decay)
    fused = {"fused": True} if device.type == "cuda" else {}
    if config.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay, **fused)
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay, **fused)
    if config.optimizer in ("sgd", "sgd_nesterov"):
        return torch.optim.SGD(
            params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay,
            nesterov=config.optimizer == "sgd_nesterov",
        )
    if config.optimizer == "rmsprop":
        return torch.optim.RMSprop(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    raise ValueError(f"unhandled optimizer {config.optimizer!r}")  # unreachable: TrainConfig validates it


def total_steps(config: TrainConfig, steps_per_epoch: int) -> int:
    """Optimizer steps of the whole run: ``total_steps`` when set, else ``epochs`` whole epochs."""
    return config.total_steps or config.epochs * steps_per_epoch


def warmup_steps(config: TrainConfig, total: int) -> int:
    """A horizon schedule's or one-cycle's warm-up: ``warmup_steps`` when set, else ``warmup_fraction`` of the run."""
    return config.warmup_steps or max(1, round(config.warmup_fraction * total))


def constant_until(config: TrainConfig, total: int) -> int:
    """The step up to which a linear schedule has not begun to decay (warm-up plus hold); other schedules: 0."""
    if config.scheduler != "linear":
        return 0
    return min(total, warmup_steps(config, total) + config.hold_steps)


def linear_factor(step: int, warmup: int, hold: int, total: int) -> float:
    """Learning-rate multiplier of optimizer step ``step`` (0-based) under the linear schedule."""
    return HorizonSchedule("linear", warmup, hold, total)(step)


# One-cycle starts its warm-up at this fraction of the peak rate (torch's OneCycleLR: div_factor 25).
ONECYCLE_START = 1 / 25


def _decay(shape: str, done: int, length: int) -> float:
    """The share of its starting rate a decay of ``length`` steps keeps after ``done`` of them."""
    if shape == "linear":
        return max(0.0, (length - done) / length)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, max(0.0, done / length))))


class HorizonSchedule:
    """A schedule that ends at a horizon, as a callable for ``LambdaLR`` (which saves a callable object's attributes
    in its state, so a replanned end survives a checkpoint): a warm-up, an optional hold at the full rate (linear
    only), then a decay to zero at step ``total``: a straight line (``linear``), half a cosine (``cosine``), or half
    a cosine after a cosine warm-up from ``ONECYCLE_START`` of the rate (``onecycle``). After a ``replan`` the decay
    runs from the rate of the replanned step to zero at the new end, in the same shape. ``phonetune run``'s final
    run replans when the machine turns out slower or faster than predicted, so the rate still reaches zero when the
    time is up."""

    def __init__(self, shape: str, warmup: int, hold: int, total: int) -> None:
        if shape not in HORIZON_SHAPES:
            raise ValueError(f"shape must be one of {list(HORIZON_SHAPES)}, but got {shape!r}")
        self.shape, self.warmup, self.hold, self.total = shape, warmup, hold, total
        self.planned_total = total  # the end before any replan, which the steps before the anchor followed
        self.anchor_step: int | None = None  # the step of the last replan, with the factor it had then
        self.anchor_factor = 1.0

    def __call__(self, step: int) -> float:
        if self.anchor_step is None or step < self.anchor_step:
            return self._planned(step)
        if self.total <= self.anchor_step:
            return 0.0
        return max(0.0, self.anchor_factor * _decay(self.shape, step - self.anchor_step,
                                                    self.total - self.anchor_step))

    def _planned(self, step: int) -> float:
        if step < self.warmup:
            if self.shape == "onecycle":
                rise = 0.5 * (1.0 - math.cos(math.pi * (step + 1) / self.warmup))
                return ONECYCLE_START + (1.0 - ONECYCLE_START) * rise
            return (step + 1) / self.warmup
        total = self.planned_total if self.anchor_step is not None else self.total
        if step < self.decay_start or total <= self.decay_start:
            return 1.0
        return max(0.0, _decay(self.shape, step - self.decay_start, total - self.decay_start))

    @property
    def decay_start(self) -> int:
        return self.warmup + self.hold

    def replan(self, step: int, total: int) -> None:
        """End the schedule at ``total`` instead, decaying from the rate of ``step`` (a step in the decay)."""
        self.anchor_factor = self(step)
        self.anchor_step = step
        self.total = total


def horizon_schedule(config: TrainConfig) -> bool:
    """Whether ``config``'s schedule is a ``HorizonSchedule``: the linear one always; cosine and one-cycle when the
    run is sized in steps (``total_steps``, as ``phonetune run`` sizes every run to its time)."""
    return config.scheduler == "linear" or (config.total_steps > 0 and config.scheduler in HORIZON_SHAPES)


def build_scheduler(
    optimizer: torch.optim.Optimizer, config: TrainConfig, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LRScheduler | torch.optim.lr_scheduler.ReduceLROnPlateau | None:
    """The configured schedule, or None for a fixed learning rate."""
    schedules = torch.optim.lr_scheduler
    total = total_steps(config, steps_per_epoch)
    if horizon_schedule(config):
        warmup, hold = warmup_steps(config, total), config.hold_steps if config.scheduler == "linear" else 0
        return schedules.LambdaLR(optimizer, HorizonSchedule(config.scheduler, warmup, hold, total))
    if config.scheduler == "fixed":
        return None
    if config.scheduler == "step":
        return schedules.StepLR(optimizer, step_size=config.step_size, gamma=config.gamma)
    if config.scheduler == "exponential":
        return schedules.ExponentialLR(optimizer, gamma=config.gamma)
    if config.scheduler == "cosine":
        return schedules.CosineAnnealingLR(optimizer, T_max=config.epochs)
    if config.scheduler == "plateau":
        return schedules.ReduceLROnPlateau(
            optimizer, mode="min", factor=config.plateau_factor, patience=config.plateau_patience
        )
    if config.scheduler == "onecycle":
        return schedules.OneCycleLR(
            optimizer, max_lr=config.lr, total_steps=total,
            pct_start=config.warmup_fraction,
        )
    raise ValueError(f"unhandled scheduler {config.scheduler!r}")  # unreachable: TrainConfig validates it


def steps_per_batch(config: TrainConfig) -> bool:
    """True when the schedule advances every optimizer step rather than every epoch."""
    return config.scheduler == "onecycle" or horizon_schedule(config)


def step_epoch_schedule(scheduler, config: TrainConfig, dev_loss: float) -> None:
    """Advance a per-epoch schedule at the end of an epoch (plateau watches the dev loss)."""
    if scheduler is None or steps_per_batch(config):
        return
    if config.scheduler == "plateau":
        scheduler.step(dev_loss)
    else:
        scheduler.step()


def current_lr(optimizer: torch.optim.Optimizer) -> float:
    return float(optimizer.param_groups[0]["lr"])
