"""``ModelConfig``: the ``[model]`` table of a run config, one member of the MLP family.

The input width is fixed by the data (``context_frames`` and ``feature_width``), the output width by the phoneme
inventory (``num_classes``); everything else chooses a network inside the family defined in ``model/budget.py``
(widths) and ``model/network.py`` (layer order). The defaults are the seed's starter model: context 20, no hidden
layers, so a single linear layer from 41 x 28 inputs to 40 classes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

MAX_CONTEXT_FRAMES = 50
MAX_HIDDEN_LAYERS = 8
MAX_DROPOUT = 0.5
# Widths are multiples of this many units: tensor cores work on tiles of 8 (bf16/fp16) or more.
WIDTH_MULTIPLE = 8

WidthShape = Literal["cylinder", "pyramid", "inverse_pyramid", "diamond"]
Activation = Literal["relu", "leaky_relu", "gelu", "silu", "mish", "softplus", "tanh", "sigmoid"]
BatchnormPlace = Literal["none", "before", "after"]
LayerPattern = Literal["every", "alternate"]
InitScheme = Literal["default", "xavier_normal", "xavier_uniform", "kaiming_normal", "kaiming_uniform"]


@dataclass
class ModelConfig:
    """One MLP: input window, hidden widths, activation, normalisation, dropout and weight initialisation."""

    context_frames: int = 20  # frames on each side of the centre frame; set from [data] context_frames on load
    feature_width: int = 28  # mfcc columns per frame; input width = (2*context_frames+1)*feature_width
    num_classes: int = 40  # output units, one per phoneme; set from the [data] phoneme list on load
    hidden_layers: int = 0  # hidden Linear+activation blocks, 0..8; 0 is a single linear layer (the starter)
    base_width: int = 512  # W: the width the shape starts from (multiple of 8); ignored when hidden_layers=0
    width_shape: WidthShape = "cylinder"  # how widths vary with depth; see budget.layer_widths for exact values
    activation: Activation = "relu"  # nonlinearity after every hidden Linear
    batchnorm: BatchnormPlace = "none"  # BatchNorm1d before or after the activation, or none
    batchnorm_layers: LayerPattern = "every"  # every hidden layer, or alternate ones (1st, 3rd, 5th, ...)
    dropout: float = 0.0  # dropout probability after a hidden block, 0..0.5
    dropout_layers: LayerPattern = "every"  # every hidden layer, or alternate ones (1st, 3rd, 5th, ...)
    init: InitScheme = "default"  # weight init of every Linear; non-default schemes zero the biases

    @property
    def input_dim(self) -> int:
        """Width of the flattened context window fed to the first Linear: (2K+1) x feature_width."""
        return (2 * self.context_frames + 1) * self.feature_width

    def problems(self) -> list[str]:
        found = []
        if not 0 <= self.context_frames <= MAX_CONTEXT_FRAMES:
            found.append(
                f"context_frames must be between 0 and {MAX_CONTEXT_FRAMES}, but got "
                f"context_frames={self.context_frames}"
            )
        if self.feature_width < 1:
            found.append(f"feature_width must be at least 1, but got feature_width={self.feature_width}")
        if self.num_classes < 2:
            found.append(f"num_classes must be at least 2, but got num_classes={self.num_classes}")
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
