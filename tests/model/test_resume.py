"""When a run may resume: the same run config apart from the keys that do not change what was trained, and a linear
schedule's length or hold moved only while the rate is still constant (a direct plan's trial the screen cut, continued
by ``phonetune run`` with less time than the rest of its box)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from shared import REPO

from phonetune.errors import CheckpointError
from phonetune.model.resume import check_same_run
from phonetune.model.train_config import load_run_config
from phonetune.search import attributes as attrs
from phonetune.model.speed import Speed
from phonetune.search.config import TimingConfig
from phonetune.search.timing import horizon_steps, timed_run_config

PARAMS = 400_000


def _timed(final_seconds: float, fidelity: str):
    timing = TimingConfig(trial_seconds=60, final_seconds=final_seconds, evaluations=9, continues=True,
                          speed=Speed(fixed=0.0, per_param=1e-10, device="cpu"))
    return timed_run_config(load_run_config(REPO / "studies" / "mlp4.toml"), timing, fidelity, PARAMS), timing


def test_a_final_run_shorter_than_its_trial_box_ends_when_its_time_does():
    trial, timing = _timed(600, attrs.SEARCH_FIDELITY)
    box = horizon_steps(timing, attrs.SEARCH_FIDELITY, PARAMS, trial.train.batch_size)
    assert trial.train.pause_at_step == box and trial.train.total_steps > box
    short, _ = _timed(20, attrs.FULL_FIDELITY)  # a third of the trial's 60 s: the rest of the box is not trained
    assert short.train.total_steps < box
    assert short.train.warmup_steps + short.train.hold_steps == short.train.total_steps


def test_a_cut_trial_resumes_into_a_shorter_run_only_while_its_rate_is_constant():
    trial, _ = _timed(600, attrs.SEARCH_FIDELITY)
    short, _ = _timed(20, attrs.FULL_FIDELITY)
    stored, current = trial.to_mapping(), short.to_mapping()
    total, warmup = short.train.total_steps, short.train.warmup_steps
    # Cut after its second evaluation, inside both holds: the same rates were used under either config.
    check_same_run(stored, current, Path("last.pt"), step=2 * warmup, total_steps=total, steps_per_epoch=10_000,
                   train=short.train)
    # Past the shorter run's end the trial has trained at rates that run would have decayed: refused.
    with pytest.raises(CheckpointError, match="hold_steps|total_steps"):
        check_same_run(stored, current, Path("last.pt"), step=total + 1, total_steps=total, steps_per_epoch=10_000,
                       train=short.train)
    # Any other change is still refused.
    other = dataclasses.replace(short, train=dataclasses.replace(short.train, lr=short.train.lr * 2))
    with pytest.raises(CheckpointError, match="lr"):
        check_same_run(stored, other.to_mapping(), Path("last.pt"), step=warmup, total_steps=total,
                       steps_per_epoch=10_000, train=other.train)
