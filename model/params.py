"""The width shapes and the parameter count and limit, computed from a ``ModelConfig`` without building anything.

Everything here is arithmetic on the config, so the search can reject or resize an oversized model before a single
tensor is allocated. ``count_params`` must agree exactly with ``sum(p.numel())`` of ``build_model(config)``; the
layer order it mirrors is documented in ``model/network.py``.
"""

from __future__ import annotations

import dataclasses
from typing import Iterable, Sequence

from phonetune.errors import ParamLimitError
from phonetune.model.config import WIDTH_MULTIPLE, ModelConfig, ModelIO

# The HW1P2 rule: no model (or ensemble, summed) may have more than 20 million parameters.
DEFAULT_PARAM_LIMIT = 20_000_000
# Upper end of the base width search: beyond this no realistic config fits 20M anyway, and a model without hidden
# layers (whose size does not depend on the base width) needs some finite answer.
MAX_BASE_WIDTH = 65_536
# The pyramid narrows to this fraction of W at its last hidden layer; the inverse pyramid starts there.
PYRAMID_END_FRACTION = 0.25
# The diamond widens to this multiple of W at its middle.
DIAMOND_PEAK_FACTOR = 2.0


def _round_width(width: float) -> int:
    """Nearest multiple of 8, never below 8."""
    return max(WIDTH_MULTIPLE, int(round(width / WIDTH_MULTIPLE)) * WIDTH_MULTIPLE)


def layer_widths(config: ModelConfig) -> list[int]:
    """Output width of each hidden layer, first to last, from base width W and depth D = ``hidden_layers``.

    Hidden layer ``i`` (0-based) sits at position ``t = i / (D - 1)`` along the depth (``t = 0`` when D = 1), and its
    width is ``W * f(t)`` rounded to the nearest multiple of 8 (at least 8):

    - ``cylinder``:        f(t) = 1                          every layer is W wide
    - ``pyramid``:         f(t) = 1 - 0.75 t                 linear from W down to W/4 at the last hidden layer
    - ``inverse_pyramid``: f(t) = 0.25 + 0.75 t              linear from W/4 up to W at the last hidden layer
    - ``diamond``:         f(t) = 1 + (1 - |2t - 1|)         W at both ends, 2W at the middle, linear in between

    With one hidden layer every shape is ``[W]``; with two, the diamond equals the cylinder (its peak falls between
    the layers). Worked example, W = 1024, D = 4 (t = 0, 1/3, 2/3, 1)::

        cylinder        [1024, 1024, 1024, 1024]
        pyramid         [1024,  768,  512,  256]
        inverse_pyramid [ 256,  512,  768, 1024]
        diamond         [1024, 1704, 1704, 1024]   (1024 * 5/3 = 1706.7 -> 1704)

    and D = 5 gives the diamond ``[1024, 1536, 2048, 1536, 1024]``.
    """
    depth = config.hidden_layers
    base = config.base_width
    widths = []
    for index in range(depth):
        position = index / (depth - 1) if depth > 1 else 0.0
        if config.width_shape == "cylinder":
            factor = 1.0
        elif config.width_shape == "pyramid":
            factor = 1.0 - (1.0 - PYRAMID_END_FRACTION) * position
        elif config.width_shape == "inverse_pyramid":
            factor = PYRAMID_END_FRACTION + (1.0 - PYRAMID_END_FRACTION) * position
        elif config.width_shape == "diamond":
            factor = 1.0 + (DIAMOND_PEAK_FACTOR - 1.0) * (1.0 - abs(2.0 * position - 1.0))
        else:
            raise ParamLimitError(f"width_shape must be cylinder, pyramid, inverse_pyramid or diamond, got {config.width_shape!r}")
        widths.append(_round_width(base * factor))
    return widths


def layer_has(pattern: str, hidden_index: int) -> bool:
    """Whether hidden layer ``hidden_index`` (0-based) gets a feature under an ``every``/``alternate`` pattern.

    ``alternate`` means the 1st, 3rd, 5th ... hidden layers (even indices), so a single hidden layer still gets it.
    """
    return pattern == "every" or hidden_index % 2 == 0


def count_params(config: ModelConfig, io: ModelIO) -> int:
    """Exact number of trainable parameters of ``build_model(config, io)``, without allocating.

    Each Linear holds ``in*out + out`` (weights and bias); each BatchNorm1d holds ``2*width`` (affine scale and
    shift; its running statistics are buffers, not parameters). Dropout and activations hold none.
    """
    total = 0
    fan_in = io.input_dim
    for index, width in enumerate(layer_widths(config)):
        total += fan_in * width + width
        if config.batchnorm != "none" and layer_has(config.batchnorm_layers, index):
            total += 2 * width
        fan_in = width
    total += fan_in * io.num_classes + io.num_classes
    return total


