"""Optimizer and learning-rate schedule built from a ``TrainConfig``, and when each schedule steps.

Schedules step once per epoch (step, exponential, cosine; plateau on the dev loss) except one-cycle, which steps
once per batch because its warm-up and annealing are defined over optimizer steps.
"""

from __future__ import annotations

import torch
from torch import nn

from phonetune.model.train_config import TrainConfig


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


def build_scheduler(
    optimizer: torch.optim.Optimizer, config: TrainConfig, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LRScheduler | torch.optim.lr_scheduler.ReduceLROnPlateau | None:
    """The configured schedule, or None for a fixed learning rate."""
    schedules = torch.optim.lr_scheduler
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
            optimizer, max_lr=config.lr, total_steps=config.epochs * steps_per_epoch,
            pct_start=config.warmup_fraction,
        )
    raise ValueError(f"unhandled scheduler {config.scheduler!r}")  # unreachable: TrainConfig validates it


def steps_per_batch(config: TrainConfig) -> bool:
    """True when the schedule advances every optimizer step rather than every epoch."""
    return config.scheduler == "onecycle"


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
