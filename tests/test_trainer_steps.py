"""Step-budgeted runs: a run that ends mid-epoch at its deadline, a paused run continued bit-identically (with
augmentation and a weight average), a continuation lengthened while its linear schedule still holds its rate."""

from __future__ import annotations

import math

import pytest
import torch
from test_trainer import _run_config, _same_weights, _train, _weights

from phonetune.errors import CheckpointError
from phonetune.model.checkpoint import read_checkpoint
from phonetune.model.optim import linear_factor


@pytest.fixture(autouse=True)
def one_thread(single_torch_thread):
    """Every test here trains tiny models in this process."""


def _stepped(root, **train):
    settings = dict(scheduler="linear", total_steps=23, warmup_steps=3, eval_every_steps=5, batch_size=64)
    settings.update(train)
    return _run_config(root, **settings)


def test_linear_schedule_warms_up_holds_then_reaches_zero_at_the_last_step():
    factors = [linear_factor(step, warmup=2, hold=3, total=10) for step in range(10)]
    assert factors[:5] == [0.5, 1.0, 1.0, 1.0, 1.0]
    assert factors[5:] == [1.0, 0.8, 0.6, 0.4, 0.2]  # linear to zero: the step after the last would be 0
    assert linear_factor(10, 2, 3, 10) == 0.0


def test_a_step_budgeted_run_ends_mid_epoch_with_an_evaluation_at_its_last_step(tiny_corpus, tmp_path):
    result = _train(_stepped(tiny_corpus.root), tmp_path / "run")
    steps_per_epoch = 15  # 24 training utterances of 20-60 frames at batch 64 (checked below through the history)
    # Evaluations every 5 steps (across the epoch end at 15) and at the end, exactly at total_steps, mid-epoch.
    assert [metrics.step for metrics in result.history] == [5, 10, 15, 20, 23]
    assert math.isclose(result.history[-1].epochs_done, 23 / steps_per_epoch)
    assert read_checkpoint(tmp_path / "run" / "last.pt")["step"] == 23
    # The rate falls linearly after the warm-up (a record holds the rate of the step after it) and is 0 at the end.
    tenth = next(metrics for metrics in result.history if metrics.step == 10)
    assert math.isclose(tenth.lr, 3e-3 * linear_factor(10, 3, 0, 23), rel_tol=1e-6)
    assert result.history[-1].lr == 0.0


def test_a_paused_run_continued_later_equals_the_uninterrupted_run(tiny_corpus, tmp_path):
    masked = dict(ema_decay=0.9)
    whole_config = _stepped(tiny_corpus.root, **masked)
    whole_config.data.time_mask_prob = 0.5
    whole_config.data.time_mask_max_frames = 2
    whole = _train(whole_config, tmp_path / "whole")
    paused_config = _stepped(tiny_corpus.root, pause_at_step=8, **masked)  # step 8 is inside the first epoch
    paused_config.data.time_mask_prob = 0.5
    paused_config.data.time_mask_max_frames = 2
    first = _train(paused_config, tmp_path / "paused")
    assert first.history[-1].step == 8 and read_checkpoint(tmp_path / "paused" / "last.pt")["shuffle_state"] is not None
    continued = _train(whole_config, tmp_path / "paused")

    def evaluations(history):  # the pause adds an evaluation at step 8; the others must agree exactly
        return {m.step: (m.dev_loss, m.dev_acc, m.lr) for m in history if m.step != 8}

    assert evaluations(continued.history) == evaluations(whole.history)
    assert [m.step for m in continued.history] == [5, 8, 10, 15, 20, 23]
    assert _same_weights(_weights(tmp_path / "whole" / "last.pt"), _weights(tmp_path / "paused" / "last.pt"))
    assert _same_weights(_weights(tmp_path / "whole" / "best.pt"), _weights(tmp_path / "paused" / "best.pt"))
    ema = read_checkpoint(tmp_path / "whole" / "last.pt")["ema"]
    # best.pt predicts with the weight average, not the last iterate.
    assert not _same_weights(_weights(tmp_path / "whole" / "last.pt"), ema["module"])


def test_a_holding_run_may_be_lengthened_but_a_decaying_one_may_not(tiny_corpus, tmp_path):
    holding = _stepped(tiny_corpus.root, total_steps=40, hold_steps=10, pause_at_step=8)
    _train(holding, tmp_path / "run")
    longer = _stepped(tiny_corpus.root, total_steps=60, hold_steps=10)
    result = _train(longer, tmp_path / "run")  # steps 1-8 had the same rates under either total
    assert result.history[-1].step == 60
    shorter = _stepped(tiny_corpus.root, total_steps=50, hold_steps=10)
    with pytest.raises(CheckpointError, match=r"total_steps: 60 -> 50 .*begun to decay"):
        _train(shorter, tmp_path / "run")


def test_the_weight_average_is_what_best_pt_predicts_with(tiny_corpus, tmp_path):
    result = _train(_stepped(tiny_corpus.root, ema_decay=0.95), tmp_path / "run")
    best = read_checkpoint(tmp_path / "run" / "best.pt")
    last = read_checkpoint(tmp_path / "run" / "last.pt")
    if best["best_epoch"] == len(result.history):
        assert _same_weights(best["model"], last["ema"]["module"])
    assert torch.isfinite(torch.tensor(result.best_dev_acc))
