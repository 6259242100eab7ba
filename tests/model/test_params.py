"""The MLP family and the 20M guard: exact analytic counts, documented shapes, errors before allocation."""

from __future__ import annotations

import dataclasses
import random
import typing

import pytest
import torch
from torch import nn

from phonetune.configs import from_mapping
from phonetune.data_pipeline import DataConfig
from phonetune.errors import ConfigError, ParamLimitError
from phonetune.model import (
    DEFAULT_PARAM_LIMIT,
    MAX_BASE_WIDTH,
    ModelConfig,
    ModelIO,
    check_ensemble_limit,
    count_params,
    layer_widths,
    max_base_width,
)
from phonetune.model.config import Activation, BatchnormPlace, InitScheme, LayerPattern, WidthShape
from phonetune.model.network import build_model


def window_io(context_frames: int = 20, feature_width: int = 28, num_classes: int = 40) -> ModelIO:
    """The io of a model over (2K+1)-frame windows, as ModelIO.of(DataConfig) derives it."""
    return ModelIO(input_dim=(2 * context_frames + 1) * feature_width, num_classes=num_classes)


STARTER_IO = window_io()


def _choices(literal: typing.Any) -> list[str]:
    return list(typing.get_args(literal))


def _random_config(rng: random.Random) -> tuple[ModelConfig, ModelIO]:
    io = window_io(rng.randint(0, 50), rng.choice([28, 13]), rng.choice([40, 46, 2]))
    return io, ModelConfig(
        hidden_layers=rng.randint(0, 8),
        base_width=8 * rng.randint(1, 40),
        width_shape=rng.choice(_choices(WidthShape)),
        activation=rng.choice(_choices(Activation)),
        batchnorm=rng.choice(_choices(BatchnormPlace)),
        batchnorm_layers=rng.choice(_choices(LayerPattern)),
        dropout=rng.choice([0.0, 0.1, 0.5]),
        dropout_layers=rng.choice(_choices(LayerPattern)),
        init=rng.choice(_choices(InitScheme)),
    )


def test_count_params_equals_built_model_on_300_random_configs():
    rng = random.Random(2025)
    seen_shapes, seen_batchnorm = set(), set()
    for _ in range(300):
        io, config = _random_config(rng)
        model = build_model(config, io)
        assert count_params(config, io) == sum(p.numel() for p in model.parameters()), config
        seen_shapes.add(config.width_shape)
        seen_batchnorm.add((config.batchnorm, config.batchnorm_layers))
    assert len(seen_shapes) == 4 and len(seen_batchnorm) == 6


def test_layer_order_matches_the_documented_build_order():
    config = ModelConfig(
        hidden_layers=3, base_width=64, batchnorm="after", batchnorm_layers="alternate",
        dropout=0.2, dropout_layers="every", activation="gelu",
    )
    kinds = [type(module).__name__ for module in build_model(config, window_io(2)).layers]
    assert kinds == [
        "Linear", "GELU", "BatchNorm1d", "Dropout",
        "Linear", "GELU", "Dropout",
        "Linear", "GELU", "BatchNorm1d", "Dropout",
        "Linear",
    ]
    before = dataclasses.replace(config, batchnorm="before", batchnorm_layers="every", dropout_layers="alternate")
    kinds = [type(module).__name__ for module in build_model(before, window_io(2)).layers]
    assert kinds[:4] == ["Linear", "BatchNorm1d", "GELU", "Dropout"]
    assert kinds[4:7] == ["Linear", "BatchNorm1d", "GELU"]


def test_starter_model_is_one_linear_layer_over_41_frames():
    model = build_model(ModelConfig(), ModelIO.of(DataConfig()))  # the data's default context 20: 41 frames
    linears = [m for m in model.layers if isinstance(m, nn.Linear)]
    assert len(linears) == 1 and linears[0].in_features == 41 * 28 and linears[0].out_features == 40
    assert model(torch.zeros(5, 41 * 28)).shape == (5, 40)
    assert model(torch.zeros(5, 41, 28)).shape == (5, 40)


@pytest.mark.parametrize(
    ("shape", "depth", "expected"),
    [
        ("cylinder", 4, [1024, 1024, 1024, 1024]),
        ("pyramid", 4, [1024, 768, 512, 256]),
        ("inverse_pyramid", 4, [256, 512, 768, 1024]),
        ("diamond", 4, [1024, 1704, 1704, 1024]),
        ("diamond", 5, [1024, 1536, 2048, 1536, 1024]),
        ("diamond", 3, [1024, 2048, 1024]),
        ("pyramid", 1, [1024]),
        ("diamond", 2, [1024, 1024]),
        ("pyramid", 0, []),
    ],
)
def test_width_shapes_follow_the_documented_formulas(shape, depth, expected):
    config = ModelConfig(hidden_layers=depth, base_width=1024, width_shape=shape)
    assert layer_widths(config) == expected
    assert [m.out_features for m in build_model(config, window_io(0)).layers
            if isinstance(m, nn.Linear)][:-1] == expected


