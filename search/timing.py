"""Trials sized in wall time: each search trial a whole run compressed to the trial horizon.

``phonetune run`` compares candidates the way its deadline will: each gets the same wall time, and each is judged
finished. Under ``[timing]`` a run config is priced in optimizer steps at the study's speed line
(``model.speed.Speed``: seconds per training frame from the parameter count and the batch size), so a smaller model
takes more steps in the same time. A search trial is a whole run of ``trial_seconds``:

- ``total_steps``: the steps ``trial_seconds`` buy this model;
- ``scheduler``: the trial's own horizon schedule (``model.optim.HorizonSchedule``: linear, cosine or one-cycle;
  any other the study names becomes linear): after ``warmup_steps`` (``WARMUP_SHARE`` of them, one-cycle
  ``ONECYCLE_WARMUP_SHARE``) the learning rate falls to zero at the last step, as the final run's will at its own
  end: a high learning rate or a strong regularizer is judged once it has settled, not while it still holds a
  short run back (short trials at a held rate favour small rates and little regularization; Wu et al., ICLR 2018,
  "short-horizon bias");
- ``eval_every_steps``: ``[timing] evaluations`` evenly spaced; the last one, at the horizon, is the trial's value;
- ``ema_decay``: a weight average over about a twentieth of the run, which the evaluations read.

A promoted (final) run gets the same shape over ``final_seconds``, evaluating on all of dev
``FULL_RUN_EVALUATIONS`` times; ``phonetune run`` replans its end to the deadline from the steps it measures.

With ``[timing] continues`` (a direct plan: one trial, which becomes the final run) the trial is instead the first
``trial_seconds`` of its final run: linear, warming up over its first evaluation and holding the full rate to its
end (``pause_at_step``), so the promoted run continues its checkpoint and decays to zero at the final run's end.

Example::

    timing = TimingConfig(trial_seconds=60, final_seconds=480, speed=Speed(fixed=5e-7, per_param=7.5e-11,
                                                                           device="cpu"))
    steps = horizon_steps(timing, "search", params=985_840, batch_size=1024)
"""

from __future__ import annotations

import dataclasses
import math

from phonetune.model.train_config import HORIZON_SHAPES, RunConfig
from phonetune.search import attributes as attrs
from phonetune.search.config import TimingConfig

# Evaluations of a promoted run over its whole length (a checkpoint with each, so a kill loses at most this share).
FULL_RUN_EVALUATIONS = 8
WARMUP_SHARE = 0.05
ONECYCLE_WARMUP_SHARE = 0.3  # torch's OneCycleLR default: one-cycle spends its first 30% rising
# The weight average spans about this share of a run's steps.
EMA_SHARE = 0.05


def horizon_steps(timing: TimingConfig, fidelity: str, params: int, batch_size: int) -> int:
    """Optimizer steps of a run at ``fidelity``: the trial horizon (search) or the final one (full)."""
    assert timing.speed is not None  # TimingConfig.problems requires it when timing is enabled
    seconds = timing.trial_seconds if fidelity == attrs.SEARCH_FIDELITY else timing.final_seconds
    return timing.speed.steps_in(seconds, params, batch_size)


def timed_run_config(run_config: RunConfig, timing: TimingConfig, fidelity: str, params: int) -> RunConfig:
    """``run_config`` as a whole run of the trial horizon (``fidelity`` "search") or of the final horizon ("full"),
    or with ``timing.continues`` as the start of its final run; see the module docstring."""
    if timing.continues:
        return _continued_run_config(run_config, timing, fidelity, params)
    batch = run_config.train.batch_size
    total = horizon_steps(timing, fidelity, params, batch)
    evaluations = timing.evaluations if fidelity == attrs.SEARCH_FIDELITY else FULL_RUN_EVALUATIONS
    shape = run_config.train.scheduler if run_config.train.scheduler in HORIZON_SHAPES else "linear"
    warmup = ONECYCLE_WARMUP_SHARE if shape == "onecycle" else WARMUP_SHARE
    train = dataclasses.replace(
        run_config.train,
        scheduler=shape,
        total_steps=total,
        warmup_steps=max(1, round(warmup * total)),
        hold_steps=0,
        pause_at_step=0,
        eval_every_steps=max(1, math.ceil(total / evaluations)),
        ema_decay=1.0 - 1.0 / max(10, round(EMA_SHARE * total)),
    )
    return dataclasses.replace(run_config, train=train)


def _continued_run_config(run_config: RunConfig, timing: TimingConfig, fidelity: str, params: int) -> RunConfig:
    """A trial as the first ``trial_seconds`` of its final run, at the full rate to its end, and the final run that
    continues it (``[timing] continues``)."""
    batch = run_config.train.batch_size
    box = horizon_steps(timing, attrs.SEARCH_FIDELITY, params, batch)
    searching = fidelity == attrs.SEARCH_FIDELITY
    total = horizon_steps(timing, attrs.FULL_FIDELITY, params, batch)
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
