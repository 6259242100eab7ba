"""The job's last stages: the screen's winner continued to the deadline, then the final model (``phonetune.job.run``,
steps 3 and 4).

The final run prices its remaining steps from this very model's measured step time (the plan priced the planned
size, and a recipe screened at its own size may have won), keeps back what predicting dev and test costs, and lets
the learning rate reach zero at the last step that time buys.
"""

from __future__ import annotations

import dataclasses
import logging
import math

from optuna.trial import TrialState

from phonetune.job.clock import BudgetClock, format_seconds
from phonetune.errors import BudgetError
from phonetune.job.planner import FINAL_EVALUATIONS, MIN_FINAL_STEPS, Plan, outputs_seconds, reserve_seconds
from phonetune.job.screen import job_status, screen_winner
from phonetune.job.state import JobState
from phonetune.model.params import count_params
from phonetune.model.deadline import Deadline
from phonetune.model.decode import decode_seconds
from phonetune.model.run_files import EpochMetrics
from phonetune.model.speed import Speed
from phonetune.model.speed_probe import measure_run_step_seconds
from phonetune.search import attributes as attrs
from phonetune.search.config import StudyConfig
from phonetune.search.ensemble import build_study_ensemble
from phonetune.search.promote import promote_top_trials
from phonetune.search.runner import load_fidelity_data
from phonetune.search.space import run_config_from_params
from phonetune.search.timing import seconds_per_step, trial_steps

logger = logging.getLogger(__name__)


def run_final(screen: StudyConfig, state: JobState, clock: BudgetClock, plan: Plan, progress: bool) -> dict:
    """Continue the screen's best trial to the deadline (see the module docstring); its result as a dict."""
    if "final" not in state.values:
        winner = screen_winner(screen)
        if not winner.intermediate_values:
            logger.warning("no screen trial reported an evaluation (starting the workers took the screen's time): "
                           "the final run trains trial %d (%s) from its start", winner.number,
                           winner.user_attrs.get(attrs.WARM_START) or "the first trial")
        elif winner.state != TrialState.COMPLETE:
            logger.warning("no screen trial completed: the final run continues trial %d, which the screen's end cut "
                           "after %d of its %d evaluations", winner.number, len(winner.intermediate_values),
                           screen.timing.evaluations)
        run_config = run_config_from_params(screen, winner.params, attrs.FULL_FIDELITY)
        data = load_fidelity_data(screen, attrs.FULL_FIDELITY)
        params = count_params(run_config.model, run_config.io)
        batch = run_config.train.batch_size
        # The speed line priced the trial; this model's own steps, timed here with this process's threads, price
        # the rest of its run, so the decay reaches zero when the time is really up.
        measured = measure_run_step_seconds(run_config, data.train)
        predicted = seconds_per_step(screen.timing, params, batch)
        speed = Speed(**plan.speed)
        evaluating = FINAL_EVALUATIONS * speed.predict_seconds(params, data.dev.num_frames) * (measured / predicted)
        # What predicting with this very model costs (the plan priced the planned size, and a recipe screened at
        # its own size may have won).
        reserve = reserve_seconds(speed, params, plan.dev_frames, plan.test_frames, clock.budget_s,
                                  slowdown=measured / predicted)
        wall = clock.left - reserve - evaluating
        if not winner.intermediate_values and wall < MIN_FINAL_STEPS * measured:
            needed = reserve + evaluating + MIN_FINAL_STEPS * measured - clock.left
            raise BudgetError(
                f"no screen trial reported an evaluation and the {format_seconds(clock.left)} left cannot train one "
                f"from its start ({MIN_FINAL_STEPS} steps of {1000 * measured:.0f} ms here, and "
                f"{format_seconds(reserve)} to predict dev and test). Kept: the job's state and the study's trials. "
                f"Continue it with a --budget at least {format_seconds(clock.budget_s + 1.2 * needed)}, or start it "
                "over with --fresh"
            )
        if wall <= 0:
            logger.warning("no time is left to continue the final run (%s left, %s reserved for predicting): the "
                           "final model is the screen's best trial as it stands", format_seconds(clock.left),
                           format_seconds(reserve))
            wall = 0.0
        # What the trial has trained already plus what the time left buys, at the trial's pricing. A trial the
        # screen cut stopped short of its box (its last checkpoint is its last evaluation); counting its whole box
        # would train the rest of it past the deadline.
        box = trial_steps(screen.timing, params, batch)
        trained_steps = min(box, math.ceil(box / screen.timing.evaluations) * len(winner.intermediate_values))
        final_seconds = (trained_steps + 0.5) * predicted + wall * predicted / measured
        # Predicting costs in proportion to the step time: kept as step times, the trainer prices it at each replan
        # from the step time it measures then (a load at this moment does not keep its reserve to the end).
        reserve_steps = speed.predict_seconds(params, plan.dev_frames + plan.test_frames) / predicted
        state.save(final={"source": winner.number, "final_seconds": final_seconds, "reserve_s": reserve,
                          "reserve_steps": reserve_steps, "measured_step_s": measured, "predicted_step_s": predicted})
        logger.info("final run: search trial %d continues for %s (%s at %.1f ms a step, measured)", winner.number,
                    format_seconds(wall), f"{int(wall / measured):,} steps", 1000 * measured)
    final = state.values["final"]
    final_config = dataclasses.replace(
        screen, timing=dataclasses.replace(screen.timing, final_seconds=float(final["final_seconds"])))
    if not state.done("final"):
        def report(metrics: EpochMetrics) -> None:
            logger.info("%s | final run: step %s of %s, epoch %.2f, dev %.4f", job_status("final", clock, None),
                        f"{metrics.step:,}", f"{metrics.total_steps:,}", metrics.epochs_done, metrics.dev_acc)

        result = promote_top_trials(final_config, 1, source_numbers=[int(final["source"])], progress=progress,
                                    on_epoch=report,
                                    deadline=_deadline(clock, final, plan, screen.decode.mode != "argmax"))
        promoted = next(item for item in result.promoted if item.source_number == int(final["source"]))
        state.mark_done("final", final={**final, "dev_accuracy": promoted.full_accuracy,
                                        "param_count": promoted.param_count,
                                        "screen_accuracy": promoted.search_accuracy})
    return state.values["final"]


def _deadline(clock: BudgetClock, final: dict, plan: Plan, decoding: bool) -> Deadline:
    """When the final run's time is up: the budget less the fixed part of the reserve (the outputs, and the decode
    when the study decodes), and predicting priced in step times (a state from before ``reserve_steps`` keeps its
    whole reserve fixed)."""
    if "reserve_steps" not in final:
        return Deadline(at=clock.deadline_at(clock.budget_s - float(final["reserve_s"])))
    fixed = outputs_seconds(clock.budget_s) + (decode_seconds(plan.dev_frames, plan.test_frames) if decoding else 0.0)
    return Deadline(at=clock.deadline_at(clock.budget_s - fixed), reserve_steps=float(final["reserve_steps"]))


def build_final_model(screen: StudyConfig, state: JobState, param_limit: int, max_members: int, progress: bool) -> dict:
    if not state.done("final_model"):
        result = build_study_ensemble(screen, max_members=max_members, param_limit=param_limit, progress=progress)
        state.mark_done("final_model", final_model=result.to_dict())
    return state.values["final_model"]
