"""The planner of ``phonetune run``: how one wall-clock budget is split, from the speed measured on this machine.

The budget pays for four things: preparing (validating the data, building its cache, timing this machine), the
screen (time-boxed search trials: each the first minutes of the run it would become), the final run (the screen's
best trial continued to its end, its learning rate decaying to zero exactly then), and a reserve for predicting dev
and test, the sheet and the report. The winner's own trial is not lost: the final run continues it.

Three numbers decide the split; each is a design choice stated here, not a value fitted to one corpus:

- ``SCREEN_SHARE``: the share of the training time the screen gets (the rest goes to the final run). A quarter pays
  for about ten pruned comparisons on a CPU budget, and on a GPU budget far more, since there the final run's
  length is bounded by ``max_epochs`` and the surplus goes to the screen.
- ``TRIAL_SHARE``: a trial's length as a share of the final run it starts. Long enough that a comparison is not
  won by the fastest starter alone (see FRAMES_PER_PARAM), short enough for several trials.
- ``FRAMES_PER_PARAM``: the model size. At a fixed time a model can be wide and see the data few times, or narrow
  and see it often; the compute-optimal size grows with the square root of the compute (Hoffmann et al. 2022), so
  the final run's model is the largest that still sees about this many training frames per parameter in its
  time. Measured on two flite corpora on the 2-core development machine (BENCHMARKS.md, "model size at a fixed
  time"): the expert recipe's shape trained for equal time at three widths peaked at 4.7 frames per parameter on
  the demo corpus (1,280,552 parameters, 6.2 epochs; 0.6 and 30 frames per parameter were 1.4 and 1.3 points
  worse); on the second corpus 15 frames per parameter (1,280,552 parameters) led 1.9 (3,609,640) at each quarter
  of the run both reached, by 2.1, 1.1 and 0.3 points (the gap closing; the smaller run was stopped at three
  quarters), so there the optimum lies somewhere from 2 to 15: consistent with 5, not pinned by it.
  Never above ``[study] param_limit`` (the HW1P2 20M): on a GPU the rule asks for more than 20M, so the final
  model is capped and trains up to ``max_epochs``.

A screen is paid for only when it can compare something: when its time holds fewer trials than the recipes it would
screen plus ``MIN_SEARCHED_TRIALS`` sampled ones, the plan is *direct*: the first recipe (at the planned size when
its own is far from it) trains the whole time, its first tenth as the screen's one trial. A CPU's workers share its
cores, so its screen holds about ``SCREEN_SHARE / TRIAL_SHARE`` trials in turn, and a CPU budget is direct unless the
model is capped and the surplus goes to the screen. On both flite corpora at 10 and 20 minutes (BENCHMARKS.md) the
screen held nothing but the recipe at two sizes, and the trial it did not continue threw away a sixth of the budget.

Example::

    plan = make_plan(600, speed, train_frames=977_855, dev_frames=142_000, test_frames=142_398,
                     param_limit=20_000_000, max_epochs=25, batch_size=1024, workers=2)
    print(plan.describe())
"""

from __future__ import annotations

import dataclasses
from dataclasses import MISSING, asdict, dataclass, fields
from typing import Any, Mapping

from phonetune.errors import BudgetError, ConfigError
from phonetune.job.clock import format_seconds
from phonetune.model.decode import decode_seconds
from phonetune.model.speed import Speed

SCREEN_SHARE = 0.25
TRIAL_SHARE = 0.10
FRAMES_PER_PARAM = 5.0
# The end of a job beyond predicting (which is priced from the model): opening the studies, the sheet, the report
# and summary.json. Measured on this 2-core machine on a 16-trial study: 1.1-1.5 s (opening the storage 0.8-0.9 s,
# the sheet 0.1 s, the report 0.2-0.4 s), and `make demo` ended 13 s inside the 15 s this used to be. A fixed part
# for a loaded machine, and a share of the budget for what grows with it: a long job's many trials, on a remote
# storage, in the report's plots.
OUTPUTS_S = 5.0
OUTPUTS_SHARE = 0.005
MIN_FINAL_STEPS = 50  # a final run shorter than this is not worth starting: the budget is refused instead
# The screen must at least start a worker (Python, torch, the data: seconds on a loaded 2-core machine) and run a
# trial; a shorter one would only interrupt its workers while they start.
MIN_SCREEN_S = 10.0
FINAL_EVALUATIONS = 8  # the final run evaluates on all of dev this often (search.timing.FULL_RUN_EVALUATIONS)
# Fewer sampled trials than this are a guess, not a search: ASHA (reduction factor 3) prunes nothing among fewer
# than three, and the prior sampler's first mutations need a finished trial to mutate.
MIN_SEARCHED_TRIALS = 3


