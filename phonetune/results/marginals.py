"""The marginals CSV beside the ablation sheet: per hyperparameter value (numbers in a few readable ranges), how many
trials drew it, how many completed or were pruned, and their dev accuracy.

Pruned trials count too: ``mean_dev_accuracy_epoch_1`` compares every trial after the one epoch they all reached,
and ``mean_dev_accuracy_complete`` the complete ones only. ``export.write_ablation_sheet`` writes it.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pandas as pd

from phonetune.results.formatting import format_cell

# A numeric hyperparameter with more distinct values than this is summarised in ranges, not value by value.
MAX_LISTED_VALUES = 5
MARGINAL_RANGES = 4
MARGINAL_COLUMNS = [
    "trained_on",
    "parameter",
    "value",
    "trials",
    "complete",
    "pruned",
    "mean_dev_accuracy_epoch_1",  # over every trial with the value, pruned ones included
    "mean_dev_accuracy_complete",  # over the complete trials only (blank when none completed)
    "best_dev_accuracy",
]


def _nice(value: float) -> float:
    """``value`` at 2 significant digits: range edges a person reads at a glance."""
    return float(f"{value:.2g}") if value else 0.0


def _range_labels(values: pd.Series) -> pd.Series:
    """Each value's label: itself when the parameter took few distinct values, else one of a few readable ranges
    (integer ranges such as ``8-15``; float ranges on a log scale when they span a decade or more)."""
    if values.nunique() <= MAX_LISTED_VALUES or not pd.api.types.is_numeric_dtype(values) \
            or pd.api.types.is_bool_dtype(values):
        return values.map(format_cell)
    low, high = float(values.min()), float(values.max())
    if pd.api.types.is_integer_dtype(values) or all(float(v).is_integer() for v in values):
        step = max(1, math.ceil((high - low + 1) / MARGINAL_RANGES))
        starts = ((values - low) // step) * step + low
        return starts.map(lambda start: f"{int(start)}-{int(min(start + step - 1, high))}")
    if low > 0 and high / low >= 10:
        edges = np.geomspace(low, high, MARGINAL_RANGES + 1)
    else:
        edges = np.linspace(low, high, MARGINAL_RANGES + 1)
    edges = sorted({_nice(edge) for edge in edges[1:-1]})
    edges = [-math.inf, *edges, math.inf]
    bins = pd.cut(values, edges, right=False)
    return bins.map(lambda interval: _range_text(interval.left, interval.right, low, high)).astype(str)


def _range_text(left: float, right: float, low: float, high: float) -> str:
    """``0.0003-0.001``: from the range's lower edge (or the lowest value drawn) up to its upper edge (or the
    highest value drawn); a value on an edge belongs to the range above it."""
    return f"{format_cell(low if math.isinf(left) else left)}-{format_cell(high if math.isinf(right) else right)}"


def marginal_rows(sheet: pd.DataFrame, param_names: Sequence[str]) -> pd.DataFrame:
    """Per ``trained_on``, per hyperparameter, per value or range: how many trials drew it, how many completed or
    were pruned, their mean dev accuracy after epoch 1 (every trial), the complete trials' mean, and the best."""
    finished = sheet[sheet["state"].isin(["COMPLETE", "PRUNED"])].copy()
    finished["complete_dev_accuracy"] = finished["dev_accuracy"].where(finished["state"] == "COMPLETE")
    tables = []
    for trained_on, part in finished.groupby("trained_on", sort=False):
        for name in param_names:
            drawn = part[part[name].notna()]
            if drawn.empty:
                continue
            values = pd.Series(list(drawn[name]), index=drawn.index)  # the drawn values, as their own type
            grouped = drawn.assign(value=_range_labels(values), order=values).groupby("value", sort=False)
            table = grouped.agg(
                order=("order", "min"),  # ranges and numbers in numeric order, choices alphabetically
                trials=("state", "size"),
                complete=("state", lambda states: int((states == "COMPLETE").sum())),
                pruned=("state", lambda states: int((states == "PRUNED").sum())),
                mean_dev_accuracy_epoch_1=("dev_accuracy_epoch_1", "mean"),
                mean_dev_accuracy_complete=("complete_dev_accuracy", "mean"),
                best_dev_accuracy=("dev_accuracy", "max"),
            ).reset_index().sort_values("order", kind="stable")
            tables.append(table.assign(trained_on=trained_on, parameter=name))
    if not tables:
        return pd.DataFrame(columns=MARGINAL_COLUMNS)
    return pd.concat(tables, ignore_index=True)[MARGINAL_COLUMNS]
