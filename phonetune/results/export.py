"""The ablation sheet: one CSV row per trial of a study and of its linked full-data study, the final model's row,
a second CSV of marginals (``marginals.py``), in the column names of the HW1P2 ablation table, and a third of the
single changes the study compared (``*_changes.csv``: a trial against the one it moved one hyperparameter of), the
table a writeup pastes.

Everything here reads an ``optuna.Study`` and nothing else, so the sheet always shows what the storage holds:
``phonetune export`` opens the study, ``write_ablation_sheet`` turns its trials into rows. A row reads as the HW1P2
table does: where it came from (``warm_start``, ``mutated_from``, ``promoted_from``), then the architecture
together (depth, base width, the hidden layer sizes spelled out as ``layer_widths`` such as ``1024-768-512``, shape,
activation, batch norm, dropout, init, ``param_count``), the data (context, ``normalization``, ``train_share`` of
the training utterances, masking), the training settings, then the results: train loss and accuracy and dev loss at
the best dev epoch, dev accuracy, test accuracy on every row that has it (``phonetune ensemble`` scores each final
run when the test split has labels), epochs and time. The space's internal parameters (``width_fraction``,
``<name>_on`` switches) come last. Hyperparameters the model does not use are blank (``space_spec.unused_params``),
floats have 4 significant digits, ``trained_on`` says ``subsample`` or ``all`` (a promoted run, or a search trial
trained on all the data such as ``phonetune run``'s time-boxed ones),
``promoted_from`` the search trial a run retrains.

Example::

    study = optuna.load_study(study_name="demo", storage="sqlite:///studies/demo.db")
    result = write_ablation_sheet(study, None, "ablation_sheet.csv")
    print(result.sheet_path, result.marginals_path, result.trial_count)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import optuna
import pandas as pd
from optuna.trial import FrozenTrial

from phonetune.atomic import atomic_write_text
from phonetune.model.params import layer_widths
from phonetune.model.config import ModelConfig
from phonetune.results.formatting import format_cell
from phonetune.results.leaderboard import final_model_record, run_test_accuracies
from phonetune.results.marginals import marginal_rows
from phonetune.data_pipeline.config import TRAINED_ON_ALL, TRAINED_ON_SUBSAMPLE
from phonetune.search import attributes as attrs
from phonetune.search.records import (
    best_dev_accuracy,
    best_epoch_point,
    dev_accuracies,
    dev_accuracy_after,
    epochs_run,
    pruned_at_epoch,
    training_data_of,
    trial_fidelity,
)
from phonetune.search.space_spec import HYPERPARAMETERS, unused_params

logger = logging.getLogger(__name__)

SEARCH_FIDELITY, FULL_FIDELITY = attrs.SEARCH_FIDELITY, attrs.FULL_FIDELITY

FINAL_STATE = "FINAL"  # the state column of the final model's row

# Where a row came from, before its hyperparameters.
ID_COLUMNS = ["study", "number", "state", "trained_on", "promoted_from", "warm_start", "mutated_from", "move"]
# Columns the sheet derives, placed among the hyperparameters of their group.
ARCHITECTURE_COLUMNS = ["layer_widths", "param_count"]  # after the model's hyperparameters
DATA_COLUMNS = ["normalization", "train_share"]  # after context_frames
RESULT_COLUMNS = [
    "train_loss",  # at the best dev epoch (label smoothing included), as train_accuracy and dev_loss
    "train_accuracy",
    "dev_loss",
    "dev_accuracy",  # best over the epochs (the objective of a COMPLETE trial)
    "dev_accuracy_epoch_1",  # after the first epoch: the rung every trial reached, pruned or not
    "last_dev_accuracy",  # after the last epoch the trial ran
    "test_accuracy",  # final runs and the final model, when the test split has labels
    "pruned_at_epoch",
    "epochs_run",
    "wall_seconds",
    "frames_per_s",
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


@dataclass(frozen=True)
class SheetContext:
    """What a row needs besides its own trial, read once per sheet from the studies."""

    sources: dict[int, FrozenTrial]  # the search trials by number: where a full-data run came from
    test_accuracy: dict[int, float]  # search trial number -> test accuracy of its full-data run (labelled test)
    training_data: dict[str, dict[str, Any]]  # fidelity -> {"normalization", "train_fraction"} of its study

    @classmethod
    def of(cls, search_study: optuna.Study, full_study: optuna.Study | None) -> "SheetContext":
        test_accuracy = run_test_accuracies(final_model_record(full_study))
        search_data = training_data_of(search_study)
        training_data = {SEARCH_FIDELITY: search_data}
        if full_study is not None:
            # A full-data study from before the record trained as its search study did, on a share unknown here.
            training_data[FULL_FIDELITY] = training_data_of(full_study) or {
                "normalization": search_data.get("normalization")}
        sources = {trial.number: trial for trial in search_study.get_trials(deepcopy=False)}
        return cls(sources, test_accuracy, training_data)


def trial_row(trial: FrozenTrial, study_name: str, default_fidelity: str, param_names: Sequence[str],
              context: SheetContext) -> dict[str, Any]:
    """One sheet row: identity and origin, every hyperparameter in ``param_names`` the model uses, results."""
    values = {name: trial.params[name] if name in trial.params else trial.user_attrs.get(name) for name in param_names}
    unused = unused_params(values)
    fidelity = trial_fidelity(trial, default_fidelity)
    source = trial.user_attrs.get(attrs.SOURCE_TRIAL)
    origin = context.sources.get(int(source), trial) if source is not None else trial
    data = context.training_data.get(fidelity, {})
    best = best_epoch_point(trial)
    accuracies = dev_accuracies(trial)
    return {
        "study": study_name,
        "number": trial.number,
        "state": trial.state.name,
        # What the run really trained on: a time-boxed screen trial of phonetune run trains on all the data.
        "trained_on": (attrs.TRAINED_ON.get(fidelity, default_fidelity) if data.get("train_fraction") is None
                       else TRAINED_ON_ALL if data["train_fraction"] >= 1.0 else TRAINED_ON_SUBSAMPLE),
        "promoted_from": source,
        "warm_start": origin.user_attrs.get(attrs.WARM_START),
        "mutated_from": origin.user_attrs.get(attrs.MUTATED_FROM),
        "move": origin.user_attrs.get(attrs.MOVE),
        **{name: None if name in unused else value for name, value in values.items()},
        "layer_widths": hidden_layer_widths(values),
        "param_count": trial.user_attrs.get(attrs.PARAM_COUNT),
        "normalization": data.get("normalization"),
        "train_share": data.get("train_fraction"),
        "train_loss": best.get("train_loss"),
        "train_accuracy": best.get("train_accuracy"),
        "dev_loss": best.get("dev_loss"),
        "dev_accuracy": best_dev_accuracy(trial),
        "dev_accuracy_epoch_1": dev_accuracy_after(trial, 1),
        "last_dev_accuracy": accuracies[-1] if accuracies else None,
        "test_accuracy": context.test_accuracy.get(int(source)) if source is not None else None,
        "pruned_at_epoch": pruned_at_epoch(trial),
        "epochs_run": epochs_run(trial),
        "wall_seconds": trial.user_attrs.get(attrs.WALL_SECONDS),
        "frames_per_s": trial.user_attrs.get(attrs.FRAMES_PER_S),
    }


def final_model_row(full_study: optuna.Study, full_rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The final model ``phonetune ensemble`` (or ``run``) chose, as one row: a single run repeats that run's
    hyperparameters; an ensemble names its members in ``promoted_from`` (``13+22+21``)."""
    chosen = final_model_record(full_study)
    if not chosen:
        return None
    members = [int(member) for member in chosen["members"]]
    row: dict[str, Any] = {}
    if chosen.get("chosen") == "single" or len(members) == 1:
        row = dict(next((item for item in full_rows if item.get("promoted_from") == members[0]), {}))
    row.update({
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
    })
    if len(members) > 1:
        row.update({"layer_widths": f"ensemble of {len(members)}", "warm_start": None, "mutated_from": None,
                    "train_loss": None, "train_accuracy": None, "dev_loss": None})
    return row