def check_param_limit(param_limit: int, *, allow_over_default: bool = False) -> int:
    """Validate a parameter limit: positive, and not above 20M unless the caller explicitly opts in.

    A limit can be lowered freely (to search smaller models) but raising it past the HW1P2 limit must be a
    deliberate choice, never the side effect of a typo.
    """
    if isinstance(param_limit, bool) or not isinstance(param_limit, int) or param_limit <= 0:
        raise ParamLimitError(f"param_limit must be a positive integer, but got {param_limit!r}")
    if param_limit > DEFAULT_PARAM_LIMIT and not allow_over_default:
        raise ParamLimitError(
            f"param_limit must be at most {DEFAULT_PARAM_LIMIT:,} (the HW1P2 limit), but got {param_limit:,}; "
            "pass allow_over_default=True to lift the limit on purpose"
        )
    return param_limit


def describe(config: ModelConfig, io: ModelIO) -> str:
    """A short human summary: widths and shape, for error messages and logs."""
    widths = layer_widths(config)
    hidden = "x".join(str(w) for w in widths) if widths else "no hidden layers"
    return f"{io.input_dim} -> [{hidden}] -> {io.num_classes} ({config.width_shape}, {config.activation})"


def ensure_fits(
    config: ModelConfig, io: ModelIO, param_limit: int = DEFAULT_PARAM_LIMIT, *, allow_over_default: bool = False
) -> int:
    """Return ``count_params(config, io)``, or raise ParamLimitError stating the count and the limit."""
    check_param_limit(param_limit, allow_over_default=allow_over_default)
    count = count_params(config, io)
    if count > param_limit:
        raise ParamLimitError(
            f"model must have at most {param_limit:,} parameters, but {describe(config, io)} has {count:,}; "
            "lower base_width, hidden_layers or context_frames"
        )
    return count


def max_base_width(
    config: ModelConfig, io: ModelIO, param_limit: int = DEFAULT_PARAM_LIMIT, *, allow_over_default: bool = False
) -> int:
    """Largest base width (a multiple of 8, at most ``MAX_BASE_WIDTH``) for which ``config`` fits the parameter limit.

    All other fields of ``config`` are kept; its own ``base_width`` is ignored. The parameter count never falls as
    the base width grows, so a binary search over multiples of 8 finds the answer. Without hidden layers the width
    does not matter and the answer is ``MAX_BASE_WIDTH`` when the single linear layer fits. Raises ParamLimitError when
    even base width 8 does not fit (the context window alone is too large).
    """
    check_param_limit(param_limit, allow_over_default=allow_over_default)

    def fits(width: int) -> bool:
        return count_params(dataclasses.replace(config, base_width=width), io) <= param_limit

    if not fits(WIDTH_MULTIPLE):
        smallest = count_params(dataclasses.replace(config, base_width=WIDTH_MULTIPLE), io)
        raise ParamLimitError(
            f"model must fit {param_limit:,} parameters, but even base_width={WIDTH_MULTIPLE} gives {smallest:,} "
            f"(input width {io.input_dim}, hidden_layers={config.hidden_layers}); lower context_frames"
        )
    low, high = 1, MAX_BASE_WIDTH // WIDTH_MULTIPLE  # in units of 8; fits(low) holds
    if fits(high * WIDTH_MULTIPLE):
        return high * WIDTH_MULTIPLE
    while high - low > 1:
        middle = (low + high) // 2
        if fits(middle * WIDTH_MULTIPLE):
            low = middle
        else:
            high = middle
    return low * WIDTH_MULTIPLE


def check_members_fit(
    param_counts: Sequence[int],
    param_limit: int = DEFAULT_PARAM_LIMIT,
    *,
    names: Sequence[str] | None = None,
    allow_over_default: bool = False,
) -> int:
    """Return the summed parameter count of ensemble members, or raise ParamLimitError naming each member's count.

    ``names`` (one per member, such as checkpoint paths) label the counts in the message.
    """
    check_param_limit(param_limit, allow_over_default=allow_over_default)
    counts = [int(count) for count in param_counts]
    if not counts:
        raise ParamLimitError("an ensemble must have at least one member, but got none")
    if names is not None and len(names) != len(counts):
        raise ValueError(f"check_members_fit needs one name per member, got {len(names)} for {len(counts)}")
    total = sum(counts)
    if total > param_limit:
        labels = names if names is not None else [f"member {index + 1}" for index in range(len(counts))]
        members = ", ".join(f"{label}: {count:,}" for label, count in zip(labels, counts))
        raise ParamLimitError(
            f"an ensemble must have at most {param_limit:,} parameters in all, but its {len(counts)} members "
            f"have {total:,} ({members}); drop a member or pick smaller ones"
        )
    return total


def check_ensemble_limit(
    members: Iterable[tuple[ModelConfig, ModelIO]],
    param_limit: int = DEFAULT_PARAM_LIMIT,
    *,
    allow_over_default: bool = False,
) -> int:
    """Return the summed parameter count of an ensemble, or raise ParamLimitError listing each member's count."""
    counts = [count_params(config, io) for config, io in members]
    return check_members_fit(counts, param_limit, allow_over_default=allow_over_default)
