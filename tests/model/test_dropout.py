"""``model.dropout.Dropout``: the CPU mask drawn 64 bits per generator call keeps what dropout promises."""

from __future__ import annotations

import pytest
import torch

from phonetune.model.dropout import Dropout
from phonetune.model.config import ModelConfig, ModelIO
from phonetune.model.network import build_model


@pytest.mark.parametrize("rate", [0.05, 0.15, 0.5])
def test_it_drops_at_its_rate_scales_the_rest_exactly_and_keeps_the_mean(rate):
    torch.manual_seed(0)
    ones = torch.ones(400, 1000)  # 400k units: the rate's standard error is under 0.001
    out = Dropout(rate).train()(ones)
    dropped = (out == 0).float().mean().item()
    assert dropped == pytest.approx(rate, abs=0.003)
    kept = out[out != 0]
    assert torch.all(kept == kept[0]) and kept[0].item() == pytest.approx(1 / (1 - rate), rel=1e-4)
    assert out.mean().item() == pytest.approx(1.0, abs=0.01)
    # The units are dropped independently: neighbours (the 16-bit words share 64-bit draws) are not correlated.
    flat = (out == 0).float().flatten()
    both = (flat[0::2] * flat[1::2]).mean().item()
    assert both == pytest.approx(dropped * dropped, abs=0.003)


def test_the_seed_decides_the_mask_eval_is_the_identity_and_dtype_and_gradient_follow_the_input():
    layer = Dropout(0.2).train()
    inputs = torch.randn(64, 96, dtype=torch.bfloat16, requires_grad=True)
    torch.manual_seed(3)
    first = layer(inputs)
    torch.manual_seed(3)
    again = layer(inputs)
    assert torch.equal(first, again) and first.dtype == torch.bfloat16
    first.sum().backward()
    # The gradient is the mask times the scale: zero where the unit was dropped, 1/(1-p) where it was kept.
    assert torch.equal(inputs.grad == 0, first == 0)
    assert torch.equal(layer.eval()(inputs), inputs)
    with pytest.raises(ValueError, match="p=1.0"):
        Dropout(1.0)


def test_a_model_saved_with_torch_dropout_loads_into_one_with_this_dropout():
    config = ModelConfig(hidden_layers=2, base_width=32, activation="gelu", batchnorm="after", dropout=0.1)
    io = ModelIO(3 * 28, 40)
    model = build_model(config, io)
    stock = build_model(config, io)
    for index, module in enumerate(stock.layers):
        if isinstance(module, Dropout):
            stock.layers[index] = torch.nn.Dropout(module.p)
    assert sum(isinstance(module, Dropout) for module in model.layers) == 2
    model.load_state_dict(stock.state_dict())  # strict: the same keys
    inputs = torch.randn(5, io.input_dim)
    assert torch.equal(model.eval()(inputs), stock.eval()(inputs))
