"""``ModelEMA``: an exponential moving average of a model's weights, the model that evaluates and predicts.

Averaging the weights of the last few hundred steps removes most of the noise a constant or slowly decaying learning
rate leaves in the last iterate, at no cost to training: a short run evaluated through its average reads about as
well as it would after annealing, so runs can be compared before their schedule ends. Batch norm's running
statistics are averaged the same way (their step counter is copied).

The decay starts small and grows to ``decay`` (``(1 + n) / (10 + n)`` after ``n`` updates), so early averages are
not dominated by the random initialisation. The update runs on the device with no host synchronisation.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn


class ModelEMA:
    """The averaged copy of ``model``; call ``update(model)`` after every optimizer step."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.module = copy.deepcopy(model).eval()
        self.decay = decay
        self.updates = 0
        for param in self.module.parameters():
            param.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        # One multi-tensor call: a Python loop of per-tensor lerps cost about 5 ms of a 50 ms CPU step of a 2.2M
        # model in one (noisy) timing on the development machine; bench/step.py measures it with the dropout.
        torch._foreach_lerp_(list(self.module.parameters()), [current.detach() for current in model.parameters()],
                             1.0 - decay)
        for averaged, current in zip(self.module.buffers(), model.buffers()):
            if averaged.dtype.is_floating_point:
                averaged.lerp_(current, 1.0 - decay)
            else:
                averaged.copy_(current)

    def state_dict(self) -> dict[str, Any]:
        return {"module": self.module.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.module.load_state_dict(state["module"])
        self.updates = int(state["updates"])
