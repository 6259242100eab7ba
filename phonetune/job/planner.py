"""The planner of ``phonetune run``: the one place where the job's wall-clock budget becomes stage times.

The budget pays for preparing (validating and caching the data, timing this machine), the training time, and a
reserve at the end (predicting dev and test with the final model, the decode, the sheet, the report and the
summary). ``make_plan`` splits the training time, once per job, from the speed measured on this machine; the job
hands each stage its end on the budget's clock (``Plan.stage_end``, ``clock.TimeLimit``) and no stage computes
another's share.

Two kinds of plan, chosen by where the model the time can train lands against the size cap (the study's
``param_limit``, or the largest model of its space when that is smaller):

- **direct**: the compute-optimal model for the whole training time is under the cap, or the cap-size model needs
  every minute (it has not yet seen ``SATURATION_FRAMES_PER_PARAM`` frames per parameter twice over). No screen:
  the first warm start, sized to the plan, trains the whole time. A search that takes time from this run costs more
  than it can find.
- **screened**: the cap-size model has more time than it can use well. The final run (the screen's winner trained
  from scratch at the cap) gets half the training time, and past ``4 x saturation`` the square root of the
  budget's growth, so a long budget buys mostly search; the rest is the screen. A screen trial is a whole run
  compressed to the *trial horizon* (``final / HORIZON_RATIO``): its learning rate falls to zero at its own end, so
  a high learning rate or strong regularization is judged finished, not halfway (``search.timing``).

Every budget's final run is at least as long and as large as half that budget's (the plan is monotone under
doubling; tests/job/test_planner.py pins it from 5 minutes to 12 hours). The three design numbers:

- ``FRAMES_PER_PARAM`` (5): the compute-optimal size, the largest model that sees this many training frames per
  parameter in its time (BENCHMARKS.md, "Model size at a fixed time").
- ``SATURATION_FRAMES_PER_PARAM``: where the cap-size model's learning curve flattens, so that halving its time to
  pay for a screen costs less than a screen finds (BENCHMARKS.md, "The capped regime").
- ``HORIZON_RATIO``: the final horizon over the trial horizon, trading how well a trial ranks its run against how
  many trials the screen holds (BENCHMARKS.md, "The capped regime", the Spearman of trial against final).

Example::

    plan = make_plan(1200, speed, train_frames=977_855, dev_frames=146_806, test_frames=142_398,
                     param_limit=1_000_000, batch_size=1024, workers=2)
    print(plan.describe())
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import MISSING, asdict, dataclass, fields
from typing import Any, Literal, Mapping

from phonetune.errors import BudgetError, ConfigError
from phonetune.job.clock import format_seconds
from phonetune.model.decode import decode_seconds
from phonetune.model.speed import Speed

FRAMES_PER_PARAM = 5.0
SATURATION_FRAMES_PER_PARAM = 16.0
HORIZON_RATIO = 8.0
SCREEN_SHARE = 0.5  # of the training time, from where the screen starts to four times its saturation time
# The end of a job beyond predicting (which is priced from the model): opening the studies, the sheet, the report
# and summary.json. A fixed part for a loaded machine, and a share of the budget for what grows with it (a long job's
# many trials, a remote storage, the report's plots); BENCHMARKS.md, "The job's clock and reserve".
OUTPUTS_S = 5.0
OUTPUTS_SHARE = 0.005
MIN_FINAL_STEPS = 50  # a final run shorter than this is not worth starting: the budget is refused instead
# Starting a worker process (Python, torch, the data: seconds on a loaded 2-core machine), paid once by a screen.
WORKER_START_S = 10.0
# What a screen trial costs beyond its horizon: building its model and windows, its evaluations on a share of dev.
TRIAL_OVERHEAD_S = 3.0
# A direct plan's screen is its final run's first tenth, on one worker, which the final run continues.
DIRECT_TRIAL_SHARE = 0.10
FINAL_EVALUATIONS = 8  # the final run evaluates on all of dev this often (search.timing.FULL_RUN_EVALUATIONS)
# Fewer sampled trials than this beside the warm starts are a guess, not a search.
MIN_SEARCHED_TRIALS = 3
# The longest budget a direct plan looks through for the least one that would screen.
MAX_SCREEN_BUDGET_S = 7 * 24 * 3600.0

PlanKind = Literal["direct", "screened"]
STAGES = ("prepare", "screen", "final", "outputs")


def outputs_seconds(budget_s: float) -> float:
    """The fixed part of the reserve of a ``budget_s`` job: the sheet, the report and the summary."""
    return OUTPUTS_S + OUTPUTS_SHARE * budget_s


def fixed_reserve_seconds(budget_s: float, dev_frames: int, test_frames: int, decode: bool) -> float:
    """The part of the reserve that does not depend on the model: the outputs, and the decode when it runs."""
    return outputs_seconds(budget_s) + (decode_seconds(dev_frames, test_frames) if decode else 0.0)


def reserve_seconds(speed: Speed, params: int, dev_frames: int, test_frames: int, budget_s: float,
                    decode: bool = True, slowdown: float = 1.0) -> float:
    """The end of a ``budget_s`` job: predicting dev and test with a ``params``-parameter model, the decode when it
    runs, the sheet, the report and the summary. ``slowdown``: this model's measured step time over the speed line's
    prediction, which scales the predicting alone (the rest does not depend on the model)."""
    return (fixed_reserve_seconds(budget_s, dev_frames, test_frames, decode)
            + speed.predict_seconds(params, dev_frames + test_frames) * slowdown)


def compute_optimal_params(speed: Speed, seconds: float, batch_size: int, size_cap: int, min_params: int) -> int:
    """The largest model that still sees ``FRAMES_PER_PARAM`` training frames per parameter in ``seconds``, within
    ``[min_params, size_cap]`` (frames per parameter fall as the model grows, so a bisection finds it)."""
    def frames_per_param(params: int) -> float:
        return seconds / speed.seconds_per_frame(params, batch_size) / params

    low, high = max(1, min_params), max(min_params, size_cap)
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


def final_seconds_of(training_s: float, saturation_s: float) -> float:
    """The screened plan's final horizon for ``training_s`` of training: ``SCREEN_SHARE`` of it up to four times the
    cap model's ``saturation_s``, then growing with the square root of the time (continuous there), so that past
    saturation most of a larger budget buys search."""
    knee = 4.0 * saturation_s
    if training_s <= knee:
        return (1.0 - SCREEN_SHARE) * training_s
    return (1.0 - SCREEN_SHARE) * knee * math.sqrt(training_s / knee)


@dataclass(frozen=True)
class Plan:
    """How the budget is split, decided once per job and kept in its state file so a resumed job keeps it.

    Times are seconds of the budget's clock (``clock.BudgetClock.spent``); ``stage_end`` gives each stage's end."""

    budget_s: float
    prepare_s: float  # spent validating data, building caches and timing this machine, before the plan
    reserve_s: float  # predicting dev and test with the planned model, the decode, the sheet, the report
    screen_s: float  # wall time of the screen, from prepare_s on
    trial_seconds: float  # a screen trial's horizon: its training time, its schedule ending with it (direct: the
    #                       final run's first tenth, its one trial)
    trials: float  # how many trials the screen's time holds, all workers together (direct: 1)
    final_seconds: float  # the final run's training time at the measured speed (its evaluations are on top; direct:
    #                       its first tenth, the screen's trial, included)
    final_params: int  # the planned size: the cap when screened, the compute-optimal size when direct
    final_epochs: float  # passes over the training split that final_seconds buys a final_params model
    size_cap: int  # the largest model the study may train: param_limit, or the space's largest if smaller
    saturation_s: float  # the time in which a size_cap model sees SATURATION_FRAMES_PER_PARAM frames per parameter
    train_frames: int
    dev_frames: int
    test_frames: int
    batch_size: int  # the batch size the sizes were priced at (the first warm start's)
    workers: int
    speed: dict  # Speed.to_dict()
    why: str
    kind: str = "screened"  # PlanKind
    decode: bool = True  # the reserve holds the decode's time
    warm_starts: int = 1  # the warm starts a screen trains before it samples
    # The step the speed line was refit through, unrounded: params, batch_size, measured_s (the step priced from it)
    # and line_s (the probe's line at that size); run_step_s, reference_step_s, reference_probed_s and relative say
    # how measured_s came from the step timed beside the probe's large model. Empty when nothing was refit.
    refit_step: dict = dataclasses.field(default_factory=dict)

    @property
    def direct(self) -> bool:
        return self.kind == "direct"

    @property
    def screen_end(self) -> float:
        """The job's spent time (its clock) at which the screen ends."""
        return self.prepare_s + self.screen_s

    def stage_end(self, stage: str) -> float:
        """Where ``stage`` ends on the budget's clock: ``prepare``, ``screen``, ``final`` (the budget less the
        model-independent reserve: predicting is priced in the final run's own step times, ``model.deadline``) and
        ``outputs`` (the budget)."""
        if stage == "prepare":
            return self.prepare_s
        if stage == "screen":
            return self.screen_end
        if stage == "final":
            return self.budget_s - fixed_reserve_seconds(self.budget_s, self.dev_frames, self.test_frames,
                                                         self.decode)
        if stage == "outputs":
            return self.budget_s
        raise ValueError(f"stage must be one of {list(STAGES)}, but got {stage!r}")

    def latest_screen_end(self) -> float:
        """The latest the screen may run to when the deadline cut all its trials: two trials more, at most a quarter
        of the final run's time (a direct plan's one trial: its own length more, for a slow worker start)."""
        if self.direct:
            return self.screen_end + self.trial_seconds
        return self.screen_end + min(2.0 * (self.trial_seconds + TRIAL_OVERHEAD_S), 0.25 * self.final_seconds)

    def rebudgeted(self, budget_s: float, spent_s: float, screen_done: bool) -> "Plan":
        """This plan under a new ``budget_s``, for a job that has spent ``spent_s`` (``--budget`` changed on an
        unfinished job). The trial horizon and the sizes stay: the trials already run stay comparable with the
        rest. More time all goes to the final run. Less comes first from what is left of the screen, then from the
        final run. BudgetError naming both ways on when the final run could not train its least."""
        if budget_s == self.budget_s:
            return self
        old_end, new_end = self.stage_end("final"), dataclasses.replace(self, budget_s=budget_s).stage_end("final")
        shortfall = old_end - new_end  # negative: more time
        screen_s = self.screen_s
        if shortfall > 0 and not screen_done and not self.direct:
            # (A direct plan's screen is its final run's first tenth: its shortfall is the final run's alone.)
            screen_left = max(0.0, self.screen_end - max(spent_s, self.prepare_s))
            screen_s -= min(shortfall, screen_left)
        final_seconds = self.final_seconds - (shortfall - (self.screen_s - screen_s))
        least = MIN_FINAL_STEPS * Speed(**self.speed).step_seconds(self.final_params, self.batch_size)
        deficit = max(max(spent_s, self.prepare_s + screen_s) + least - new_end, least - final_seconds)
        if deficit > 0:
            raise BudgetError(
                f"--budget {format_seconds(budget_s)} cannot continue this job: it was planned for "
                f"{format_seconds(self.budget_s)} and has spent {format_seconds(spent_s)}, which would leave its final "
                f"run of {self.final_params:,} parameters fewer than {MIN_FINAL_STEPS} steps. Continue it with "
                f"--budget {format_seconds(self.budget_s)} (or at least {format_seconds(budget_s + 1.2 * deficit)}), "
                f"or start it over under {format_seconds(budget_s)} with --fresh (this deletes its trials)")
        scale = screen_s / self.screen_s if self.screen_s else 1.0
        trials = self.trials if self.direct else self.trials * scale
        fixed_change = (fixed_reserve_seconds(budget_s, self.dev_frames, self.test_frames, self.decode)
                        - fixed_reserve_seconds(self.budget_s, self.dev_frames, self.test_frames, self.decode))
        why = (f"{self.why}; then --budget {format_seconds(self.budget_s)} -> {format_seconds(budget_s)} at "
               f"{format_seconds(spent_s)} spent: the screen {format_seconds(self.screen_s)} -> "
               f"{format_seconds(screen_s)}, the final run {format_seconds(self.final_seconds)} -> "
               f"{format_seconds(final_seconds)}")
        return dataclasses.replace(
            self, budget_s=budget_s, reserve_s=self.reserve_s + fixed_change, screen_s=screen_s, trials=trials,
            final_seconds=final_seconds, final_epochs=self.final_epochs * final_seconds / self.final_seconds, why=why)

    def budget_that_screens(self) -> float | None:
        """About the least budget at which this job would screen on the same machine and data (None: not within
        ``MAX_SCREEN_BUDGET_S``): what a direct plan tells its user to give for a search."""
        def screens(budget_s: float) -> bool:
            try:
                return not make_plan(budget_s, Speed(**self.speed), train_frames=self.train_frames,
                                     dev_frames=self.dev_frames, test_frames=self.test_frames,
                                     param_limit=self.size_cap, batch_size=self.batch_size, workers=self.workers,
                                     elapsed_s=self.prepare_s, warm_starts=self.warm_starts,
                                     decode=self.decode).direct
            except BudgetError:
                return False

        if not self.direct:
            return self.budget_s
        low, high = self.budget_s, self.budget_s
        while not screens(high):
            if high >= MAX_SCREEN_BUDGET_S:
                return None
            low, high = high, min(2 * high, MAX_SCREEN_BUDGET_S)
        while high - low > 0.01 * high:
            middle = (low + high) / 2
            low, high = (low, middle) if screens(middle) else (middle, high)
        return high

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
        if kept.get("kind", "screened") not in ("direct", "screened"):
            problems.append(f"plan.kind must be 'direct' or 'screened', but got {kept['kind']!r}")
        if problems:
            raise ConfigError(f"{source}: " + "; ".join(problems))
        return cls(**kept)

    def describe(self) -> list[tuple[str, str]]:
        """The plan as a few labelled lines (label, text) for the terminal and the report."""
        final = (f"{self.final_params:,} parameters for {format_seconds(self.final_seconds)} (about "
                 f"{self.final_epochs:.1f} epochs of {self.train_frames:,} frames)")
        if self.direct:
            screen = "none: the first warm start trains the whole time"
            screening = self.budget_that_screens()
            screen += (f" (a --budget of about {format_seconds(screening)} would screen here)" if screening
                       else f" (no budget up to {format_seconds(MAX_SCREEN_BUDGET_S)} would screen here)")
        else:
            workers = f"{self.workers} worker{'s' if self.workers != 1 else ''}"
            screen = (f"{format_seconds(self.screen_s)} on {workers}: about {self.trials:.0f} trials, each a whole "
                      f"run of {format_seconds(self.trial_seconds)}")
        speed = Speed(**self.speed)
        measured = (f"{speed.frames_per_s(self.final_params, self.batch_size):,.0f} training frames/s at "
                    f"{self.final_params:,} parameters, batch {self.batch_size} ({speed.device}")
        if self.refit_step:
            measured += f"; the line refit through a timed step of {self.refit_step['params']:,} parameters"
        return [
            ("budget", f"{format_seconds(self.budget_s)}: preparing {format_seconds(self.prepare_s)}, reserve "
                       f"{format_seconds(self.reserve_s)} for predicting and the outputs"),
            ("speed", measured + ")"),
            ("screen", screen),
            ("final run", final),
            ("why", self.why),
        ]

    def describe_text(self) -> str:
        width = max(len(label) for label, _text in self.describe())
        return "\n".join(f"{label + ':':<{width + 1}} {text}" for label, text in self.describe())


