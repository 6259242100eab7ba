"""``Dropout``: inverted dropout whose CPU mask costs about a third of what ``nn.Dropout``'s does.

``nn.Dropout`` on a CPU draws one Bernoulli variate per unit, one call of the generator each: on the development
machine that was a third of the expert warm start's whole training step at its three dropout layers
(``bench/step.py`` measures the gain; BENCHMARKS.md, "Faster dropout on the CPU"). Here the mask comes from 64 random bits per generator call, 16 bits per unit: a
unit is kept when its 16 bits, read as a signed integer, are at least a threshold, so ``p`` is honoured to 1/65536
and the kept units are scaled by exactly 1 / (1 - that rate). The bits come from torch's own generator, so a seeded
run, and a resumed one, draws the same masks every time. On CUDA (and any other device) the fused kernel of
``nn.functional.dropout`` is already fast and is used as it is.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

_LEVELS = 1 << 16  # the values 16 random bits take


class Dropout(nn.Module):
    """Drop each unit with probability ``p`` (to 1/65536) in training, scale the rest by 1 / (1 - p); the
    identity in evaluation. No parameters or buffers: a state dict saved with ``nn.Dropout`` loads unchanged."""

    def __init__(self, p: float) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), but got p={p}")
        self.p = p
        dropped = round(p * _LEVELS)
        self._threshold = dropped - _LEVELS // 2  # int16 values at or above it are kept: _LEVELS - dropped of them
        self._scale = _LEVELS / (_LEVELS - dropped)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return inputs
        if inputs.device.type != "cpu":
            return F.dropout(inputs, self.p, training=True)
        count = inputs.numel()
        bits = torch.randint(-(1 << 63), (1 << 63) - 1, ((count + 3) // 4,), dtype=torch.int64)
        keep = bits.view(torch.int16)[:count].view(inputs.shape) >= self._threshold
        return (inputs * keep).mul_(self._scale)

    def extra_repr(self) -> str:
        return f"p={self.p}"
