"""A final run's end replanned to its deadline from the step times it measures, with what follows its last step
(predicting dev and test) priced in step times: a slow start does not keep its large reserve to the end."""

from __future__ import annotations

import math
import time

from phonetune.model.deadline import Deadline, DeadlineKeeper
from phonetune.model.optim import HorizonSchedule


def _replanned(reserve_steps: float, step_seconds: float) -> int:
    keeper = DeadlineKeeper(Deadline(at=time.monotonic() + 100.0, reserve_steps=reserve_steps))
    keeper.observe(frames_per_s=1024 / step_seconds, batch_size=1024)
    schedule = HorizonSchedule("linear", warmup=10, hold=90, total=1000)
    return keeper.replan(schedule, step=100, total_steps=1000, eval_every=100, evaluation_seconds=0.0)


def test_the_end_moves_to_what_the_time_left_buys_after_the_reserve_at_the_measured_step_time():
    # 100 s left, at 0.05 s a step: 2,000 steps without a reserve; a reserve of 200 step times costs 10 s of them.
    assert abs(_replanned(0.0, 0.05) - (100 + 2000)) <= 5
    assert abs(_replanned(200.0, 0.05) - (100 + 1800)) <= 5
    # The same reserve on a machine twice as slow costs twice the seconds: 20 of the 100.
    assert abs(_replanned(200.0, 0.10) - (100 + 800)) <= 5


def test_a_deadline_given_as_a_time_alone_keeps_no_reserve():
    keeper = DeadlineKeeper(Deadline(at=time.monotonic() + 10.0))
    assert keeper.deadline.reserve_steps == 0.0
    schedule = HorizonSchedule("linear", warmup=1, hold=0, total=50)
    # Before any step time is measured there is nothing to replan from.
    assert keeper.replan(schedule, step=5, total_steps=50, eval_every=10, evaluation_seconds=0.0) == 50


def test_every_horizon_schedule_ends_at_zero_and_a_replan_continues_from_the_rate_it_reached():
    for shape in ("linear", "cosine", "onecycle"):
        schedule = HorizonSchedule(shape, warmup=20, hold=0, total=200)
        rates = [schedule(step) for step in range(201)]
        assert max(rates) == 1.0 and rates[200] == 0.0 and rates[199] < 0.05, shape
        decay = rates[20:]
        assert all(later <= earlier for earlier, later in zip(decay, decay[1:])), shape  # never rises again
        # Replanned halfway into its decay to end later: no jump at the replanned step, zero at the new end.
        before = schedule(110)
        schedule.replan(110, 400)
        assert schedule(110) == before and schedule(400) == 0.0 and 0.0 < schedule(300) < before, shape
        assert schedule(50) == rates[50]  # what was trained before the replan keeps its rates
    # One-cycle warms up from a 25th of the rate along a half cosine; cosine decays along one.
    onecycle = HorizonSchedule("onecycle", warmup=100, hold=0, total=1000)
    assert abs(onecycle(0) - (1 / 25 + (1 - 1 / 25) * (1 - math.cos(math.pi / 100)) / 2)) < 1e-12
    cosine = HorizonSchedule("cosine", warmup=0, hold=0, total=100)
    assert abs(cosine(50) - 0.5) < 1e-12 and abs(cosine(25) - (1 + math.cos(math.pi / 4)) / 2) < 1e-12
