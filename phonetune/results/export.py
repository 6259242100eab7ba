"""The ablation sheet: one CSV row per trial of a study and of its linked full-data study, the final model's row,
and a second CSV of marginals, in the column names of the HW1P2 ablation table.

Everything here reads an ``optuna.Study`` and nothing else, so the sheet always shows what the storage holds:
``phonetune export`` opens the study, ``write_ablation_sheet`` turns its trials into rows. A row reads as the model
it trained: hidden layer sizes spelled out (``layer_widths`` such as ``1024-768-512``), hyperparameters the model
does not use left blank (``space_spec.unused_params``), floats at 4 significant digits, ``trained_on`` saying
``subsample`` (a search trial) or ``all`` (a promoted run), ``promoted_from`` the search trial a run retrains. The
marginals CSV summarises each hyperparameter value, numbers in a few readable ranges, and counts pruned trials too:
its ``mean_dev_accuracy_epoch_1`` compares every trial after the one epoch they all reached.

Example::

    study = optuna.load_study(study_name="demo", storage="sqlite:///studies/demo.db")
    result = write_ablation_sheet(study, None, "ablation_sheet.csv")
    print(result.sheet_path, result.marginals_path, result.trial_count)
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import optuna
import pandas as pd
from optuna.trial import FrozenTrial

from phonetune.atomic import atomic_write_text
from phonetune.model.budget import layer_widths
from phonetune.model.config import ModelConfig
from phonetune.search import attributes as attrs
from phonetune.search.records import (
    best_dev_accuracy,
    dev_accuracies,
    dev_accuracy_after,
    epochs_run,
    pruned_at_epoch,
    trial_fidelity,
)
from phonetune.search.space_spec import unused_params

logger = logging.getLogger(__name__)

SEARCH_FIDELITY, FULL_FIDELITY = attrs.SEARCH_FIDELITY, attrs.FULL_FIDELITY

SIGNIFICANT_DIGITS = 4
# A numeric hyperparameter with more distinct values than this is summarised in ranges, not value by value.
MAX_LISTED_VALUES = 5
MARGINAL_RANGES = 4
FINAL_STATE = "FINAL"  # the state column of the final model's row

# Leading columns of the sheet, before the hyperparameters; the measurements follow the hyperparameters.
ID_COLUMNS = ["study", "number", "state", "trained_on", "promoted_from"]
MEASURE_COLUMNS = [
    "layer_widths",
    "param_count",
    "dev_accuracy",  # best over the epochs (the objective of a COMPLETE trial)
    "dev_accuracy_epoch_1",  # after the first epoch: the rung every trial reached, pruned or not
    "last_dev_accuracy",  # after the last epoch the trial ran
    "test_accuracy",  # the final model's row only, when the test split has labels
    "pruned_at_epoch",
    "epochs_run",
    "wall_seconds",
    "frames_per_s",
]
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
# Hyperparameters that the space may derive rather than sample; shown when a trial records them as user attrs.
DERIVED_PARAMS = (attrs.BASE_WIDTH,)


def finished_trials(study: optuna.Study) -> list[FrozenTrial]:
    """The study's finished trials (COMPLETE, PRUNED and FAIL: the sheet shows failures too) in number order."""
    trials = study.get_trials(deepcopy=False)
    return sorted((trial for trial in trials if trial.state.is_finished()), key=lambda trial: trial.number)


def hidden_layer_widths(values: dict[str, Any]) -> str | None:
    """``1024-768-512`` from a row's depth, base width and shape; ``none`` for the single linear layer, None if
    unknown."""
    depth, width = values.get("hidden_layers"), values.get(attrs.BASE_WIDTH)
    if depth is None or (depth and width is None):
        return None
    if depth == 0:
        return "none"
    model = ModelConfig(hidden_layers=int(depth), base_width=int(width),
                        width_shape=values.get("width_shape") or "cylinder")
    return "-".join(str(size) for size in layer_widths(model))


def trial_row(trial: FrozenTrial, study_name: str, default_fidelity: str, param_names: Sequence[str]) -> dict[str, Any]:
    """One sheet row: identity, every hyperparameter in ``param_names`` the model uses, measurements."""
    values = {name: trial.params[name] if name in trial.params else trial.user_attrs.get(name) for name in param_names}
    unused = unused_params(values)
    row: dict[str, Any] = {
        "study": study_name,
        "number": trial.number,
        "state": trial.state.name,
        "trained_on": attrs.TRAINED_ON.get(trial_fidelity(trial, default_fidelity), default_fidelity),
        "promoted_from": trial.user_attrs.get(attrs.SOURCE_TRIAL),
        **{name: None if name in unused else value for name, value in values.items()},
    }
    accuracies = dev_accuracies(trial)
    row.update(
        {
            "layer_widths": hidden_layer_widths(values),
            "param_count": trial.user_attrs.get(attrs.PARAM_COUNT),
            "dev_accuracy": best_dev_accuracy(trial),
            "dev_accuracy_epoch_1": dev_accuracy_after(trial, 1),
            "last_dev_accuracy": accuracies[-1] if accuracies else None,
            "pruned_at_epoch": pruned_at_epoch(trial),
            "epochs_run": epochs_run(trial),
            "wall_seconds": trial.user_attrs.get(attrs.WALL_SECONDS),
            "frames_per_s": trial.user_attrs.get(attrs.FRAMES_PER_S),
        }
    )
    return row


