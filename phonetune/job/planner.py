"""The planner of ``phonetune run``: how one wall-clock budget is split, from the speed measured on this machine.

The budget pays for three things: the search (cheap trials on the subsample), the final runs (the top K search
trials retrained on all the training data for E epochs each), and a reserve for predicting, ensembling, the sheet and
the report. The final runs are the expensive part and decide the accuracy. With ``speed`` (seconds per training
frame against parameter count, ``model.speed``), the largest model whose K full-data runs of E epochs fit the final
share is the final cap (never above the study's ``param_budget``, the HW1P2 20M); K and E are the most that keep it
above ``MIN_FINAL_PARAMS``. The search runs the same family narrower: its cap is what ``SEARCH_TRIALS`` trials can
afford in the search share, and a trial's sampled ``width_fraction`` maps onto the wider final cap when it is
promoted (width is one more fidelity, like the subsample and the epochs). A CPU budget therefore trains small models
and a GPU budget large ones.

After the search, ``plan_final_runs`` prices each COMPLETE candidate's full-data epoch from its actual parameter
count and picks K and E for the time really left: the best candidates first, as many epochs as fit (at most
``max_epochs``), dropping the weakest candidate while fewer than the planned epochs would fit.

Example::

    plan = make_plan(600, speed, train_frames=977_855, dev_frames=142_000, param_budget=20_000_000,
                     target_epochs=2, search_fraction=0.2, search_epochs=3)
    print(plan.describe())
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

from phonetune.errors import BudgetError
from phonetune.job.clock import format_seconds
from phonetune.model.speed import Speed

SEARCH_SHARE = 0.3  # of the budget left after calibration: enough trials for TPE to beat its random start
RESERVE_SHARE = 0.06  # predicting dev and test per member, ensembling, the sheet and the report
MIN_RESERVE_S = 20.0
TARGET_FINAL_RUNS = 4  # K: several promoted runs rank the search's guesses and feed the ensemble
MIN_FINAL_RUNS = 2
# Below this many parameters a final model loses more to narrowness than more epochs or another ensemble member
# give back. Measured on the demo corpus (2026-11-28, test accuracy): 3.6M parameters after 1 epoch 0.817, 0.92M
# after 3 epochs 0.816, 0.43M after 3 epochs 0.805. So the planner trades runs and epochs for width down to this.
MIN_FINAL_PARAMS = 2_000_000
SEARCH_TRIALS = 12  # search trials the search share should pay for at the search cap
MIN_SEARCH_PARAMS = 20_000  # a cap below this cannot hold even a narrow hidden layer over a context window
# Real epochs cost more than the calibrated steps: batch gathering, dev evaluation in eval batches, the checkpoint
# and Python around each step. On the demo corpus (2 CPU cores, 2026-11-28) a planned 1 min 43 s took 2 min 39 s.
TRAINER_OVERHEAD = 1.5


def run_seconds(speed: Speed, params: int, epochs: int, train_frames: int, dev_frames: int) -> float:
    """Predicted wall time of one full-data run: ``epochs`` epochs of a ``params``-parameter model, overhead included."""
    return TRAINER_OVERHEAD * epochs * speed.epoch_seconds(params, train_frames, dev_frames)


@dataclass(frozen=True)
class Plan:
    """How the budget is split, decided once per job and kept in its state file so a resumed job keeps it."""

    budget_s: float
    search_s: float  # wall time for search trials
    final_s: float  # wall time for the promoted full-data runs
    reserve_s: float  # predicting, ensembling, sheet, report
    top_k: int  # final runs planned (revised after the search by plan_final_runs)
    full_epochs: int  # epochs planned per final run (likewise revised)
    search_cap: int  # the search's parameter budget: cheap enough for SEARCH_TRIALS trials in search_s
    final_cap: int  # the final runs' parameter budget: the largest model whose K runs of E epochs fit final_s
    train_frames: int
    dev_frames: int
    speed: dict  # Speed.to_dict()
    why: str  # one sentence on the choice of K, E and the caps

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "Plan":
        return cls(**values)

    def describe(self) -> str:
        return (
            f"budget {format_seconds(self.budget_s)}: search {format_seconds(self.search_s)} (models up to "
            f"{self.search_cap:,} parameters), final runs {format_seconds(self.final_s)} (K={self.top_k} of "
            f"{self.full_epochs} epoch{'s' if self.full_epochs != 1 else ''} on {self.train_frames:,} frames, models "
            f"up to {self.final_cap:,} parameters), reserve {format_seconds(self.reserve_s)}; {self.why}"
        )


def make_plan(
    budget_s: float,
    speed: Speed,
    *,
    train_frames: int,
    dev_frames: int,
    param_budget: int,
    target_epochs: int,
    search_fraction: float,
    search_epochs: int,
    elapsed_s: float = 0.0,
    top_k: int | None = None,
    min_search_cap: int = MIN_SEARCH_PARAMS,
) -> Plan:
    """Split ``budget_s`` (``elapsed_s`` already spent on loading and calibration); see the module docstring.

    ``search_fraction`` and ``search_epochs`` are the study's ``[fidelity]`` of a search trial; ``min_search_cap`` is
    the least budget under which every model of the space can be built. Raises BudgetError
    naming the budget when not even the smallest useful plan fits.
    """
    left = budget_s - elapsed_s
    reserve = max(MIN_RESERVE_S, RESERVE_SHARE * budget_s)
    search = SEARCH_SHARE * (left - reserve)
    final = left - reserve - search
    epoch_frames = train_frames + dev_frames / 3

    def final_cap(runs: int, epochs: int) -> int:
        if final <= 0:
            return 0
        return min(param_budget, speed.largest_params(final / (TRAINER_OVERHEAD * runs * epochs * epoch_frames)))

    # (K, E) from most runs to fewest: the first whose models reach MIN_FINAL_PARAMS wins. Epochs give way before
    # runs drop below two (an ensemble and a rank correlation need two), then a single run takes what is left.
    epochs = max(1, target_epochs)
    menu = [(runs, epochs) for runs in range(TARGET_FINAL_RUNS, MIN_FINAL_RUNS - 1, -1)]
    menu += [(MIN_FINAL_RUNS, fewer) for fewer in range(epochs - 1, 0, -1)]
    menu += [(1, fewer) for fewer in range(epochs, 0, -1)]
    if top_k is not None:
        menu = [(top_k, fewer) for fewer in range(epochs, 0, -1)]
    wanted = min(MIN_FINAL_PARAMS, param_budget)
    runs, epochs = next((choice for choice in menu if final_cap(*choice) >= wanted), menu[-1])
    why = (f"K={runs} x {epochs} epochs is the most final runs whose models reach {wanted:,} parameters"
           if final_cap(runs, epochs) >= wanted else f"even K={runs} x {epochs} cannot reach {wanted:,} parameters")
    cap = final_cap(runs, epochs)
    smallest = max(MIN_SEARCH_PARAMS, min_search_cap)
    if cap < smallest:
        needed = run_seconds(speed, smallest, 1, train_frames, dev_frames)
        raise BudgetError(
            f"--budget {format_seconds(budget_s)} cannot be met on this machine: after {format_seconds(elapsed_s)} of "
            f"loading and calibration, one full-data epoch of even a {smallest:,}-parameter model "
            f"({train_frames:,} frames) needs about {format_seconds(needed)} of the {format_seconds(max(final, 0))} "
            f"left for it; give a larger budget (over {format_seconds(budget_s + needed - max(final, 0))}) or a "
            "smaller training split"
        )
    # Search trials are narrow versions of the final models (the width fraction they sample maps onto the final
    # cap when promoted), cheap enough that SEARCH_TRIALS of them fit the search share.
    trial_frames = search_epochs * (search_fraction * train_frames + dev_frames / 3)
    search_cap = min(cap, speed.largest_params(search / (TRAINER_OVERHEAD * SEARCH_TRIALS * trial_frames)))
    search_cap = min(cap, max(search_cap, MIN_SEARCH_PARAMS, min_search_cap))
    return Plan(
        budget_s=budget_s, search_s=search, final_s=final, reserve_s=reserve, top_k=runs, full_epochs=epochs,
        search_cap=search_cap, final_cap=cap, train_frames=train_frames, dev_frames=dev_frames,
        speed=speed.to_dict(), why=why,
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
    min_epochs: int,
    max_epochs: int,
) -> FinalRuns:
    """Pick the final runs among ``candidates`` ((trial number, parameter count at the final cap), best first).

    The best ``top_k`` candidates get as many epochs as fit ``seconds_left`` (at most ``max_epochs``); while fewer
    than ``min_epochs`` would fit, the weakest of them is dropped; a last single run takes whatever whole epochs fit.
    BudgetError when not even one epoch of the best candidate fits.
    """
    chosen = list(candidates[:top_k])
    while chosen:
        epoch_s = sum(run_seconds(speed, params, 1, train_frames, dev_frames) for _number, params in chosen)
        epochs = min(max_epochs, int(seconds_left // epoch_s)) if epoch_s > 0 else max_epochs
        if epochs >= max(1, min_epochs) or (len(chosen) == 1 and epochs >= 1):
            why = (f"{len(chosen)} of the best {len(candidates)} complete trials, {epochs} epoch"
                   f"{'s' if epochs != 1 else ''} each ({format_seconds(epochs * epoch_s)} predicted of "
                   f"{format_seconds(seconds_left)} left)")
            return FinalRuns([number for number, _params in chosen], epochs, epochs * epoch_s, why)
        chosen.pop()
    raise BudgetError(
        f"no final run fits the {format_seconds(seconds_left)} left for it: even one epoch of the best candidate on "
        f"{train_frames:,} frames takes longer; give a larger --budget"
    )
