"""The leaderboard: every final model a study trained, best on dev first, as AutoGluon's ``leaderboard()`` reads.

One row per completed full-data run (``phonetune run``'s final run, ``phonetune promote``'s runs) and one for the
ensemble when the final-model step chose one: its parameters, epochs (fractional: a run timed to a deadline stops
inside an epoch), wall time, dev accuracy, test accuracy when the test split has labels (every row by its own
argmax, so rows compare models; a submission decoded as phoneme sequences is scored on a line of its own), and
where it came from (the ``[[warm_start]]`` table, the trial a mutation started from, or the sampler).
``phonetune leaderboard`` prints it, ``phonetune run`` prints it last, and the report shows it as a table.

Example::

    search_study, full_study = open_studies(load_study_config("studies/demo.toml"))
    print(format_leaderboard(leaderboard(search_study, full_study)))
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any, Mapping

import optuna
from optuna.trial import FrozenTrial, TrialState

from phonetune.search import attributes as attrs
from phonetune.search.records import epoch_curve, epochs_run

COLUMNS = ("rank", "model", "from", "params", "epochs", "wall_s", "dev_accuracy", "test_accuracy", "final")


@dataclass(frozen=True)
class LeaderboardRow:
    model: str  # "run of trial 7" (a full-data run of search trial 7) or "ensemble of 7+3"
    origin: str  # the warm start, "mutation of trial N", "sampler", or how an ensemble was picked
    param_count: int | None
    epochs: float | None  # passes over the training data (summed over an ensemble's members)
    wall_seconds: float | None  # training time, resumes included (summed over an ensemble's members)
    dev_accuracy: float | None
    test_accuracy: float | None  # None without test labels
    final: bool  # the model phonetune run / ensemble submitted

    def cells(self, rank: int) -> dict[str, str]:
        """The row as the terminal and the report write it."""
        return {
            "rank": str(rank),
            "model": self.model,
            "from": self.origin,
            "params": f"{self.param_count:,}" if self.param_count is not None else "-",
            "epochs": f"{self.epochs:.2f}" if self.epochs is not None else "-",
            "wall_s": f"{self.wall_seconds:.0f}" if self.wall_seconds is not None else "-",
            "dev_accuracy": f"{self.dev_accuracy:.4f}" if self.dev_accuracy is not None else "-",
            "test_accuracy": f"{self.test_accuracy:.4f}" if self.test_accuracy is not None else "-",
            "final": "yes" if self.final else "",
        }


def trial_origin(trial: FrozenTrial | None) -> str:
    """Where a search trial came from: its ``[[warm_start]]`` name, ``lr up of trial N`` (a move),
    ``mutation of trial N`` or ``sampler``."""
    if trial is None:
        return "-"
    if trial.user_attrs.get(attrs.WARM_START):
        return f"warm start {trial.user_attrs[attrs.WARM_START]}"
    if trial.user_attrs.get(attrs.MUTATED_FROM) is not None:
        kind = trial.user_attrs.get(attrs.MOVE) or "mutation"
        return f"{kind} of trial {trial.user_attrs[attrs.MUTATED_FROM]}"
    return "sampler"


def epochs_trained(trial: FrozenTrial) -> float:
    """Passes over the training split a trial made: the last evaluation's fractional count when recorded (runs
    timed in steps), else its whole epochs."""
    curve = epoch_curve(trial)
    done = curve[-1].get("epochs_done") if curve else None
    return float(done) if done else float(epochs_run(trial))


def final_model_record(full_study: optuna.Study | None) -> dict[str, Any]:
    """The final model the ensemble step recorded on the full-data study, or {} before there is one."""
    record = full_study.user_attrs.get(attrs.ENSEMBLE_ATTR) if full_study is not None else None
    return record if isinstance(record, dict) and record.get("members") else {}


def by_trial(values: Mapping[Any, Any] | None) -> dict[int, Any]:
    """A per-trial mapping as the storage gives it back (JSON: keys are strings), keyed by trial number."""
    return {int(number): value for number, value in (values or {}).items()}


def run_test_accuracies(final: Mapping[str, Any]) -> dict[int, float]:
    """Search trial number -> test accuracy of its full-data run, from the final model's record (a study from
    before per-run scoring: only a single chosen run's, which is the final model's)."""
    accuracies = by_trial(final.get("member_test_accuracy"))
    members = [int(member) for member in final.get("members", [])]
    if len(members) == 1 and final_argmax_test_accuracy(final) is not None:
        accuracies.setdefault(members[0], final_argmax_test_accuracy(final))
    return accuracies


def final_argmax_test_accuracy(final: Mapping[str, Any]) -> float | None:
    """The final model's test accuracy by each frame's argmax, as every run's row is scored: the submission's own
    (``test_accuracy``) may be decoded as phoneme sequences (``model/decode.py``), which no single run's row is."""
    return final.get("test_argmax_accuracy", final.get("test_accuracy"))


