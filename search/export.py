"""The ablation sheet: one CSV row per trial of a study (and of its linked full-data study), plus marginals.

Everything here reads an ``optuna.Study`` and nothing else, so the sheet always shows what the storage holds:
``phonetune export`` opens the study, ``write_ablation_sheet`` turns its trials into rows, and a second CSV
beside it summarises each hyperparameter value (how many trials drew it, their mean and best dev accuracy).

Example::

    study = optuna.load_study(study_name="demo", storage="sqlite:///studies/demo.db")
    result = write_ablation_sheet(study, None, "ablation_sheet.csv")
    print(result.sheet_path, result.marginals_path, result.trial_count)
"""

from __future__ import annotations

import csv
import io
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Sequence

import optuna
from optuna.trial import FrozenTrial, TrialState

from phonetune.atomic import atomic_write_text
from phonetune.search import attributes as attrs
from phonetune.search.study import open_full_study, open_study, storage_for

if TYPE_CHECKING:
    from phonetune.search.config import StudyConfig

logger = logging.getLogger(__name__)

SEARCH_FIDELITY, FULL_FIDELITY = attrs.SEARCH_FIDELITY, attrs.FULL_FIDELITY

# Numeric parameters with more distinct values than this are summarised by quantile bins, not value by value.
MAX_DISCRETE_VALUES = 12
MARGINAL_BINS = 4

# Leading columns of the sheet, before the hyperparameters; the measurements follow the hyperparameters.
ID_COLUMNS = ["study", "number", "state", "fidelity", "source_trial"]
MEASURE_COLUMNS = [
    "param_count",
    "best_dev_accuracy",
    "final_dev_accuracy",
    "pruned_at_epoch",
    "epochs_run",
    "wall_seconds",
    "frames_per_s",
]
MARGINAL_COLUMNS = [
    "fidelity",
    "parameter",
    "value",
    "trials",
    "complete",
    "pruned",
    "mean_best_dev_accuracy",
    "best_dev_accuracy",
]
# Hyperparameters that the space may derive rather than sample; shown when a trial records them as user attrs.
DERIVED_PARAMS = (attrs.BASE_WIDTH,)


def open_studies(config: "StudyConfig") -> tuple[optuna.Study, optuna.Study | None]:
    """The study's search trials and, when ``phonetune promote`` has run, its linked full-data study.

    Raises StorageError (listing the stored studies) when the search study does not exist.
    """
    storage = storage_for(config, must_exist=True)
    return open_study(config, SEARCH_FIDELITY, storage=storage), open_full_study(config, storage)


def epoch_curve(trial: FrozenTrial) -> list[dict[str, Any]]:
    """Per-epoch metrics of a trial, oldest first.

    The objective records them as the ``curves`` user attr (a list of dicts with at least ``epoch`` and
    ``dev_accuracy``); trials without it fall back to the values reported to Optuna, so a trial recorded by any
    objective still draws a curve.
    """
    curves = trial.user_attrs.get(attrs.CURVES)
    if isinstance(curves, list) and curves:
        return [dict(point) for point in curves if isinstance(point, dict)]
    return [
        {"epoch": int(step), "dev_accuracy": float(value)}
        for step, value in sorted(trial.intermediate_values.items())
    ]


def dev_accuracies(trial: FrozenTrial) -> list[float]:
    """Dev accuracy after each epoch the trial ran."""
    return [float(point["dev_accuracy"]) for point in epoch_curve(trial) if point.get("dev_accuracy") is not None]


def best_dev_accuracy(trial: FrozenTrial) -> float | None:
    """The trial's objective value when complete, else the best dev accuracy it reached before it stopped."""
    if trial.state == TrialState.COMPLETE and trial.value is not None:
        return float(trial.value)
    accuracies = dev_accuracies(trial)
    return max(accuracies) if accuracies else None


