"""The job's final run (``phonetune.job.run``, step 3): the screen's winner trained to the final stage's end.

A screened plan trains the winner from scratch at the final horizon; a direct plan continues its one trial (the
first tenth of this very run). Either way the run's steps are priced from this very model's measured step time (the
plan priced the planned size at the speed line), predicting dev and test is kept back in step times, and the
learning rate reaches zero at the last step the time buys (``model.deadline`` replans the end as it goes). The run
is the full-data trial of the ``<name>-full`` study (``search.promote``).
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass
from typing import Any

from optuna.trial import TrialState

from phonetune.errors import BudgetError
from phonetune.job.clock import TimeLimit, format_seconds
from phonetune.job.planner import FINAL_EVALUATIONS, MIN_FINAL_STEPS, Plan
from phonetune.job.screen import job_status, screen_winner
from phonetune.job.state import JobState
from phonetune.model.deadline import Deadline
from phonetune.model.params import count_params
from phonetune.model.run_files import EpochMetrics
from phonetune.model.speed import Speed
from phonetune.model.speed_probe import measure_run_step_seconds
from phonetune.search import attributes as attrs
from phonetune.search.config import StudyConfig
from phonetune.search.promote import promote_top_trials
from phonetune.search.runner import load_fidelity_data
from phonetune.search.space import run_config_from_params
from phonetune.search.timing import horizon_steps

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FinalRun:
    """The final run as decided (``source`` .. ``predicted_step_s``, kept in the job's state before it trains) and
    as it ended (``dev_accuracy`` .. ``screen_accuracy``, once trained)."""

    source: int  # the search trial it trains
    final_seconds: float  # its length in the speed line's seconds, which price its steps (search.timing)
    reserve_s: float  # predicting dev and test with it, at its measured speed
    reserve_steps: float  # the same in its step times, which the deadline reprices as it goes
    measured_step_s: float
    predicted_step_s: float
    continues: bool = False  # it continues its trial's checkpoint (a direct plan)
    dev_accuracy: float | None = None
    param_count: int | None = None
    screen_accuracy: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "FinalRun":
        known = {field.name for field in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in values.items() if key in known})


def run_final(screen: StudyConfig, state: JobState, limit: TimeLimit, plan: Plan, progress: bool) -> FinalRun:
    """Train the screen's winner until ``limit`` (see the module docstring)."""
    if "final" not in state.values:
        state.save(final=_decide(screen, limit, plan).to_dict())
    final = FinalRun.from_dict(state.values["final"])
    final_config = dataclasses.replace(screen, timing=dataclasses.replace(screen.timing,
                                                                          final_seconds=final.final_seconds))
    if not state.done("final"):
        def report(metrics: EpochMetrics) -> None:
            # Each evaluation; on a terminal the trainer's progress bar is the live line (--verbose shows these).
            logger.debug("%s | final run: step %s of %s, epoch %.2f, dev %.4f", job_status("final", limit),
                         f"{metrics.step:,}", f"{metrics.total_steps:,}", metrics.epochs_done, metrics.dev_acc)

        result = promote_top_trials(final_config, 1, source_numbers=[final.source], progress=progress,
                                    on_epoch=report,
                                    deadline=Deadline(at=limit.deadline, reserve_steps=final.reserve_steps))
        promoted = next(item for item in result.promoted if item.source_number == final.source)
        final = dataclasses.replace(final, dev_accuracy=promoted.full_accuracy, param_count=promoted.param_count,
                                    screen_accuracy=promoted.search_accuracy)
        state.mark_done("final", final=final.to_dict())
    return final


def _decide(screen: StudyConfig, limit: TimeLimit, plan: Plan) -> FinalRun:
    """The winner, and the length its run gets from the time left at its own measured speed."""
    winner = screen_winner(screen)
    continues = screen.timing.continues
    if continues and not winner.intermediate_values:
        logger.warning("the screen's one trial was cut before its first evaluation (starting the worker took the "
                       "screen's time): the final run trains trial %d from its start", winner.number)
    elif winner.state != TrialState.COMPLETE:
        logger.warning("no screen trial completed: the final run trains trial %d, which the screen's end cut after "
                       "%d of its %d evaluations", winner.number, len(winner.intermediate_values),
                       screen.timing.evaluations)
    run_config = run_config_from_params(screen, winner.params, attrs.FULL_FIDELITY)
    data = load_fidelity_data(screen, attrs.FULL_FIDELITY)
    params = count_params(run_config.model, run_config.io)
    batch = run_config.train.batch_size
    speed = Speed(**plan.speed)
    # The speed line priced the plan; this model's own steps, timed here with this process's threads, price the
    # rest of its run, so the decay reaches zero when the time is really up.
    measured = measure_run_step_seconds(run_config, data.train)
    predicted = speed.step_seconds(params, batch)
    slowdown = measured / predicted
    evaluating = FINAL_EVALUATIONS * speed.predict_seconds(params, data.dev.num_frames) * slowdown
    predicting = speed.predict_seconds(params, plan.dev_frames + plan.test_frames) * slowdown
    wall = limit.left - predicting - evaluating
    trained_steps = 0
    if continues:
        # What the trial trained already is the run's start. A trial the screen cut stopped short of its box (its
        # last checkpoint is its last evaluation); counting its whole box would train the rest past the deadline.
        box = horizon_steps(screen.timing, attrs.SEARCH_FIDELITY, params, batch)
        trained_steps = min(box, math.ceil(box / screen.timing.evaluations) * len(winner.intermediate_values))
    if trained_steps == 0 and wall < MIN_FINAL_STEPS * measured:
        needed = predicting + evaluating + MIN_FINAL_STEPS * measured - limit.left
        raise BudgetError(
            f"the {format_seconds(limit.left)} left for the final run cannot train trial {winner.number} from its "
            f"start ({MIN_FINAL_STEPS} steps of {1000 * measured:.0f} ms here, and {format_seconds(predicting)} to "
            f"predict dev and test). Kept: the job's state and the study's trials. Continue it with a --budget at "
            f"least {format_seconds(limit.clock.budget_s + 1.2 * needed)}, or start it over with --fresh"
        )
    if wall <= 0:
        logger.warning("no time is left to continue the final run (%s left, %s reserved for predicting): the final "
                       "model is the screen's trial as it stands", format_seconds(limit.left),
                       format_seconds(predicting))
        wall = 0.0
    logger.info("final run: search trial %d %s for %s (%s steps at %.1f ms, measured)", winner.number,
                "continues" if continues else "trains from scratch", format_seconds(wall),
                f"{int(wall / measured):,}", 1000 * measured)
    return FinalRun(
        source=winner.number,
        # In the speed line's seconds, which is how search.timing prices the run's steps.
        final_seconds=(trained_steps + 0.5) * predicted + wall / slowdown,
        reserve_s=predicting,
        # Predicting costs in proportion to the step time: kept as step times, the trainer prices it at each replan
        # from the step time it measures then (a load at this moment does not keep its reserve to the end).
        reserve_steps=predicting / measured,
        measured_step_s=measured,
        predicted_step_s=predicted,
        continues=continues,
    )