def outputs_seconds(budget_s: float) -> float:
    """The fixed part of the reserve of a ``budget_s`` job: the sheet, the report and the summary."""
    return OUTPUTS_S + OUTPUTS_SHARE * budget_s


def reserve_seconds(speed: Speed, params: int, dev_frames: int, test_frames: int, budget_s: float,
                    slowdown: float = 1.0) -> float:
    """The end of a ``budget_s`` job: predicting dev and test with a ``params``-parameter model, fitting the decode
    on dev and decoding test (``model.decode``), the sheet, the report and the summary. ``slowdown``: this model's
    measured step time over the speed line's prediction, which scales the predicting alone (the rest does not
    depend on the model)."""
    return (outputs_seconds(budget_s) + decode_seconds(dev_frames, test_frames)
            + speed.predict_seconds(params, dev_frames + test_frames) * slowdown)


def compute_optimal_params(speed: Speed, seconds: float, batch_size: int, param_limit: int,
                           min_params: int) -> int:
    """The largest model that still sees ``FRAMES_PER_PARAM`` training frames per parameter in ``seconds``, within
    ``[min_params, param_limit]`` (frames per parameter fall as the model grows, so a bisection finds it)."""
    def frames_per_param(params: int) -> float:
        return seconds / speed.seconds_per_frame(params, batch_size) / params

    low, high = max(1, min_params), max(min_params, param_limit)
    if frames_per_param(high) >= FRAMES_PER_PARAM:
        return high
    if frames_per_param(low) < FRAMES_PER_PARAM:
        return low
    while high - low > max(1, low // 1000):
        middle = (low + high) // 2
        if frames_per_param(middle) >= FRAMES_PER_PARAM:
            low = middle
        else:
            high = middle
    return low


@dataclass(frozen=True)
class Plan:
    """How the budget is split, decided once per job and kept in its state file so a resumed job keeps it."""

    budget_s: float
    prepare_s: float  # spent validating data, building caches and timing this machine, before the plan
    reserve_s: float  # predicting dev and test, the sheet, the report
    screen_s: float  # wall time of the screen (time-boxed search trials), from prepare_s on
    trial_seconds: float  # one trial's training time at the measured speed (a box: equal for every candidate)
    final_seconds: float  # the whole final run's training time at that speed, its trial included
    final_params: int  # the size searched trials are given: the compute-optimal model for final_seconds
    final_epochs: float  # passes over the training split that final_seconds buys a final_params model
    train_frames: int
    dev_frames: int
    test_frames: int
    batch_size: int  # the batch size the sizes were priced at (the first warm start's)
    workers: int
    speed: dict  # Speed.to_dict()
    why: str
    direct: bool = False  # no comparison fits: the screen is the first recipe's first tenth alone, on one worker
    # The step the speed line was refit through, unrounded: params, batch_size, measured_s (the step priced from it)
    # and line_s (the probe's line at that size); run_step_s, reference_step_s, reference_probed_s and relative say
    # how measured_s came from the step timed beside the probe's large model. Empty when nothing was refit.
    refit_step: dict = dataclasses.field(default_factory=dict)

    @property
    def screen_end(self) -> float:
        """The job's spent time (its clock) at which the screen ends."""
        return self.prepare_s + self.screen_s

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: Any, source: str) -> "Plan":
        """The plan kept in a state file; ConfigError naming ``source`` and the key when it is not one."""
        if not isinstance(values, Mapping):
            raise ConfigError(f"{source}: plan must be a table of the planner's numbers, but got {values!r}")
        problems = []
        kept = {}
        for field in fields(cls):
            if field.name not in values and (field.default is not MISSING or field.default_factory is not MISSING):
                continue  # a plan kept by an earlier phonetune, from before the field existed
            value = values.get(field.name)
            wanted = {"int": int, "float": (int, float), "str": str, "dict": dict, "bool": bool}[str(field.type)]
            if isinstance(value, bool) != (wanted is bool) or not isinstance(value, wanted):
                kind = {"int": "an integer", "float": "a number", "str": "a string", "dict": "a table",
                        "bool": "true or false"}[str(field.type)]
                problems.append(f"plan.{field.name} must be {kind}, but got {value!r}")
            elif wanted in ((int, float), int) and value < 0:
                problems.append(f"plan.{field.name} must be 0 or more, but got {value!r}")
            else:
                kept[field.name] = value
        unknown = sorted(set(values) - {field.name for field in fields(cls)})
        if unknown:
            problems.append(f"plan has keys this phonetune does not know: {unknown}")
        if problems:
            raise ConfigError(f"{source}: " + "; ".join(problems))
        return cls(**kept)

    def describe(self) -> str:
        if self.direct:
            return (
                f"budget {format_seconds(self.budget_s)}: preparing {format_seconds(self.prepare_s)}, no screen (the "
                f"first recipe's first {format_seconds(self.trial_seconds)} on one worker), final run "
                f"{format_seconds(self.final_seconds)} at the planned size of {self.final_params:,} parameters (about "
                f"{self.final_epochs:.1f} epochs of {self.train_frames:,} frames), reserve "
                f"{format_seconds(self.reserve_s)}; {self.why}"
            )
        return (
            f"budget {format_seconds(self.budget_s)}: preparing {format_seconds(self.prepare_s)}, screen "
            f"{format_seconds(self.screen_s)} ({self.workers} worker{'s' if self.workers != 1 else ''}; each trial "
            f"the first {format_seconds(self.trial_seconds)} of its final run), final run "
            f"{format_seconds(self.final_seconds)} at the planned size of {self.final_params:,} parameters (about "
            f"{self.final_epochs:.1f} epochs of {self.train_frames:,} frames), reserve {format_seconds(self.reserve_s)}; "
            f"{self.why}"
        )


