"""A final run that ends at a deadline: its horizon schedule's end replanned from the step times it measures.

``phonetune run`` gives its final run a wall-clock time, not a step count: a step count planned from a speed probe is
wrong by whatever the machine's load does later. At each evaluation the trainer hands the measured speed to a
``DeadlineKeeper``, which moves the schedule's end to the step that the time left buys, so the learning rate reaches
zero when the time is up instead of being cut mid-decay or finishing early and idling.

What comes after the last step and costs in proportion to the machine's speed (predicting dev and test with the
model) is given as ``Deadline.reserve_steps``, in step times, and priced at each replan from the step time just
measured: a load that slowed the start of the run, and made the job set aside a long reserve, gives that time back
to training once it passes.

Example::

    keeper = DeadlineKeeper(Deadline(at=time.monotonic() + 600, reserve_steps=150))
    keeper.observe(frames_per_s=41_000.0, batch_size=1024)
    new_total = keeper.replan(schedule, step=1200, total_steps=5000, eval_every=500, evaluation_seconds=4.0)
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from phonetune.model.optim import HorizonSchedule

logger = logging.getLogger(__name__)

# A deadline moves a schedule's end only when the time left buys this share of the remaining steps more or fewer.
DEADLINE_SLACK = 0.03


@dataclass(frozen=True)
class Deadline:
    """When a run's time is up: ``at`` (a time.monotonic() value) less ``reserve_steps`` step times of work that
    follows the last step and scales with the machine's speed."""

    at: float
    reserve_steps: float = 0.0


class DeadlineKeeper:
    """The step time of the last few evaluations and the replanning it drives toward ``deadline``."""

    def __init__(self, deadline: Deadline) -> None:
        self.deadline = deadline
        self.step_seconds: float | None = None

    def observe(self, frames_per_s: float, batch_size: int) -> None:
        """Fold in the speed of the round just trained (see ``observe_step_seconds``)."""
        self.observe_step_seconds(batch_size / frames_per_s)

    def observe_step_seconds(self, latest: float) -> None:
        """Fold in a step time just measured: a moving average, half from the latest, so a busy machine's noise
        does not swing the end while a lasting change of load moves it within a few measurements."""
        self.step_seconds = latest if self.step_seconds is None else 0.5 * (self.step_seconds + latest)

    def replan(self, schedule: HorizonSchedule | None, step: int, total_steps: int, eval_every: int,
               evaluation_seconds: float) -> int:
        """The schedule's end after this evaluation: moved (and ``schedule`` replanned to it) to the step the time
        left buys, when that differs from ``total_steps`` by more than DEADLINE_SLACK; else ``total_steps``."""
        if (self.step_seconds is None or schedule is None or step < schedule.decay_start
                or step >= total_steps):
            return total_steps
        evaluations_left = math.ceil((total_steps - step) / eval_every)
        end = self.deadline.at - self.deadline.reserve_steps * self.step_seconds
        seconds = end - time.monotonic() - evaluations_left * evaluation_seconds
        total = step + max(1, int(seconds / self.step_seconds))
        if abs(total - total_steps) <= DEADLINE_SLACK * (total_steps - step):
            return total_steps
        logger.info("the deadline moves the schedule's end from step %d to %d (%.1f ms a step measured)",
                    total_steps, total, 1000 * self.step_seconds)
        schedule.replan(step, total)
        return total
