"""What a search shows on the terminal: one line per finished trial (``trial_line``) and the trials running now
(``running_line``), for the parent's progress bar and the workers' logs."""

from __future__ import annotations

from typing import Sequence

from optuna.trial import FrozenTrial, TrialState

from phonetune.search import attributes as attrs
from phonetune.search.ranking import best_trial

# Parameters shown in a trial's log line, in this order, when the trial sampled them.
SUMMARY_PARAMS = ("hidden_layers", "width_shape", "activation", "context_frames", "batchnorm", "dropout",
                  "optimizer", "lr", "batch_size", "scheduler")


def trial_line(trial: FrozenTrial) -> str:
    """One log line for a finished trial: number, state, value, epochs and the main hyperparameters."""
    params = trial.params
    shown = []
    for name in SUMMARY_PARAMS:
        if name in params:
            value = params[name]
            shown.append(f"{name}={value:.3g}" if isinstance(value, float) else f"{name}={value}")
    if attrs.BASE_WIDTH in trial.user_attrs:
        shown.insert(1, f"base_width={trial.user_attrs[attrs.BASE_WIDTH]}")
    value = trial.value if trial.state == TrialState.COMPLETE else trial.user_attrs.get(attrs.BEST_DEV_ACCURACY)
    value_text = f"{value:.4f}" if isinstance(value, (int, float)) else "-"
    epochs = trial.user_attrs.get(attrs.EPOCHS_RUN, 0)
    retried = trial.user_attrs.get(attrs.RETRIED_FROM)
    extra = f" (retry of {retried})" if retried is not None else ""
    return (
        f"trial {trial.number:>3} {trial.state.name:<8} dev_acc={value_text} epochs={epochs} "
        f"params={trial.user_attrs.get(attrs.PARAM_COUNT, '-')}{extra} | " + " ".join(shown)
    )


def running_line(
    trials: Sequence[FrozenTrial], worker_pids: Sequence[int], epochs: int, unit: str = "epoch"
) -> str:
    """The best trial so far, then the trials running now, one clause each: number, worker (``w0``.. for this
    search's workers, ``host:pid`` for others), reports done of the trial's ``epochs`` (``unit``: ``epoch``, or
    ``check`` for the evaluations of a time-boxed trial), the last dev accuracy reported."""
    best = best_trial(trials)
    leader = f"best #{best.number} {best.value:.4f} | " if best is not None else ""
    clauses = []
    for trial in sorted(trials, key=lambda item: item.number):
        if trial.state != TrialState.RUNNING:
            continue
        worker = str(trial.user_attrs.get(attrs.WORKER, "?"))
        pid = worker.rsplit(":", 1)[-1]
        who = f"w{worker_pids.index(int(pid))}" if pid.isdigit() and int(pid) in worker_pids else worker
        reported = trial.intermediate_values
        last = f", dev {reported[max(reported)]:.4f}" if reported else ""
        clauses.append(f"#{trial.number} {who} {unit} {len(reported)}/{epochs}{last}")
    return leader + "running: " + ("; ".join(clauses) if clauses else "none")
