"""How numbers read wherever a person reads them: the sheet's cells, the report's parameter lists, plot ticks.

A float a person reads has 4 significant digits and no e-notation (``0.1465``, not ``0.14649245603031288``);
logarithmic axes are labelled at 1, 2 and 5 times each power of ten, every label a whole number
(``0.0005 0.001 0.002``), never plotly's bare mantissas between the decades (``4 5 6 7 8 9 0.001 2 3``).

Example::

    format_cell(0.14649245603031288)   # '0.1465'
    log_ticks(3e-4, 1e-2)              # ([0.0005, 0.001, ...], ['0.0005', '0.001', ...])
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np
import pandas as pd

SIGNIFICANT_DIGITS = 4
LOG_TICK_MANTISSAS = (1, 2, 5)


def format_cell(value: Any) -> str:
    """A CSV cell: blank for missing, floats at ``SIGNIFICANT_DIGITS`` significant digits, never in e-notation."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return ""
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        if float(value).is_integer() and abs(value) < 10**SIGNIFICANT_DIGITS:
            return str(int(value))
        return np.format_float_positional(float(value), precision=SIGNIFICANT_DIGITS, unique=True,
                                          fractional=False, trim="-")
    return str(value)


def format_params(params: Mapping[str, Any]) -> str:
    """``name=value`` pairs in name order, numbers as the sheet writes them."""
    return ", ".join(f"{name}={format_cell(value)}" for name, value in sorted(params.items()))


def _tick_label(value: float) -> str:
    if value >= 1000:
        for size, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
            if value >= size:
                return f"{value / size:g}{suffix}"
    return format_cell(float(value))


def log_ticks(low: float, high: float, most: int = 0) -> tuple[list[float], list[str]]:
    """Tick positions at 1, 2 and 5 times each power of ten within [low, high], and their labels (``0.002``,
    ``500k``, ``2M``); with more than ``most`` of them (when set), 1 and 5 only, then the decades, then every
    other decade or fewer; at least two ticks (the decades around the range when it holds fewer)."""
    if not (low > 0 and high >= low):
        return [], []
    exponents = range(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1)
    for mantissas in (LOG_TICK_MANTISSAS, (1, 5), (1,)):
        values = [mantissa * 10.0**exponent for exponent in exponents for mantissa in mantissas]
        inside = [value for value in values if low * (1 - 1e-9) <= value <= high * (1 + 1e-9)]
        if not most or len(inside) <= most:
            break
    if most and len(inside) > most:
        inside = inside[::math.ceil(len(inside) / most)]
    if len(inside) < 2:
        inside = [10.0 ** math.floor(math.log10(low)), 10.0 ** (math.floor(math.log10(low)) + 1)]
    rounded = [float(f"{value:.1g}") for value in inside]
    return rounded, [_tick_label(value) for value in rounded]