def leaderboard(search_study: optuna.Study, full_study: optuna.Study | None) -> list[LeaderboardRow]:
    """Every completed full-data run and the chosen ensemble, best dev accuracy first (ties: the final model)."""
    if full_study is None:
        return []
    sources = {trial.number: trial for trial in search_study.get_trials(deepcopy=False)}
    final = final_model_record(full_study)
    members = [int(member) for member in final.get("members", [])]
    test_of = run_test_accuracies(final)
    rows: list[LeaderboardRow] = []
    runs: dict[int, LeaderboardRow] = {}
    for trial in full_study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        source = trial.user_attrs.get(attrs.SOURCE_TRIAL)
        if source is None:
            continue
        runs[int(source)] = LeaderboardRow(
            model=f"run of trial {source}", origin=trial_origin(sources.get(int(source))),
            param_count=trial.user_attrs.get(attrs.PARAM_COUNT), epochs=epochs_trained(trial),
            wall_seconds=trial.user_attrs.get(attrs.WALL_SECONDS), dev_accuracy=trial.value,
            test_accuracy=test_of.get(int(source)), final=members == [int(source)],
        )
    rows.extend(runs.values())
    if len(members) > 1:
        parts = [runs[member] for member in members if member in runs]
        rows.append(LeaderboardRow(
            model=f"ensemble of {'+'.join(map(str, members))}", origin="greedy selection on dev",
            param_count=final.get("param_count"),
            epochs=sum(part.epochs or 0.0 for part in parts) if parts else None,
            wall_seconds=sum(part.wall_seconds or 0.0 for part in parts) if parts else None,
            dev_accuracy=final.get("dev_accuracy"), test_accuracy=final_argmax_test_accuracy(final), final=True,
        ))
    return sorted(rows, key=lambda row: (-(row.dev_accuracy or 0.0), not row.final))


def format_leaderboard(rows: list[LeaderboardRow]) -> str:
    """A fixed-width table for the terminal, one line per row under a header; a sentence when there is none."""
    if not rows:
        return "leaderboard: no final model yet (run `phonetune run`, or `phonetune promote` then `ensemble`)"
    table = [dict(zip(COLUMNS, COLUMNS))] + [row.cells(rank) for rank, row in enumerate(rows, start=1)]
    widths = {column: max(len(cells[column]) for cells in table) for column in COLUMNS}
    text = {"model", "from", "final"}  # left-aligned; numbers right-aligned
    lines = ["  ".join(cells[column].ljust(widths[column]) if column in text else cells[column].rjust(widths[column])
                       for column in COLUMNS).rstrip() for cells in table]
    return "leaderboard (final models, best dev accuracy first):\n" + "\n".join(lines)


def leaderboard_html(rows: list[LeaderboardRow]) -> str:
    """The same table for the report page."""
    if not rows:
        return ('<p class="note">No final model yet: run <code>phonetune run</code>, or <code>phonetune '
                'promote</code> then <code>phonetune ensemble</code>.</p>')
    head = "".join(f"<th>{html.escape(column)}</th>" for column in COLUMNS)
    body = "".join(
        "<tr" + (' class="final"' if row.final else "") + ">"
        + "".join(f"<td>{html.escape(value)}</td>" for value in row.cells(rank).values()) + "</tr>"
        for rank, row in enumerate(rows, start=1)
    )
    return f'<table class="leaderboard"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
