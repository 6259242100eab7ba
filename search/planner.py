"""The planner of ``phonetune run``: how one wall-clock budget is split, from the speed measured on this machine.

The budget pays for three things: the search (cheap trials on the subsample), the final runs (the top K search
trials retrained on all the training data for E epochs each), and a reserve for predicting, ensembling, the sheet and
the report. The final runs are the expensive part and decide the accuracy, so the planner sizes the search's models
by them: with ``speed`` (seconds per training frame against parameter count, ``model.speed``), the largest model
whose K full-data runs of E epochs fit the final share becomes the search's parameter cap (never above the study's
``param_budget``, the HW1P2 20M). A CPU budget therefore searches small models and a GPU budget large ones.

After the search, ``plan_final_runs`` prices each COMPLETE candidate's full-data epoch from its actual parameter
count and picks K and E for the time really left: the best candidates first, as many epochs as fit (at most
``max_epochs``), dropping the weakest candidate while fewer than ``MIN_FINAL_EPOCHS`` epochs would fit.

Example::

    plan = make_plan(600, speed, train_frames=977_855, dev_frames=142_000, param_budget=20_000_000)
    print(plan.describe())
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Sequence

from phonetune.errors import BudgetError, ConfigError
from phonetune.model.speed import Speed

SEARCH_SHARE = 0.3  # of the budget left after calibration: enough trials for TPE to beat its random start
RESERVE_SHARE = 0.06  # predicting dev and test per member, ensembling, the sheet and the report
MIN_RESERVE_S = 20.0
TARGET_FINAL_RUNS = 4  # K: several promoted runs rank the search's guesses and feed the ensemble
MIN_FINAL_RUNS = 2
MIN_FINAL_EPOCHS = 2  # one epoch of one-cycle on all the data leaves accuracy on the table
# Below this many parameters a final model loses more to narrowness than a further ensemble member gives back, so
# the planner promotes fewer runs rather than shrink them further (a heuristic, stated in the plan).
MIN_FINAL_PARAMS = 1_000_000
MIN_SEARCH_PARAMS = 20_000  # a cap below this cannot hold even a narrow hidden layer over a context window
# Real epochs cost more than the calibrated steps: batch gathering, dev evaluation in eval batches, the checkpoint
# and Python around each step. On the demo corpus (2 CPU cores, 2026-11-28) a planned 1 min 43 s took 2 min 39 s.
TRAINER_OVERHEAD = 1.5


def run_seconds(speed: Speed, params: int, epochs: int, train_frames: int, dev_frames: int) -> float:
    """Predicted wall time of one full-data run: ``epochs`` epochs of a ``params``-parameter model, overhead included."""
    return TRAINER_OVERHEAD * epochs * speed.epoch_seconds(params, train_frames, dev_frames)
_BUDGET_PATTERN = re.compile(r"^\s*(\d+(?:\.\d*)?)\s*([smh]?)\s*$")
_UNIT_SECONDS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_budget(text: str) -> float:
    """``"90s"``, ``"20m"``, ``"1.5h"`` or a bare number of seconds, as seconds; ConfigError naming the value."""
    match = _BUDGET_PATTERN.match(str(text))
    if not match or float(match.group(1)) <= 0:
        raise ConfigError(f"--budget must be a positive duration such as 90s, 20m or 1.5h, but got {text!r}")
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def format_seconds(seconds: float) -> str:
    minutes, rest = divmod(int(round(seconds)), 60)
    return f"{minutes} min {rest:02d} s" if minutes else f"{rest} s"


@dataclass(frozen=True)
class Plan:
    """How the budget is split, decided once per job and kept in its state file so a resumed job keeps it."""

    budget_s: float
    search_s: float  # wall time for search trials
    final_s: float  # wall time for the promoted full-data runs
    reserve_s: float  # predicting, ensembling, sheet, report
    top_k: int  # promoted runs planned (revised after the search by plan_final_runs)
    full_epochs: int  # epochs planned per promoted run (likewise revised)
    param_cap: int  # the search's parameter budget: the largest model whose final runs fit final_s
    train_frames: int
    dev_frames: int
    speed: dict  # Speed.to_dict()
    why: str  # one sentence on the choice of K and the cap

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "Plan":
        return cls(**values)

    def describe(self) -> str:
        return (
            f"budget {format_seconds(self.budget_s)}: search {format_seconds(self.search_s)}, final runs "
            f"{format_seconds(self.final_s)}, reserve {format_seconds(self.reserve_s)}; K={self.top_k} final runs of "
            f"{self.full_epochs} epochs on {self.train_frames:,} frames; search models capped at "
            f"{self.param_cap:,} parameters ({self.why})"
        )


def make_plan(
    budget_s: float,
    speed: Speed,
    *,
    train_frames: int,
    dev_frames: int,
    param_budget: int,
    target_epochs: int,
    elapsed_s: float = 0.0,
    top_k: int | None = None,
) -> Plan:
    """Split ``budget_s`` (``elapsed_s`` already spent on loading and calibration); see the module docstring.

    Raises BudgetError naming the budget when not even the smallest useful plan fits.
    """
    left = budget_s - elapsed_s
    reserve = max(MIN_RESERVE_S, RESERVE_SHARE * budget_s)
    search = SEARCH_SHARE * (left - reserve)
    final = left - reserve - search
    epoch_frames = train_frames + dev_frames / 3

    def cap(runs: int, epochs: int) -> int:
        if final <= 0:
            return 0
        return min(param_budget, speed.largest_params(final / (TRAINER_OVERHEAD * runs * epochs * epoch_frames)))

    candidates = [top_k] if top_k is not None else list(range(TARGET_FINAL_RUNS, MIN_FINAL_RUNS - 1, -1))
    epochs = max(MIN_FINAL_EPOCHS, target_epochs)
    runs = candidates[0]
    for runs in candidates:
        if cap(runs, epochs) >= min(MIN_FINAL_PARAMS, param_budget):
            why = f"the largest model whose {runs} full-data runs of {epochs} epochs fit the final share"
            break
    else:
        why = (f"{runs} runs: fewer would not lift the cap to {min(MIN_FINAL_PARAMS, param_budget):,} parameters "
               "in this budget")
    while cap(runs, epochs) < MIN_SEARCH_PARAMS and epochs > MIN_FINAL_EPOCHS:
        epochs -= 1
    param_cap = cap(runs, epochs)
    if param_cap < MIN_SEARCH_PARAMS:
        needed = MIN_FINAL_RUNS * run_seconds(speed, MIN_SEARCH_PARAMS, MIN_FINAL_EPOCHS, train_frames, dev_frames)
        raise BudgetError(
            f"--budget {format_seconds(budget_s)} cannot be met on this machine: after {format_seconds(elapsed_s)} of "
            f"loading and calibration, {MIN_FINAL_RUNS} full-data runs of {MIN_FINAL_EPOCHS} epochs of even a "
            f"{MIN_SEARCH_PARAMS:,}-parameter model ({train_frames:,} frames) need about {format_seconds(needed)} "
            f"of the {format_seconds(max(final, 0))} left for them; give a larger budget (over "
            f"{format_seconds(budget_s + needed - max(final, 0))}) or a smaller training split"
        )
    return Plan(
        budget_s=budget_s, search_s=search, final_s=final, reserve_s=reserve, top_k=runs, full_epochs=epochs,
        param_cap=param_cap, train_frames=train_frames, dev_frames=dev_frames, speed=speed.to_dict(), why=why,
    )


@dataclass(frozen=True)
class FinalRuns:
    """The promoted runs ``plan_final_runs`` chose for the time left."""

    sources: list[int]  # search trial numbers, best first
    epochs: int
    predicted_s: float  # their predicted total wall time
    why: str


def plan_final_runs(
    candidates: Sequence[tuple[int, int]],
    seconds_left: float,
    speed: Speed,
    *,
    train_frames: int,
    dev_frames: int,
    top_k: int,
    max_epochs: int,
) -> FinalRuns:
    """Pick the final runs among ``candidates`` ((trial number, parameter count), best first) for ``seconds_left``.

    The best ``top_k`` candidates get as many epochs as fit (at most ``max_epochs``); while fewer than
    ``MIN_FINAL_EPOCHS`` fit, the weakest of them is dropped. One run of at least one epoch is always planned when
    any fits; BudgetError when none does.
    """
    chosen = list(candidates[:top_k])
    while chosen:
        epoch_s = sum(run_seconds(speed, params, 1, train_frames, dev_frames) for _number, params in chosen)
        epochs = min(max_epochs, int(seconds_left // epoch_s)) if epoch_s > 0 else max_epochs
        if epochs >= MIN_FINAL_EPOCHS or (len(chosen) == 1 and epochs >= 1):
            why = (f"{len(chosen)} of the best {len(candidates)} complete trials, {epochs} epochs each "
                   f"({format_seconds(epochs * epoch_s)} predicted of {format_seconds(seconds_left)} left)")
            return FinalRuns([number for number, _params in chosen], epochs, epochs * epoch_s, why)
        chosen.pop()
    raise BudgetError(
        f"no promoted run fits the {format_seconds(seconds_left)} left for final runs: even one epoch of the "
        f"best candidate on {train_frames:,} frames takes longer; give a larger --budget"
    )
