"""The trainer on a real (tiny, learnable) HW1P2-layout corpus: learning, files, exact resume, callbacks, errors;
step-budgeted runs that end mid-epoch, a paused run continued bit-identically, the weight average."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from shared import REPO

from phonetune.data_pipeline import DataConfig
from phonetune.errors import CheckpointError, ParamLimitError
from phonetune.model import ModelConfig, ModelIO, RunConfig, TrainConfig, load_run_config
from phonetune.model.checkpoint import read_checkpoint, save_checkpoint
from phonetune.model.network import build_model
from phonetune.model.optim import build_optimizer, linear_factor
from phonetune.model.trainer import Trainer


@pytest.fixture(autouse=True)
def one_thread(single_torch_thread):
    """Every test here trains or predicts tiny models in this process."""


def _run_config(root, **train) -> RunConfig:
    data = DataConfig(root=str(root), context_frames=2, cache_dir=str(Path(root) / ".cache"))
    model = ModelConfig(hidden_layers=2, base_width=64, activation="gelu", batchnorm="after", dropout=0.1)
    settings = dict(epochs=2, batch_size=64, lr=3e-3, device="cpu", seed=3)
    settings.update(train)
    return RunConfig(data, model, TrainConfig(**settings))


def _train(run_config, out_dir, **kwargs):
    trainer = Trainer(run_config, out_dir, progress=False, **kwargs)
    trainer.setup()
    try:
        return trainer.train()
    finally:
        trainer.cleanup()


def _weights(path):
    return read_checkpoint(path)["model"]


def _same_weights(first, second) -> bool:
    return first.keys() == second.keys() and all(torch.equal(first[key], second[key]) for key in first)


def _deterministic(history):
    return [(m.epoch, m.train_loss, m.train_acc, m.dev_loss, m.dev_acc, m.lr) for m in history]


def test_training_learns_the_tiny_corpus_and_writes_the_run_folder(tiny_corpus, tmp_path):
    run_config = _run_config(tiny_corpus.root, epochs=3, scheduler="cosine", optimizer="adamw", grad_clip=1.0)
    result = _train(run_config, tmp_path / "run")
    assert [m.epoch for m in result.history] == [1, 2, 3]
    # 40 classes: chance is 2.5%; the class means are well separated, so a small MLP gets far above it.
    assert result.history[-1].dev_acc > 0.5
    assert result.history[-1].train_loss < result.history[0].train_loss
    assert result.history[1].lr < result.history[0].lr  # cosine decays per epoch
    assert result.best_dev_acc == max(m.dev_acc for m in result.history)
    run = tmp_path / "run"
    for name in ("config.toml", "metrics.json", "last.pt", "best.pt", "curves.html"):
        assert (run / name).is_file(), name
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["epochs_run"] == 3 and metrics["param_count"] == result.param_count
    assert metrics["dev_accuracy"] == result.best_dev_acc and len(metrics["history"]) == 3
    assert metrics["trained_on"] == "all"  # the run config's train_fraction is 1
    assert load_run_config(run / "config.toml") == run_config
    assert read_checkpoint(run / "best.pt")["epoch"] == result.best_epoch
    page = (run / "curves.html").read_text()
    for trace in ("train loss", "dev loss", "train accuracy", "dev accuracy"):
        assert f'"name":"{trace}"' in page, f"curves.html has no {trace} trace"
    assert '"x":[1,2,3]' in page  # one point per epoch


@pytest.mark.parametrize("scheduler", ["onecycle", "plateau"])
def test_interrupted_run_resumes_to_the_same_weights_and_metrics(tiny_corpus, tmp_path, scheduler):
    run_config = _run_config(tiny_corpus.root, epochs=3, scheduler=scheduler, optimizer="adamw", weight_decay=0.01)
    straight = _train(run_config, tmp_path / "straight")

    class Interrupted(Exception):
        pass

    def stop_after_first(metrics):
        if metrics.epoch == 1:
            raise Interrupted

    with pytest.raises(Interrupted):
        _train(run_config, tmp_path / "resumed", epoch_callback=stop_after_first)
    assert read_checkpoint(tmp_path / "resumed" / "last.pt")["epoch"] == 1
    torch.manual_seed(12345)  # a resumed process starts with other RNG states; the checkpoint must restore them
    resumed = _train(run_config, tmp_path / "resumed")
    assert resumed.resumed_from_epoch == 1
    assert _deterministic(resumed.history) == _deterministic(straight.history)
    assert _same_weights(_weights(tmp_path / "straight" / "last.pt"), _weights(tmp_path / "resumed" / "last.pt"))


def test_extending_epochs_of_a_fixed_schedule_continues_the_run(tiny_corpus, tmp_path):
    one = _run_config(tiny_corpus.root, epochs=1, optimizer="sgd_nesterov", lr=0.05)
    two = _run_config(tiny_corpus.root, epochs=2, optimizer="sgd_nesterov", lr=0.05)
    _train(one, tmp_path / "grown")
    grown = _train(two, tmp_path / "grown")
    straight = _train(two, tmp_path / "straight")
    assert grown.resumed_from_epoch == 1
    assert _deterministic(grown.history) == _deterministic(straight.history)
    assert _same_weights(_weights(tmp_path / "grown" / "last.pt"), _weights(tmp_path / "straight" / "last.pt"))


def test_sigkilled_training_process_resumes_exactly(tiny_corpus, tmp_path):
    run_config = _run_config(tiny_corpus.root, epochs=2, optimizer="rmsprop", lr=1e-3, scheduler="step", step_size=1)
    config_path = tmp_path / "run.toml"
    from phonetune.model import write_run_config

    write_run_config(config_path, run_config)
    # The child kills itself with SIGKILL right after epoch 1's checkpoint: no cleanup, no finally blocks run.
    script = textwrap.dedent(f"""
        import os, signal
        from phonetune.model import load_run_config
        from phonetune.model.trainer import Trainer
        def die(metrics):
            os.kill(os.getpid(), signal.SIGKILL)
        Trainer(load_run_config({str(config_path)!r}), {str(tmp_path / 'killed')!r}, progress=False,
                epoch_callback=die).train()
    """)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    child = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, timeout=120, env=env)
    assert child.returncode == -signal.SIGKILL, child.stderr.decode()
    assert read_checkpoint(tmp_path / "killed" / "last.pt")["epoch"] == 1
    assert not (tmp_path / "killed" / "curves.html").exists()
    resumed = _train(run_config, tmp_path / "killed")
    straight = _train(run_config, tmp_path / "straight")
    assert resumed.resumed_from_epoch == 1
    assert _deterministic(resumed.history) == _deterministic(straight.history)
    assert _same_weights(_weights(tmp_path / "killed" / "last.pt"), _weights(tmp_path / "straight" / "last.pt"))
    assert not [name for name in os.listdir(tmp_path / "killed") if name.endswith(".tmp")]


def test_callback_exception_stops_training_and_propagates(tiny_corpus, tmp_path):
    class Pruned(Exception):
        pass

    seen = []

    def prune_at_two(metrics):
        seen.append(metrics.epoch)
        if metrics.epoch == 2:
            raise Pruned(f"pruned at {metrics.epoch}")

    with pytest.raises(Pruned, match="pruned at 2"):
        _train(_run_config(tiny_corpus.root, epochs=5), tmp_path / "run", epoch_callback=prune_at_two)
    assert seen == [1, 2]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["epochs_run"] == 2
    assert read_checkpoint(tmp_path / "run" / "last.pt")["epoch"] == 2
    assert (tmp_path / "run" / "curves.html").is_file()


def test_other_config_in_an_existing_run_folder_is_refused_unless_overwritten(tiny_corpus, tmp_path):
    _train(_run_config(tiny_corpus.root, epochs=1), tmp_path / "run")
    other = _run_config(tiny_corpus.root, epochs=1, lr=1e-2)
    with pytest.raises(CheckpointError, match=r"\[train\] lr: 0.003 -> 0.01"):
        _train(other, tmp_path / "run")
    cosine = _run_config(tiny_corpus.root, epochs=1, scheduler="cosine")
    _train(cosine, tmp_path / "cosine")
    with pytest.raises(CheckpointError, match="epochs: 1 -> 2"):
        _train(_run_config(tiny_corpus.root, epochs=2, scheduler="cosine"), tmp_path / "cosine")
    result = _train(other, tmp_path / "run", overwrite=True)
    assert result.resumed_from_epoch == 0
    assert read_checkpoint(tmp_path / "run" / "last.pt")["run_config"]["train"]["lr"] == 1e-2


def test_over_budget_model_fails_before_touching_the_data(tmp_path):
    data = DataConfig(root=str(tmp_path / "does-not-exist"), context_frames=50)
    model = ModelConfig(hidden_layers=8, base_width=8192)
    trainer = Trainer(RunConfig(data, model, TrainConfig(device="cpu")), tmp_path / "run", progress=False)
    with pytest.raises(ParamLimitError, match="20,000,000"):
        trainer.setup()
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("optimizer", ["adamw", "adam", "sgd_nesterov", "rmsprop"])
def test_weight_decay_shrinks_weight_matrices_but_not_biases_or_batch_norm(optimizer):
    model = build_model(ModelConfig(hidden_layers=2, base_width=16, batchnorm="after"), ModelIO(28 * 5, 40), 100_000)
    config = TrainConfig(optimizer=optimizer, lr=1e-4, weight_decay=0.5, device="cpu")  # small: no overshoot
    optim = build_optimizer(model, config, torch.device("cpu"))
    before = {name: param.detach().clone() for name, param in model.named_parameters()}
    for param in model.parameters():
        param.grad = torch.zeros_like(param)  # no loss signal: whatever moves, moves by weight decay alone
    optim.step()
    moved = {name for name, param in model.named_parameters() if not torch.equal(param, before[name])}
    matrices = {name for name, param in model.named_parameters() if param.ndim == 2}
    assert len(matrices) == 3 and len(before) > len(matrices)  # three Linear weights; biases and BN affine besides
    assert moved == matrices
    for name in matrices:
        assert dict(model.named_parameters())[name].norm() < before[name].norm()


def test_resuming_a_checkpoint_with_another_optimizer_grouping_is_a_named_error(tiny_corpus, tmp_path):
    run_config = _run_config(tiny_corpus.root, epochs=2, weight_decay=1e-3)
    _train(_run_config(tiny_corpus.root, epochs=1, weight_decay=1e-3), tmp_path / "run")
    last = tmp_path / "run" / "last.pt"
    payload = read_checkpoint(last)
    # What a version that put every parameter in one group wrote.
    model = build_model(run_config.model, run_config.io)
    payload["optimizer"] = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-3).state_dict()
    save_checkpoint(last, payload)
    with pytest.raises(CheckpointError, match=r"last.pt holds optimizer state for other parameter groups"):
        _train(run_config, tmp_path / "run")
    assert read_checkpoint(last)["epoch"] == 1  # the refused run left the checkpoint as it was


# ---------------------------------------------------------------- step-budgeted runs
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


def test_a_deadline_moves_the_linear_schedules_end_to_what_the_time_left_buys(tiny_corpus, tmp_path):
    # Planned for far more steps than a few seconds buy: the run replans its end at each evaluation and stops in
    # time, its rate falling to zero at the replanned end; the replanned end survives a resume.
    config = _stepped(tiny_corpus.root, total_steps=200_000, warmup_steps=2, eval_every_steps=20)
    started = time.monotonic()
    trainer = Trainer(config, tmp_path / "run", progress=False, deadline=started + 4.0)
    trainer.setup()
    try:
        result = trainer.train()
    finally:
        trainer.cleanup()
    assert time.monotonic() - started < 12.0  # 200,000 steps would take minutes
    assert result.history[-1].step < 200_000 and result.history[-1].lr == 0.0
    schedule = read_checkpoint(tmp_path / "run" / "last.pt")["scheduler"]["lr_lambdas"][0]
    assert schedule["total"] == result.history[-1].step and schedule["anchor_step"] is not None


def test_a_deadline_is_kept_between_evaluations_too(tiny_corpus, tmp_path):
    # One evaluation only, at the planned end: a load that came and went after the last evaluation (here: the
    # whole run has none before its end) must not decide the end. The run replans every REPLAN_EVERY_STEPS steps.
    config = _stepped(tiny_corpus.root, total_steps=200_000, warmup_steps=2, eval_every_steps=200_000)
    started = time.monotonic()
    trainer = Trainer(config, tmp_path / "run", progress=False, deadline=started + 4.0)
    trainer.setup()
    try:
        result = trainer.train()
    finally:
        trainer.cleanup()
    wall = time.monotonic() - started
    last = result.history[-1]
    assert wall < 8.0, [(m.step, m.total_steps, m.seconds) for m in result.history]  # 200,000 steps: minutes
    assert last.step < 200_000 and last.lr == 0.0 and last.total_steps == last.step