def make_plan(
    budget_s: float,
    speed: Speed,
    *,
    train_frames: int,
    dev_frames: int,
    test_frames: int,
    param_limit: int,
    max_epochs: float,
    batch_size: int,
    workers: int,
    elapsed_s: float = 0.0,
    min_params: int = 1,
    max_params: int = 0,
    recipes: int = 0,
) -> Plan:
    """Split ``budget_s`` (``elapsed_s`` already spent preparing); see the module docstring.

    ``max_epochs`` (the study's ``[fidelity] full_epochs``) bounds the final run's length: time a capped model cannot
    use goes to the screen. ``min_params`` and ``max_params`` are the smallest and largest model of the space (0: no
    bound beyond ``param_limit``). ``recipes``: the warm starts the screen would train first (0: none, so there is
    always a screen). BudgetError naming the numbers when not even a short final run fits.
    """
    plan = _screened_plan(budget_s, speed, train_frames=train_frames, dev_frames=dev_frames,
                          test_frames=test_frames, param_limit=param_limit, max_epochs=max_epochs,
                          batch_size=batch_size, workers=workers, elapsed_s=elapsed_s, min_params=min_params,
                          max_params=max_params, direct=False)
    # Trials run side by side only on separate GPUs; a CPU's workers share its cores, so its trials take turns.
    parallel = workers if speed.device != "cpu" else 1
    holds = plan.screen_s / max(plan.trial_seconds, 1e-9) * parallel
    if recipes and holds < recipes + MIN_SEARCHED_TRIALS:
        direct = _screened_plan(budget_s, speed, train_frames=train_frames, dev_frames=dev_frames,
                                test_frames=test_frames, param_limit=param_limit, max_epochs=max_epochs,
                                batch_size=batch_size, workers=1, elapsed_s=elapsed_s, min_params=min_params,
                                max_params=max_params, direct=True)
        why = (f"{direct.why}; no screen: its time would hold {holds:.1f} trials, fewer than the {recipes} "
               f"recipe{'s' if recipes != 1 else ''} plus {MIN_SEARCHED_TRIALS} searched, so the first recipe trains "
               "the whole time")
        return dataclasses.replace(direct, why=why)
    return plan