def parameter_names(trials: Iterable[FrozenTrial]) -> list[str]:
    """Union of sampled parameter names over ``trials`` (sorted), plus derived ones any trial records."""
    trials = list(trials)
    names = sorted({name for trial in trials for name in trial.params})
    for derived in DERIVED_PARAMS:
        if derived not in names and any(derived in trial.user_attrs for trial in trials):
            names.append(derived)
    return names


def sheet_columns(param_names: Sequence[str]) -> list[str]:
    """The HW1P2 table's order: origin, architecture, data, training, results, then the space's internal
    parameters (those not in ``HYPERPARAMETERS``: ``width_fraction``, ``<name>_on``)."""
    order = list(HYPERPARAMETERS)
    groups: dict[str, list[str]] = {"model": [], "data": [], "train": []}
    for name in sorted((name for name in param_names if name in HYPERPARAMETERS), key=order.index):
        groups[HYPERPARAMETERS[name].section].append(name)
    internal = [name for name in param_names if name not in HYPERPARAMETERS]
    data = groups["data"]
    after_context = data.index("context_frames") + 1 if "context_frames" in data else 0
    data = data[:after_context] + DATA_COLUMNS + data[after_context:]
    return [*ID_COLUMNS, *groups["model"], *ARCHITECTURE_COLUMNS, *data, *groups["train"], *RESULT_COLUMNS,
            *internal]