def test_widths_are_multiples_of_8_and_never_below_8():
    for shape in _choices(WidthShape):
        for width in (8, 16, 24, 40, 1000):
            widths = layer_widths(ModelConfig(hidden_layers=8, base_width=width, width_shape=shape))
            assert all(w % 8 == 0 and w >= 8 for w in widths), (shape, width, widths)


def test_oversized_model_raises_budget_error_before_allocating():
    # 8 layers of 1M units would need ~8e12 parameters (32 TB); reaching the allocator would crash, not raise this.
    huge = ModelConfig(hidden_layers=8, base_width=1 << 20)
    with pytest.raises(ParamLimitError) as caught:
        build_model(huge, STARTER_IO)
    message = str(caught.value)
    assert f"{count_params(huge, STARTER_IO):,}" in message and "20,000,000" in message
    thirty_million = ModelConfig(hidden_layers=1, base_width=10_000)
    assert 25e6 < count_params(thirty_million, window_io(50)) < 35e6
    with pytest.raises(ParamLimitError, match="20,000,000"):
        build_model(thirty_million, window_io(50))


def test_budget_can_be_lowered_but_not_silently_raised():
    config = ModelConfig(hidden_layers=2, base_width=256)
    count = count_params(config, STARTER_IO)
    with pytest.raises(ParamLimitError, match=f"{count - 1:,}"):
        build_model(config, STARTER_IO, param_limit=count - 1)
    assert build_model(config, STARTER_IO, param_limit=count).param_count() == count
    with pytest.raises(ParamLimitError, match="allow_over_default"):
        build_model(config, STARTER_IO, param_limit=30_000_000)
    big = ModelConfig(hidden_layers=1, base_width=8000)
    assert count_params(big, window_io(50)) > DEFAULT_PARAM_LIMIT
    assert max_base_width(big, window_io(50), 30_000_000, allow_over_default=True) > 8000
    with pytest.raises(ParamLimitError):
        build_model(config, STARTER_IO, param_limit=0)


def test_max_base_width_is_the_largest_fitting_multiple_of_8():
    rng = random.Random(7)
    for _ in range(60):
        io, config = _random_config(rng)
        if config.hidden_layers == 0:
            continue
        budget = rng.choice([200_000, 2_000_000, DEFAULT_PARAM_LIMIT])
        if count_params(dataclasses.replace(config, base_width=8), io) > budget:
            continue
        width = max_base_width(config, io, budget)
        assert width % 8 == 0
        assert count_params(dataclasses.replace(config, base_width=width), io) <= budget
        if width < MAX_BASE_WIDTH:
            assert count_params(dataclasses.replace(config, base_width=width + 8), io) > budget
    assert max_base_width(ModelConfig(hidden_layers=0), STARTER_IO, DEFAULT_PARAM_LIMIT) == MAX_BASE_WIDTH
    with pytest.raises(ParamLimitError, match="base_width=8"):
        max_base_width(ModelConfig(hidden_layers=8), window_io(50), 10_000)


def test_ensemble_budget_sums_members():
    member = (ModelConfig(hidden_layers=3, base_width=1024), STARTER_IO)
    count = count_params(*member)
    assert check_ensemble_limit([member, member], 2 * count) == 2 * count
    with pytest.raises(ParamLimitError, match=f"{3 * count:,}"):
        check_ensemble_limit([member] * 3, 2 * count)


def test_model_config_rejects_unknown_keys_and_out_of_range_values():
    with pytest.raises(ConfigError) as caught:
        from_mapping(
            ModelConfig,
            {"hidden_layers": 9, "dropout": 0.7, "base_width": 100, "activation": "swish", "widht": 3},
            source="run.toml [model]",
        )
    message = str(caught.value)
    for needle in ("widht", "run.toml [model]", "activation", "swish"):
        assert needle in message
    with pytest.raises(ConfigError) as caught:
        from_mapping(ModelConfig, {"hidden_layers": 9, "dropout": 0.7, "base_width": 100}, "x")
    message = str(caught.value)
    for needle in ("hidden_layers=9", "dropout=0.7", "base_width=100"):
        assert needle in message
    # context_frames is the data's (it sizes the window); the model has no such key.
    with pytest.raises(ConfigError, match="unknown key 'context_frames'"):
        from_mapping(ModelConfig, {"context_frames": 5}, "x")


@pytest.mark.parametrize("init", _choices(InitScheme))
def test_init_schemes_give_finite_distinct_weights(init):
    torch.manual_seed(0)
    model = build_model(ModelConfig(hidden_layers=2, base_width=64, init=init, activation="tanh"), window_io(3))
    first = model.layers[0]
    assert torch.isfinite(first.weight).all()
    if init != "default":
        assert torch.count_nonzero(first.bias) == 0
    torch.manual_seed(0)
    default = build_model(ModelConfig(hidden_layers=2, base_width=64, activation="tanh"), window_io(3))
    assert (init == "default") == torch.equal(default.layers[0].weight, first.weight)