def make_plan(
    budget_s: float,
    speed: Speed,
    *,
    train_frames: int,
    dev_frames: int,
    test_frames: int,
    param_limit: int,
    batch_size: int,
    workers: int,
    elapsed_s: float = 0.0,
    min_params: int = 1,
    max_params: int = 0,
    warm_starts: int = 1,
    decode: bool = True,
    reachable_params: int = 0,
) -> Plan:
    """Split ``budget_s`` (``elapsed_s`` of it already spent preparing); see the module docstring.

    ``min_params`` and ``max_params`` are the smallest and largest model of the space (0: no bound beyond
    ``param_limit``). ``warm_starts``: the warm starts a screen trains before it samples. ``decode``: whether the
    reserve holds the sequence decode. ``reachable_params``: the largest model a direct plan's model (the first warm
    start) can become within the space (0: any up to the cap); a direct plan whose compute-optimal size is beyond it
    trains that model, for longer. BudgetError naming the numbers when not even a short final run fits."""
    size_cap = min(param_limit, max_params) if max_params else param_limit
    # Sized first on the model-independent reserve, then the predicting of that size is reserved too.
    fixed = fixed_reserve_seconds(budget_s, dev_frames, test_frames, decode)
    rough = budget_s - elapsed_s - fixed - WORKER_START_S
    params = compute_optimal_params(speed, rough, batch_size, size_cap, min_params)
    reserve = fixed + speed.predict_seconds(params, dev_frames + test_frames)
    evaluating = FINAL_EVALUATIONS * speed.predict_seconds(params, dev_frames)
    # The training time of a direct plan's final run, which trains in the job's own process.
    training = budget_s - elapsed_s - reserve - evaluating
    step_s = speed.step_seconds(params, batch_size)
    # The least a job trains: a worker started for its first steps (the direct plan's screen), then enough steps.
    if training < WORKER_START_S + MIN_FINAL_STEPS * step_s:
        needed = elapsed_s + reserve + evaluating + WORKER_START_S + MIN_FINAL_STEPS * step_s
        raise BudgetError(
            f"--budget {format_seconds(budget_s)} cannot be met on this machine: preparing took "
            f"{format_seconds(elapsed_s)} and predicting dev and test needs about {format_seconds(reserve)}, which "
            f"leaves too little for starting a worker and {MIN_FINAL_STEPS} training steps of even a {params:,}-"
            f"parameter model ({1000 * step_s:.1f} ms each here); give a --budget of at least "
            f"{format_seconds(needed * 1.2)}"
        )
    per_frame = speed.seconds_per_frame(size_cap, batch_size)
    saturation = SATURATION_FRAMES_PER_PARAM * size_cap * per_frame
    common = dict(budget_s=budget_s, prepare_s=elapsed_s, reserve_s=reserve, size_cap=size_cap,
                  saturation_s=saturation, train_frames=train_frames, dev_frames=dev_frames,
                  test_frames=test_frames, batch_size=batch_size, speed=speed.to_dict(), decode=decode,
                  warm_starts=warm_starts)
    cap_name = "param_limit" if size_cap == param_limit else "the largest model of the space"

    def direct(why: str) -> Plan:
        sized, sized_reserve, sized_training = params, reserve, training
        if 0 < reachable_params < params:
            # The warm start cannot become the priced size within the space: the plan prices the model it trains.
            sized = reachable_params
            sized_reserve = fixed + speed.predict_seconds(sized, dev_frames + test_frames)
            sized_training = (budget_s - elapsed_s - sized_reserve
                              - FINAL_EVALUATIONS * speed.predict_seconds(sized, dev_frames))
            if sized < 0.97 * params:  # (not a width's rounding)
                why += (f"; the first warm start can become at most {sized:,} parameters within the space (its widest "
                        "base_width at up to its deepest hidden_layers), so that model trains the whole time")
        # The final run's first tenth trains in a worker (the screen's one trial), which costs starting it.
        final = sized_training - WORKER_START_S
        epochs = final / (speed.seconds_per_frame(sized, batch_size) * train_frames)
        return Plan(**{**common, "reserve_s": sized_reserve}, screen_s=DIRECT_TRIAL_SHARE * final + WORKER_START_S,
                    trial_seconds=DIRECT_TRIAL_SHARE * final, trials=1.0, final_seconds=final, final_params=sized,
                    final_epochs=epochs, workers=1, why=why, kind="direct")

    if params < size_cap:
        return direct(f"the compute-optimal model for this time ({params:,} parameters, {FRAMES_PER_PARAM:g} "
                      f"training frames each) is under the size cap ({size_cap:,}, {cap_name}): every minute "
                      "goes to training it")
    if training < 2.0 * saturation:
        return direct(f"a model at the size cap ({size_cap:,}, {cap_name}) needs the whole time: a screen would "
                      f"start past {format_seconds(2.0 * saturation + budget_s - training)} of budget, where half "
                      f"the time still shows it {SATURATION_FRAMES_PER_PARAM:g} frames per parameter")
    final = final_seconds_of(training, saturation)
    # A CPU's workers share its cores, so its trials take turns; GPUs run them side by side.
    parallel = workers if speed.device != "cpu" else 1
    screen = training - final
    trial = final / HORIZON_RATIO
    trials = (screen - WORKER_START_S) / (trial + TRIAL_OVERHEAD_S) * parallel
    if trials < warm_starts + MIN_SEARCHED_TRIALS:
        return direct(f"a screen would hold {trials:.1f} trials, fewer than the {warm_starts} warm "
                      f"start{'s' if warm_starts != 1 else ''} plus {MIN_SEARCHED_TRIALS} searched")
    knee = "" if training <= 4.0 * saturation else ", the square root of the rest past four times that"
    why = (f"the size cap ({size_cap:,}, {cap_name}) sees {SATURATION_FRAMES_PER_PARAM:g} frames per parameter in "
           f"{format_seconds(saturation)}: the final run gets {SCREEN_SHARE:.0%} of the training time{knee}, and the "
           f"screen the rest, in trials of 1/{HORIZON_RATIO:g} of the final run")
    return Plan(**common, screen_s=screen, trial_seconds=trial, trials=trials, final_seconds=final,
                final_params=size_cap, final_epochs=final / (per_frame * train_frames), workers=workers, why=why,
                kind="screened")
