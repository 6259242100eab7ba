"""Parameter-limit checks of a whole search space, run when a study config is loaded.

``check_space_limit`` refuses a space whose smallest model is over ``param_limit`` (no trial could ever run),
and one where some sampled depth and context leave no legal width even at base width 8. The per-trial width bound
itself is applied while sampling (``space.py``).
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
from typing import TYPE_CHECKING, Any

from phonetune.errors import ParamLimitError
from phonetune.model.params import count_params
from phonetune.model.config import WIDTH_MULTIPLE, ModelConfig, ModelIO
from phonetune.search.space_spec import Choice, ParamSpec

if TYPE_CHECKING:
    from phonetune.search.config import StudyConfig

logger = logging.getLogger(__name__)


def _model_corner(
    config: "StudyConfig", hidden_layers: int, base_width: int, context_frames: int
) -> list[tuple[ModelConfig, ModelIO]]:
    """Every (model, io) at this depth/width/context over the space's shapes and batch norm choices."""
    io = ModelIO.of(dataclasses.replace(config.data, context_frames=context_frames))
    options = [_options(config.space[name]) for name in ("width_shape", "batchnorm", "batchnorm_layers")]
    return [
        (
            ModelConfig(hidden_layers=hidden_layers, base_width=base_width, width_shape=shape, batchnorm=batchnorm,
                        batchnorm_layers=batchnorm_layers),
            io,
        )
        for shape, batchnorm, batchnorm_layers in itertools.product(*options)
    ]


def _count(corner: tuple[ModelConfig, ModelIO]) -> int:
    return count_params(*corner)


def _options(spec: ParamSpec) -> list[Any]:
    return spec.options() if isinstance(spec, Choice) else [spec.bounds()[0]]


def check_space_limit(config: "StudyConfig") -> None:
    """Raise ParamLimitError when the space's smallest model is over the parameter limit, or when some sampled depth and context
    leave no legal width at all; warn when the limit forces widths below the requested ``base_width.low``."""
    limit = config.param_limit
    depth_low, depth_high = config.space["hidden_layers"].bounds()
    width_low, _ = config.space["base_width"].bounds()
    context_low, context_high = config.space["context_frames"].bounds()
    smallest, _io = min(_model_corner(config, depth_low, width_low, context_low), key=_count)
    smallest_count = _count((smallest, _io))
    if smallest_count > limit:
        raise ParamLimitError(
            f"the search space's smallest model must fit param_limit={limit:,}, but hidden_layers={depth_low}, "
            f"base_width={width_low}, context_frames={context_low} ({smallest.width_shape}) has {smallest_count:,} "
            f"parameters ({config.source}, [space]); lower hidden_layers.low, base_width.low or context_frames.low, "
            "or raise [study] param_limit"
        )
    worst_at_narrowest = 0
    worst_at_requested = 0
    for depth in range(depth_low, depth_high + 1):
        for model, io in _model_corner(config, depth, WIDTH_MULTIPLE, context_high):
            worst_at_narrowest = max(worst_at_narrowest, count_params(model, io))
            worst_at_requested = max(
                worst_at_requested, count_params(dataclasses.replace(model, base_width=width_low), io)
            )
    if worst_at_narrowest > limit:
        raise ParamLimitError(
            f"every depth and context of the search space must fit param_limit={limit:,} at some width, but "
            f"context_frames={context_high} with up to {depth_high} hidden layers needs {worst_at_narrowest:,} "
            f"parameters even at base_width=8 ({config.source}, [space]); lower context_frames.high"
        )
    if worst_at_requested > limit:
        logger.warning(
            "%s: at the deepest, widest-context corners of the space even base_width=%d is over param_limit=%s; "
            "those trials get the largest width that fits, below the requested low",
            config.source,
            width_low,
            f"{limit:,}",
        )


def smallest_limit_for_every_trial(config: "StudyConfig") -> int:
    """The least ``param_limit`` under which every depth and context of the space has a legal width.

    Widths shrink to fit a parameter limit, but a model without hidden layers, or a deep one already at width 8, cannot: its
    window alone sets its size. A planner that lowers the limit must stay at or above this.
    """
    context_high = config.space["context_frames"].bounds()[1]
    depth_low, depth_high = config.space["hidden_layers"].bounds()
    return max(
        count_params(model, io)
        for depth in range(depth_low, depth_high + 1)
        for model, io in _model_corner(config, depth, WIDTH_MULTIPLE, context_high)
    )


def largest_model_of_space(config: "StudyConfig") -> int:
    """The most parameters any model of the space can have (its widest, deepest, widest-context corner, within the
    limit): a planner must not size final models beyond what the space can build."""
    context_high = config.space["context_frames"].bounds()[1]
    depth_low, depth_high = config.space["hidden_layers"].bounds()
    width_high = config.space["base_width"].bounds()[1]
    largest = max(
        count_params(dataclasses.replace(model, base_width=width_high), io)
        for depth in range(depth_low, depth_high + 1)
        for model, io in _model_corner(config, depth, WIDTH_MULTIPLE, context_high)
    )
    return min(largest, config.param_limit)
