"""Time-boxed trials: a search trial as the first minutes of the final run it would become.

``phonetune run`` compares candidates the way its deadline will: each gets the same wall time. Under ``[timing]``
a trial's run config is priced in optimizer steps at the measured speed line (``seconds_per_frame + per_param x
params + seconds_per_step / batch_size`` per training frame), so a smaller model takes more steps in the same time.
Every trial is the start of a ``final_seconds`` run on the linear schedule:

- ``total_steps``: the steps ``final_seconds`` buys this model;
- ``warmup_steps``: the first evaluation's steps, so every later comparison is at full rate;
- ``hold_steps``: the full rate to the end of the trial (``pause_at_step``), so a trial ends undecayed and the
  best one continues where it stopped, decaying to zero at its run's end (``search.promote`` copies its folder);
- ``eval_every_steps``: ``[timing] evaluations`` evenly spaced, the pruner's steps;
- ``ema_decay``: a weight average over about one evaluation interval, which reads a run at full rate about as
  well as annealing it would, so undecayed trials compare fairly.

A promoted (full-fidelity) run gets the same settings, so it continues its trial bit for bit, except that it runs to
``total_steps`` and evaluates on all of dev about eight times.

Example::

    timing = TimingConfig(trial_seconds=60, final_seconds=600, seconds_per_frame_per_param=6.5e-11)
    steps = trial_steps(timing, params=1_280_552, batch_size=1024)   # about 720 steps here
"""

from __future__ import annotations

import dataclasses
import math

from phonetune.model.train_config import RunConfig
from phonetune.search import attributes as attrs
from phonetune.search.config import TimingConfig

# Evaluations of a promoted run over its whole length (a checkpoint with each, so a kill loses at most this share).
FULL_RUN_EVALUATIONS = 8


def seconds_per_step(timing: TimingConfig, params: int, batch_size: int) -> float:
    """Predicted wall time of one optimizer step of a ``params``-parameter model at ``batch_size``."""
    per_frame = timing.seconds_per_frame + timing.seconds_per_frame_per_param * params
    return per_frame * batch_size + timing.seconds_per_step


def steps_in(timing: TimingConfig, seconds: float, params: int, batch_size: int) -> int:
    """Optimizer steps that ``seconds`` of training buy (at least 1)."""
    return max(1, int(seconds / seconds_per_step(timing, params, batch_size)))


def trial_steps(timing: TimingConfig, params: int, batch_size: int) -> int:
    return steps_in(timing, timing.trial_seconds, params, batch_size)


def timed_run_config(run_config: RunConfig, timing: TimingConfig, fidelity: str, params: int) -> RunConfig:
    """``run_config`` with the steps, schedule, evaluations and weight average of a time-boxed trial or of the run
    it starts (``fidelity`` "search" or "full"); see the module docstring."""
    batch = run_config.train.batch_size
    box = trial_steps(timing, params, batch)
    searching = fidelity == attrs.SEARCH_FIDELITY
    total = steps_in(timing, timing.final_seconds, params, batch)
    if searching:
        total = max(box, total)
    every = max(1, math.ceil(box / timing.evaluations))
    warmup = every  # from the trial alone, so the run it continues into keeps the same schedule
    train = dataclasses.replace(
        run_config.train,
        scheduler="linear",
        total_steps=total,
        warmup_steps=warmup,
        # A run shorter than its trial's box (a trial the screen cut, continued with little time left) holds to its
        # end: the time is the limit, not the box (the trainer allows the change while the rate is still constant).
        hold_steps=max(0, min(box, total) - warmup),
        pause_at_step=box if searching else 0,
        eval_every_steps=every if searching else max(every, math.ceil(total / FULL_RUN_EVALUATIONS)),
        ema_decay=1.0 - 1.0 / max(10, every),
    )
    return dataclasses.replace(run_config, train=train)
