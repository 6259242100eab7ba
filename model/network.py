"""``PhonemeMLP``: the MLP family over flattened context windows, and ``build_model``, its builder, checked against the parameter limit.

Layer order, in the order modules are created (``count_params`` mirrors it exactly). For each hidden layer ``i``
with width ``layer_widths(config)[i]``::

    Linear(fan_in, width)
    BatchNorm1d(width)      if batchnorm == "before" and the layer is selected by batchnorm_layers
    activation
    BatchNorm1d(width)      if batchnorm == "after" and the layer is selected by batchnorm_layers
    Dropout(dropout)        if dropout > 0 and the layer is selected by dropout_layers (``model.dropout``)

then ``Linear(last_width, num_classes)``, producing logits (softmax lives in the loss). ``alternate`` selects the
1st, 3rd, 5th ... hidden layers. With ``hidden_layers = 0`` the network is the single output Linear.

Example::

    io = ModelIO(input_dim=31 * 28, num_classes=40)      # context_frames=15: 31 frames of 28 features
    model = build_model(ModelConfig(hidden_layers=3, base_width=1024), io)
    logits = model(torch.zeros(8, io.input_dim))  # (8, 40)
"""

from __future__ import annotations

import torch
from torch import nn

from phonetune.model.params import DEFAULT_PARAM_LIMIT, ensure_fits, layer_has, layer_widths
from phonetune.model.config import ModelConfig, ModelIO
from phonetune.model.dropout import Dropout

# Explicit registry instead of dotted-path lookup: one family, a handful of choices.
ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "mish": nn.Mish,
    "softplus": nn.Softplus,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
}

# Gain argument for Kaiming init. Smooth ReLU-like activations (GELU, SiLU, Mish, Softplus) have no closed-form
# gain in torch; the ReLU gain is the usual stand-in because they behave like ReLU for large inputs.
KAIMING_NONLINEARITY: dict[str, str] = {
    "relu": "relu",
    "leaky_relu": "leaky_relu",
    "gelu": "relu",
    "silu": "relu",
    "mish": "relu",
    "softplus": "relu",
    "tanh": "tanh",
    "sigmoid": "sigmoid",
}


# The handout's plain "Gaussian" and "Uniform" schemes: fixed scales, independent of the layer width (unlike Xavier
# and Kaiming), the classic small-random-weights initialisation.
GAUSSIAN_INIT_STD = 0.02
UNIFORM_INIT_BOUND = 0.05


class PhonemeMLP(nn.Module):
    """Frame classifier: (batch, (2K+1)*F) context windows -> (batch, num_classes) logits."""

    def __init__(self, config: ModelConfig, io: ModelIO):
        super().__init__()
        self.config = config
        self.io = io
        modules: list[nn.Module] = []
        fan_in = io.input_dim
        for index, width in enumerate(layer_widths(config)):
            modules.append(nn.Linear(fan_in, width))
            wants_batchnorm = config.batchnorm != "none" and layer_has(config.batchnorm_layers, index)
            if wants_batchnorm and config.batchnorm == "before":
                modules.append(nn.BatchNorm1d(width))
            modules.append(ACTIVATIONS[config.activation]())
            if wants_batchnorm and config.batchnorm == "after":
                modules.append(nn.BatchNorm1d(width))
            if config.dropout > 0 and layer_has(config.dropout_layers, index):
                modules.append(Dropout(config.dropout))
            fan_in = width
        modules.append(nn.Linear(fan_in, io.num_classes))
        self.layers = nn.Sequential(*modules)
        self._initialise()

    def _initialise(self) -> None:
        scheme = self.config.init
        if scheme == "default":
            return
        nonlinearity = KAIMING_NONLINEARITY[self.config.activation]
        for module in self.layers:
            if not isinstance(module, nn.Linear):
                continue
            if scheme == "normal":
                nn.init.normal_(module.weight, mean=0.0, std=GAUSSIAN_INIT_STD)
            elif scheme == "uniform":
                nn.init.uniform_(module.weight, -UNIFORM_INIT_BOUND, UNIFORM_INIT_BOUND)
            elif scheme == "xavier_normal":
                nn.init.xavier_normal_(module.weight)
            elif scheme == "xavier_uniform":
                nn.init.xavier_uniform_(module.weight)
            elif scheme == "kaiming_normal":
                nn.init.kaiming_normal_(module.weight, nonlinearity=nonlinearity)
            elif scheme == "kaiming_uniform":
                nn.init.kaiming_uniform_(module.weight, nonlinearity=nonlinearity)
            nn.init.zeros_(module.bias)

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        """Logits for a batch of windows; the one path for training, evaluation and prediction.

        ``windows`` is ``(batch, (2K+1)*F)`` or ``(batch, 2K+1, F)`` (flattened here, a free view).
        """
        return self.layers(windows.flatten(1))  # (batch, num_classes)

    def param_count(self) -> int:
        return sum(parameter.numel() for parameter in self.parameters())


def build_model(
    config: ModelConfig, io: ModelIO, param_limit: int = DEFAULT_PARAM_LIMIT, *, allow_over_default: bool = False
) -> PhonemeMLP:
    """Build ``config`` for ``io`` after checking, without allocating, that it fits ``param_limit``.

    Raises ParamLimitError stating the count and the limit when it does not fit, and when ``param_limit`` exceeds
    the 20M HW1P2 limit without ``allow_over_default=True``.
    """
    ensure_fits(config, io, param_limit, allow_over_default=allow_over_default)
    return PhonemeMLP(config, io)