def pruned_at_epoch(trial: FrozenTrial) -> int | None:
    """Epoch after which the pruner stopped the trial (None unless pruned)."""
    if trial.state != TrialState.PRUNED:
        return None
    recorded = trial.user_attrs.get(attrs.PRUNED_AT_EPOCH)
    if recorded is not None:
        return int(recorded)
    curve = epoch_curve(trial)
    return int(curve[-1]["epoch"]) if curve else None


def epochs_run(trial: FrozenTrial) -> int:
    recorded = trial.user_attrs.get(attrs.EPOCHS_RUN)
    if recorded is not None:
        return int(recorded)
    return len(epoch_curve(trial))


def trial_fidelity(trial: FrozenTrial, default: str) -> str:
    return str(trial.user_attrs.get(attrs.FIDELITY, default))


def finished_trials(study: optuna.Study) -> list[FrozenTrial]:
    """The study's finished trials (COMPLETE, PRUNED and FAIL: the sheet shows failures too) in number order."""
    trials = study.get_trials(deepcopy=False)
    return sorted((trial for trial in trials if trial.state.is_finished()), key=lambda trial: trial.number)


def _format(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if math.isnan(value) else repr(value)
    return value


def trial_row(trial: FrozenTrial, study_name: str, default_fidelity: str, param_names: Sequence[str]) -> dict[str, Any]:
    """One sheet row: identity, every hyperparameter in ``param_names`` (blank when not drawn), measurements."""
    row: dict[str, Any] = {
        "study": study_name,
        "number": trial.number,
        "state": trial.state.name,
        "fidelity": trial_fidelity(trial, default_fidelity),
        "source_trial": trial.user_attrs.get(attrs.SOURCE_TRIAL),
    }
    for name in param_names:
        if name in trial.params:
            row[name] = trial.params[name]
        else:
            row[name] = trial.user_attrs.get(name)
    final = dev_accuracies(trial)
    row.update(
        {
            "param_count": trial.user_attrs.get(attrs.PARAM_COUNT),
            "best_dev_accuracy": best_dev_accuracy(trial),
            "final_dev_accuracy": final[-1] if final else None,
            "pruned_at_epoch": pruned_at_epoch(trial),
            "epochs_run": epochs_run(trial),
            "wall_seconds": trial.user_attrs.get(attrs.WALL_SECONDS),
            "frames_per_s": trial.user_attrs.get(attrs.FRAMES_PER_S),
        }
    )
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
    """Columns and rows of the sheet: the search study's trials, then the full-data study's."""
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
    return ID_COLUMNS + names + MEASURE_COLUMNS, rows


def _value_groups(values: list[Any]) -> list[tuple[str, Any]]:
    """Group keys for a parameter's values: each value itself, or a quantile bin for many-valued numbers."""
    present = [value for value in values if value is not None]
    numeric = all(isinstance(value, (int, float)) and not isinstance(value, bool) for value in present)
    # A float drawn from a continuous range almost never repeats, so its values are binned as soon as there are
    # more of them than bins; integers (depth, context) stay value by value up to MAX_DISCRETE_VALUES.
    continuous = numeric and any(isinstance(value, float) for value in present)
    distinct = len(set(present))
    if not numeric or distinct <= (MARGINAL_BINS if continuous else MAX_DISCRETE_VALUES):
        return [(str(value), value) for value in values]
    ordered = sorted(present)
    edges = [ordered[min(len(ordered) - 1, (len(ordered) * step) // MARGINAL_BINS)] for step in range(MARGINAL_BINS)]
    edges.append(ordered[-1])
    groups = []
    for value in values:
        if value is None:
            groups.append(("None", None))
            continue
        index = max(i for i in range(MARGINAL_BINS) if value >= edges[i])
        groups.append((f"[{edges[index]:.4g}, {edges[index + 1]:.4g}]", (edges[index], edges[index + 1])))
    return groups


def marginal_rows(rows: list[dict[str, Any]], param_names: Sequence[str]) -> list[dict[str, Any]]:
    """Per fidelity, per hyperparameter, per value (or bin): trial count, mean and best of best dev accuracy.

    Only COMPLETE and PRUNED trials count; the mean is over complete trials alone, because a pruned trial's
    accuracy was cut short and would drag a value's mean down for reasons other than the value itself.
    """
    summary: list[dict[str, Any]] = []
    for fidelity in sorted({row["fidelity"] for row in rows}, key=lambda f: (f != SEARCH_FIDELITY, f)):
        finished = [
            row for row in rows if row["fidelity"] == fidelity and row["state"] in ("COMPLETE", "PRUNED")
        ]
        for name in param_names:
            drawn = [row for row in finished if row.get(name) is not None]
            if not drawn:
                continue
            groups = _value_groups([row[name] for row in drawn])
            labels: dict[str, list[dict[str, Any]]] = {}
            sort_keys: dict[str, Any] = {}
            for (label, key), row in zip(groups, drawn):
                labels.setdefault(label, []).append(row)
                sort_keys[label] = key
            for label in sorted(labels, key=lambda lab: _sortable(sort_keys[lab])):
                members = labels[label]
                complete = [row["best_dev_accuracy"] for row in members if row["state"] == "COMPLETE"]
                complete = [value for value in complete if value is not None]
                reached = [row["best_dev_accuracy"] for row in members if row["best_dev_accuracy"] is not None]
                summary.append(
                    {
                        "fidelity": fidelity,
                        "parameter": name,
                        "value": label,
                        "trials": len(members),
                        "complete": sum(row["state"] == "COMPLETE" for row in members),
                        "pruned": sum(row["state"] == "PRUNED" for row in members),
                        "mean_best_dev_accuracy": sum(complete) / len(complete) if complete else None,
                        "best_dev_accuracy": max(reached) if reached else None,
                    }
                )
    return summary


def _sortable(key: Any) -> tuple:
    if isinstance(key, tuple):
        return (0, key[0], "")
    if isinstance(key, (int, float)) and not isinstance(key, bool):
        return (0, key, "")
    return (1, 0, str(key))


def csv_text(columns: Sequence[str], rows: Iterable[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({column: _format(row.get(column)) for column in columns})
    return buffer.getvalue()


def marginals_path_for(sheet_path: str | Path) -> Path:
    """``ablation_sheet.csv`` -> ``ablation_sheet_marginals.csv`` beside it."""
    sheet_path = Path(sheet_path)
    return sheet_path.with_name(f"{sheet_path.stem}_marginals{sheet_path.suffix or '.csv'}")


@dataclass(frozen=True)
class ExportResult:
    sheet_path: Path  # one row per trial
    marginals_path: Path  # one row per (fidelity, hyperparameter, value)
    trial_count: int  # rows in the sheet
    full_trial_count: int  # of which from the linked full-data study


def write_ablation_sheet(
    search_study: optuna.Study, full_study: optuna.Study | None, out_path: str | Path
) -> ExportResult:
    """Write the per-trial sheet and its marginals CSV atomically; an existing sheet is replaced only on success."""
    columns, rows = ablation_rows(search_study, full_study)
    param_names = columns[len(ID_COLUMNS) : len(columns) - len(MEASURE_COLUMNS)]
    marginals = marginal_rows(rows, param_names)
    sheet_path = Path(out_path)
    marginals_path = marginals_path_for(sheet_path)
    atomic_write_text(sheet_path, csv_text(columns, rows))
    atomic_write_text(marginals_path, csv_text(MARGINAL_COLUMNS, marginals))
    full_count = sum(row["fidelity"] == FULL_FIDELITY for row in rows)
    logger.info("wrote %d trial rows to %s and %d marginal rows to %s", len(rows), sheet_path, len(marginals), marginals_path)
    return ExportResult(sheet_path, marginals_path, len(rows), full_count)
