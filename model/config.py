"""``ModelConfig``: the ``[model]`` table of a run config, one member of the MLP family.

A ``ModelConfig`` holds only the architecture. The input and output widths belong to the data (``[data]
context_frames``, ``feature_width`` and the phoneme list) and reach the network as a ``ModelIO``, derived from a
``DataConfig`` by ``ModelIO.of(data)``; so the context window is set in exactly one place. The defaults are the seed's
starter model: no hidden layers, a single linear layer from the window to the classes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from phonetune.data_pipeline.config import DataConfig

MAX_HIDDEN_LAYERS = 8
MAX_DROPOUT = 0.5
# Widths are multiples of this many units: tensor cores work on tiles of 8 (bf16/fp16) or more.
WIDTH_MULTIPLE = 8

WidthShape = Literal["cylinder", "pyramid", "inverse_pyramid", "diamond"]
Activation = Literal["relu", "leaky_relu", "gelu", "silu", "mish", "softplus", "tanh", "sigmoid"]
BatchnormPlace = Literal["none", "before", "after"]
LayerPattern = Literal["every", "alternate"]
InitScheme = Literal[
    "default", "normal", "uniform", "xavier_normal", "xavier_uniform", "kaiming_normal", "kaiming_uniform"
]


@dataclass(frozen=True)
class ModelIO:
    """The network's input width (the flattened context window) and output width (one unit per phoneme)."""

    input_dim: int
    num_classes: int

    @classmethod
    def of(cls, data: "DataConfig") -> "ModelIO":
        return cls(input_dim=data.input_dim, num_classes=data.num_classes)


@dataclass
class ModelConfig:
    """One MLP: input window, hidden widths, activation, normalisation, dropout and weight initialisation."""

    hidden_layers: int = 0  # hidden Linear+activation blocks, 0..8; 0 is a single linear layer (the starter)
    base_width: int = 512  # W: the width the shape starts from (multiple of 8); ignored when hidden_layers=0
    width_shape: WidthShape = "cylinder"  # how widths vary with depth; see params.layer_widths for exact values
    activation: Activation = "relu"  # nonlinearity after every hidden Linear
    batchnorm: BatchnormPlace = "none"  # BatchNorm1d before or after the activation, or none
    batchnorm_layers: LayerPattern = "every"  # every hidden layer, or alternate ones (1st, 3rd, 5th, ...)
    dropout: float = 0.0  # dropout probability after a hidden block, 0..0.5
    dropout_layers: LayerPattern = "every"  # every hidden layer, or alternate ones (1st, 3rd, 5th, ...)
    init: InitScheme = "default"  # weight init of every Linear; non-default schemes zero the biases

    def problems(self) -> list[str]:
        found = []
        if not 0 <= self.hidden_layers <= MAX_HIDDEN_LAYERS:
            found.append(
                f"hidden_layers must be between 0 and {MAX_HIDDEN_LAYERS}, but got hidden_layers={self.hidden_layers}"
            )
        if self.base_width < WIDTH_MULTIPLE or self.base_width % WIDTH_MULTIPLE:
            found.append(
                f"base_width must be a positive multiple of {WIDTH_MULTIPLE}, but got base_width={self.base_width}"
            )
        if not 0.0 <= self.dropout <= MAX_DROPOUT:
            found.append(f"dropout must be between 0 and {MAX_DROPOUT}, but got dropout={self.dropout}")
        return found