def ablation_rows(
    search_study: optuna.Study, full_study: optuna.Study | None
) -> tuple[list[str], list[str], list[dict[str, Any]]]:
    """Columns, parameter names and rows of the sheet: the search study's trials, the full-data study's, then the
    final model."""
    studies: list[tuple[optuna.Study, str]] = [(search_study, SEARCH_FIDELITY)]
    if full_study is not None:
        studies.append((full_study, FULL_FIDELITY))
    all_trials = [trial for study, _ in studies for trial in finished_trials(study)]
    names = parameter_names(all_trials)
    context = SheetContext.of(search_study, full_study)
    rows = [
        trial_row(trial, study.study_name, fidelity, names, context)
        for study, fidelity in studies
        for trial in finished_trials(study)
    ]
    if full_study is not None:
        full_rows = [row for row in rows if row["study"] == full_study.study_name]
        final = final_model_row(full_study, full_rows)
        if final is not None:
            rows.append(final)
    return sheet_columns(names), names, rows


def csv_text(frame: pd.DataFrame) -> str:
    return frame.map(format_cell).to_csv(index=False, lineterminator="\n")


# The writeup's table: one row per single change the study compared (a move of the prior sampler: the trial it
# started from with one hyperparameter changed), both trained the same way and judged the same way.
CHANGE_COLUMNS = ["parameter", "from", "to", "trial", "from_trial", "dev_accuracy", "from_dev_accuracy",
                  "change_points", "scheduler"]


def change_rows(search_study: optuna.Study) -> list[dict[str, Any]]:
    """Each COMPLETE trial that moved one hyperparameter of another COMPLETE trial, against that trial, best gain
    first; a retried trial counts once (its last attempt)."""
    complete = {trial.number: trial for trial in search_study.get_trials(deepcopy=False)
                if trial.state == optuna.trial.TrialState.COMPLETE and trial.value is not None}
    rows = []
    for trial in complete.values():
        move, parent = trial.user_attrs.get(attrs.MOVE), complete.get(trial.user_attrs.get(attrs.MUTATED_FROM))
        if not move or parent is None:
            continue
        name = move.split(" ", 1)[0]
        rows.append({
            "parameter": name, "from": parent.params.get(name), "to": trial.params.get(name),
            "trial": trial.number, "from_trial": parent.number, "dev_accuracy": trial.value,
            "from_dev_accuracy": parent.value, "change_points": 100 * (trial.value - parent.value),
            "scheduler": trial.params.get("scheduler"),
        })
    return sorted(rows, key=lambda row: (-row["change_points"], row["trial"]))


def changes_path_for(sheet_path: str | Path) -> Path:
    """``ablation_sheet.csv`` -> ``ablation_sheet_changes.csv`` beside it."""
    sheet_path = Path(sheet_path)
    return sheet_path.with_name(f"{sheet_path.stem}_changes{sheet_path.suffix or '.csv'}")


def marginals_path_for(sheet_path: str | Path) -> Path:
    """``ablation_sheet.csv`` -> ``ablation_sheet_marginals.csv`` beside it."""
    sheet_path = Path(sheet_path)
    return sheet_path.with_name(f"{sheet_path.stem}_marginals{sheet_path.suffix or '.csv'}")


@dataclass(frozen=True)
class ExportResult:
    sheet_path: Path  # one row per trial, then the final model's
    marginals_path: Path  # one row per (trained_on, hyperparameter, value or range)
    changes_path: Path  # one row per single change compared (a move against the trial it started from)
    trial_count: int  # trial rows in the sheet
    full_trial_count: int  # of which from the linked full-data study


def write_ablation_sheet(
    search_study: optuna.Study, full_study: optuna.Study | None, out_path: str | Path
) -> ExportResult:
    """Write the per-trial sheet and its marginals CSV atomically; an existing sheet is replaced only on success."""
    columns, param_names, rows = ablation_rows(search_study, full_study)
    sheet = pd.DataFrame(rows, columns=columns, dtype=object)
    marginals = marginal_rows(sheet, param_names)
    sheet_path = Path(out_path)
    marginals_path = marginals_path_for(sheet_path)
    atomic_write_text(sheet_path, csv_text(sheet))
    atomic_write_text(marginals_path, csv_text(marginals))
    changes_path = changes_path_for(sheet_path)
    atomic_write_text(changes_path, csv_text(pd.DataFrame(change_rows(search_study), columns=CHANGE_COLUMNS,
                                                          dtype=object)))
    trial_rows = [row for row in rows if row["state"] != FINAL_STATE]
    full_count = sum(row["promoted_from"] is not None for row in trial_rows)
    logger.debug("wrote %d rows to %s and %d marginal rows to %s", len(rows), sheet_path, len(marginals),
                marginals_path)
    return ExportResult(sheet_path, marginals_path, changes_path, len(trial_rows), full_count)