def _screened_plan(budget_s: float, speed: Speed, *, train_frames: int, dev_frames: int, test_frames: int,
                   param_limit: int, max_epochs: float, batch_size: int, workers: int, elapsed_s: float,
                   min_params: int, max_params: int, direct: bool) -> Plan:
    """The split with a screen of ``SCREEN_SHARE``, or (``direct``) with a screen that is the final run's first
    tenth alone: the training time is then all the final run's, less starting the screen's one worker."""
    budget_cap = param_limit
    if max_params:
        param_limit = min(param_limit, max_params)
    # The final run is its trial (run during the screen) plus its continuation, which is what the screen leaves;
    # its evaluations on all of dev come out of that, and predicting dev and test with it out of the reserve (its
    # size decides both, so it is sized first on the fixed part of the reserve).
    outputs = outputs_seconds(budget_s)
    rough = ((1.0 - SCREEN_SHARE) * (budget_s - elapsed_s - outputs) / (1.0 - TRIAL_SHARE) if not direct
             else budget_s - elapsed_s - outputs - MIN_SCREEN_S)
    final_params = compute_optimal_params(speed, rough, batch_size, param_limit, min_params)
    reserve = reserve_seconds(speed, final_params, dev_frames, test_frames, budget_s)
    available = budget_s - elapsed_s - reserve
    evaluating = FINAL_EVALUATIONS * speed.predict_seconds(final_params, dev_frames)
    if direct:
        final = available - evaluating - MIN_SCREEN_S
        screen = TRIAL_SHARE * final + MIN_SCREEN_S
    else:
        screen = SCREEN_SHARE * max(0.0, available)
        # A short budget's quarter may not start a worker and run a trial: the screen then takes what that needs.
        screen = max(screen, MIN_SCREEN_S * (1.0 - TRIAL_SHARE) + TRIAL_SHARE * (available - evaluating))
        final = (available - screen - evaluating) / (1.0 - TRIAL_SHARE)
    step_s = speed.seconds_per_frame(final_params, batch_size) * batch_size
    continuation = (1.0 - TRIAL_SHARE) * final
    if continuation < MIN_FINAL_STEPS * step_s:
        needed = (elapsed_s + reserve + evaluating + MIN_SCREEN_S + MIN_FINAL_STEPS * step_s / (1.0 - TRIAL_SHARE))
        raise BudgetError(
            f"--budget {format_seconds(budget_s)} cannot be met on this machine: preparing took "
            f"{format_seconds(elapsed_s)} and predicting dev and test needs about {format_seconds(reserve)}, which "
            f"leaves too little for a screen of at least {MIN_SCREEN_S:.0f} s and {MIN_FINAL_STEPS} training steps of "
            f"even a {final_params:,}-parameter model ({1000 * step_s:.1f} ms each here); give a --budget of at "
            f"least {format_seconds(needed * 1.2)}"
        )
    epochs = final / (speed.seconds_per_frame(final_params, batch_size) * train_frames)
    why = (f"the largest model that sees {FRAMES_PER_PARAM:g} training frames per parameter in the final run's time "
           "(compute-optimal size)")
    if final_params >= param_limit:
        why = (f"the parameter budget ({param_limit:,}) caps the model" if param_limit == budget_cap
               else f"the largest model of the space ({param_limit:,} parameters) caps it")
        if epochs > max_epochs and not direct:
            # A capped model needs no more than max_epochs: the rest of its time buys more trials.
            final = max_epochs * speed.seconds_per_frame(final_params, batch_size) * train_frames
            screen = available - evaluating - (1.0 - TRIAL_SHARE) * final
            epochs = float(max_epochs)
            why += f", which needs only [fidelity] full_epochs = {max_epochs:g} epochs: the time left buys more trials"
    elif final_params <= min_params:
        why = "the smallest model of the space"
    return Plan(
        budget_s=budget_s, prepare_s=elapsed_s, reserve_s=reserve, screen_s=screen,
        trial_seconds=TRIAL_SHARE * final, final_seconds=final, final_params=final_params, final_epochs=epochs,
        train_frames=train_frames, dev_frames=dev_frames, test_frames=test_frames, batch_size=batch_size,
        workers=workers, speed=speed.to_dict(), why=why, direct=direct,
    )