def final_model_row(full_study: optuna.Study, full_rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The final model ``phonetune ensemble`` (or ``run``) chose, as one row: a single run repeats that run's
    hyperparameters; an ensemble names its members in ``promoted_from`` (``13+22+21``)."""
    chosen = full_study.user_attrs.get(attrs.ENSEMBLE_ATTR)
    if not isinstance(chosen, dict) or not chosen.get("members"):
        return None
    members = [int(member) for member in chosen["members"]]
    row: dict[str, Any] = {}
    if chosen.get("chosen") == "single" or len(members) == 1:
        row = dict(next((item for item in full_rows if item.get("promoted_from") == members[0]), {}))
    row.update(
        {
            "study": full_study.study_name,
            "number": None,
            "state": FINAL_STATE,
            "trained_on": attrs.TRAINED_ON[FULL_FIDELITY],
            "promoted_from": "+".join(str(member) for member in members),
            "param_count": chosen.get("param_count"),
            "dev_accuracy": chosen.get("dev_accuracy"),
            "dev_accuracy_epoch_1": None,
            "last_dev_accuracy": None,
            "test_accuracy": chosen.get("test_accuracy"),
            "pruned_at_epoch": None,
            "wall_seconds": None,
            "frames_per_s": None,
        }
    )
    if len(members) > 1:
        row["layer_widths"] = f"ensemble of {len(members)}"
    return row


def parameter_names(trials: Iterable[FrozenTrial]) -> list[str]:
    """Union of sampled parameter names over ``trials`` (sorted), plus derived ones any trial records."""
    trials = list(trials)
    names = sorted({name for trial in trials for name in trial.params})
    for derived in DERIVED_PARAMS:
        if derived not in names and any(derived in trial.user_attrs for trial in trials):
            names.append(derived)
    return names


def ablation_rows(
    search_study: optuna.Study, full_study: optuna.Study | None
) -> tuple[list[str], list[dict[str, Any]]]:
    """Columns and rows of the sheet: the search study's trials, the full-data study's, then the final model."""
    studies: list[tuple[optuna.Study, str]] = [(search_study, SEARCH_FIDELITY)]
    if full_study is not None:
        studies.append((full_study, FULL_FIDELITY))
    all_trials = [trial for study, _ in studies for trial in finished_trials(study)]
    names = parameter_names(all_trials)
    rows = [
        trial_row(trial, study.study_name, fidelity, names)
        for study, fidelity in studies
        for trial in finished_trials(study)
    ]
    if full_study is not None:
        full_rows = [row for row in rows if row["trained_on"] == attrs.TRAINED_ON[FULL_FIDELITY]]
        final = final_model_row(full_study, full_rows)
        if final is not None:
            rows.append(final)
    return ID_COLUMNS + names + MEASURE_COLUMNS, rows


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


def csv_text(frame: pd.DataFrame) -> str:
    return frame.map(format_cell).to_csv(index=False, lineterminator="\n")


def marginals_path_for(sheet_path: str | Path) -> Path:
    """``ablation_sheet.csv`` -> ``ablation_sheet_marginals.csv`` beside it."""
    sheet_path = Path(sheet_path)
    return sheet_path.with_name(f"{sheet_path.stem}_marginals{sheet_path.suffix or '.csv'}")


@dataclass(frozen=True)
class ExportResult:
    sheet_path: Path  # one row per trial, then the final model's
    marginals_path: Path  # one row per (trained_on, hyperparameter, value or range)
    trial_count: int  # trial rows in the sheet
    full_trial_count: int  # of which from the linked full-data study


def write_ablation_sheet(
    search_study: optuna.Study, full_study: optuna.Study | None, out_path: str | Path
) -> ExportResult:
    """Write the per-trial sheet and its marginals CSV atomically; an existing sheet is replaced only on success."""
    columns, rows = ablation_rows(search_study, full_study)
    param_names = columns[len(ID_COLUMNS) : len(columns) - len(MEASURE_COLUMNS)]
    sheet = pd.DataFrame(rows, columns=columns, dtype=object)
    marginals = marginal_rows(sheet, param_names)
    sheet_path = Path(out_path)
    marginals_path = marginals_path_for(sheet_path)
    atomic_write_text(sheet_path, csv_text(sheet))
    atomic_write_text(marginals_path, csv_text(marginals))
    trial_rows = [row for row in rows if row["state"] != FINAL_STATE]
    full_count = sum(row["trained_on"] == attrs.TRAINED_ON[FULL_FIDELITY] for row in trial_rows)
    logger.debug("wrote %d rows to %s and %d marginal rows to %s", len(rows), sheet_path, len(marginals),
                marginals_path)
    return ExportResult(sheet_path, marginals_path, len(trial_rows), full_count)
