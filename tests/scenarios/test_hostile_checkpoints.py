"""Hostile checkpoints: one that does not match its config, one damaged after it was written, one from before
checksums, and a full disk while writing one.

Two real one-epoch runs on a tiny corpus give genuine checkpoints. ``phonetune predict`` with weights from one run
and the config of the other must refuse with a CheckpointError naming the file (and leave an earlier submission
alone); so must a checkpoint with one bit flipped (same size: only the SHA-256 trailer can tell) or its trailer cut
off, while a format-1 checkpoint (no trailer) still predicts, with a warning. A training run that continues on a
disk that fills up (a real one: a small tmpfs) must fail with a CheckpointError naming the file, leaving the previous
epoch's checkpoints byte for byte as they were, still loadable, and no partial file behind; once space is freed the
same command resumes.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
from corpus import write_tiny_corpus
from shared import ONE_THREAD_ENV, fill_disk, one_torch_thread

from phonetune.data_pipeline import DataConfig
from phonetune.errors import CheckpointError
from phonetune.model import ModelConfig, RunConfig, TrainConfig
from phonetune.model.checkpoint import TRAILER_BYTES, read_checkpoint, save_checkpoint
from phonetune.model.inference import load_checkpoint
from phonetune.model.trainer import Trainer
from phonetune import interrupts
from phonetune.cli.main import main


class TwoRuns:
    """Runs "narrow" (no hidden layer, context 1) and "deep" (one hidden layer, context 2), one epoch each."""

    def __init__(self, folder: Path) -> None:
        self.corpus = write_tiny_corpus(folder / "data")
        self.folder = folder
        self.narrow = self._train(folder / "narrow", ModelConfig(hidden_layers=0), context_frames=1)
        self.deep = self._train(folder / "deep", ModelConfig(hidden_layers=1, base_width=64), context_frames=2)

    def _train(self, out_dir: Path, model: ModelConfig, context_frames: int) -> Path:
        data = DataConfig(root=str(self.corpus.root), context_frames=context_frames,
                          cache_dir=str(self.folder / "cache"))
        run_config = RunConfig(data, model, TrainConfig(epochs=1, batch_size=64, device="cpu", seed=1))
        trainer = Trainer(run_config, out_dir, progress=False)
        trainer.setup()
        try:
            trainer.train()
        finally:
            trainer.cleanup()
        return out_dir


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> TwoRuns:
    with one_torch_thread():
        yield TwoRuns(tmp_path_factory.mktemp("runs"))


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_predict_with_a_checkpoint_from_another_config_is_refused(runs, tmp_path, capsys):
    submission = tmp_path / "submission.csv"
    assert main(["predict", "--checkpoint", str(runs.narrow / "best.pt"), "--data", str(runs.corpus.root),
                 "--out", str(submission), "--device", "cpu"]) == 0
    written = _digest(submission)
    out = capsys.readouterr().out
    assert "each frame's argmax, the network's own labels" in out  # which labels it wrote, said

    # A split outside the data root, and data of another width than the model reads: each named, nothing written.
    code = main(["predict", "--checkpoint", str(runs.narrow / "best.pt"), "--data", str(runs.corpus.root),
                 "--split", "../elsewhere", "--out", str(submission), "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 1 and "directly under the data root" in err and "'../elsewhere'" in err
    wide = write_tiny_corpus(tmp_path / "wide", n_train=2, n_dev=2, n_test=2, feature_width=40)
    code = main(["predict", "--checkpoint", str(runs.narrow / "best.pt"), "--data", str(wide.root),
                 "--out", str(submission), "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 1 and "must have shape (frames, 28)" in err and "trained on 28 features a frame" in err, err
    assert "[data] feature_width" not in err and _digest(submission) == written

    # The narrow run's weights under the deep run's config, as when checkpoints and configs get mixed up.
    mixed = tmp_path / "mixed.pt"
    payload = read_checkpoint(runs.narrow / "best.pt")
    payload["run_config"] = read_checkpoint(runs.deep / "best.pt")["run_config"]
    save_checkpoint(mixed, {key: value for key, value in payload.items() if key != "format"})
    with pytest.raises(CheckpointError) as error:
        load_checkpoint(mixed, device="cpu")
    assert str(mixed) in str(error.value)

    code = main(["predict", "--checkpoint", str(mixed), "--data", str(runs.corpus.root), "--out", str(submission),
                 "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 1 and str(mixed) in err and "Traceback" not in err
    assert _digest(submission) == written, "the earlier submission was overwritten"
    for run in (runs.narrow, runs.deep):  # the real checkpoints still load
        model, _config, _payload = load_checkpoint(run / "best.pt", device="cpu")
        assert sum(parameter.numel() for parameter in model.parameters()) == _payload["param_count"]


def _flip_one_bit(path: Path, offset: int) -> None:
    """Damage ``path`` as a disk or a copy does: one bit of one byte flipped, the size unchanged."""
    raw = bytearray(path.read_bytes())
    raw[offset] ^= 0x10
    path.write_bytes(bytes(raw))


def _weight_offset(path: Path) -> tuple[str, int]:
    """(tensor name, file offset of a byte in the middle of that tensor's stored data) of a checkpoint's largest
    weight, found by its bytes in the file (torch stores tensor data uncompressed in the zip)."""
    weights = read_checkpoint(path)["model"]
    name = max(weights, key=lambda key: weights[key].numel())
    data = weights[name].numpy().tobytes()
    start = path.read_bytes().find(data)
    assert start > 0, f"the bytes of {name} were not found in {path}"
    return name, start + len(data) // 2


@pytest.mark.parametrize("damage", ["weights", "stored_digest", "trailer_cut_off"])
def test_a_damaged_checkpoint_is_refused_by_name_where_torch_alone_would_load_it(runs, tmp_path, capsys, damage):
    damaged = tmp_path / "best.pt"
    damaged.write_bytes((runs.deep / "best.pt").read_bytes())
    size = damaged.stat().st_size
    if damage == "weights":
        name, offset = _weight_offset(damaged)
        _flip_one_bit(damaged, offset)
        assert damaged.stat().st_size == size
        # Plain torch reads the file without complaint and hands back other weights: only the checksum can tell.
        loaded = torch.load(damaged, weights_only=True)["model"][name]
        assert not torch.equal(loaded, read_checkpoint(runs.deep / "best.pt")["model"][name])
        expected = "does not match the SHA-256 checksum stored in it"
    elif damage == "stored_digest":
        _flip_one_bit(damaged, size - 10)  # a hex digit of the trailer's digest
        assert damaged.stat().st_size == size
        expected = "does not match the SHA-256 checksum stored in it"
    else:
        damaged.write_bytes(damaged.read_bytes()[:-TRAILER_BYTES])  # a copy that stopped just before the trailer
        torch.load(damaged, weights_only=True)  # still a valid zip for torch
        expected = "ends with a SHA-256 checksum line, but this file's end is missing or damaged"

    with pytest.raises(CheckpointError) as error:
        read_checkpoint(damaged)
    assert str(damaged) in str(error.value) and expected in str(error.value)

    submission = tmp_path / "submission.csv"
    code = main(["predict", "--checkpoint", str(damaged), "--data", str(runs.corpus.root), "--out", str(submission),
                 "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert str(damaged) in err and "is corrupt" in err and "use an intact copy" in err
    assert not submission.exists()


def test_a_format_1_checkpoint_without_a_checksum_still_predicts_with_a_warning(runs, tmp_path, capsys, caplog):
    """Checkpoints written before the trailer existed: torch.save's bytes only, format "phonetune-checkpoint-1"."""
    payload = read_checkpoint(runs.narrow / "best.pt")
    old = tmp_path / "old-best.pt"
    torch.save({**payload, "format": "phonetune-checkpoint-1"}, old)

    with caplog.at_level(logging.WARNING, logger="phonetune.model.checkpoint"):
        loaded = read_checkpoint(old)
    warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warnings) == 1 and str(old) in warnings[0], warnings
    assert "'phonetune-checkpoint-1'" in warnings[0] and "predates checksums" in warnings[0]
    assert "cannot be verified" in warnings[0]
    for key, tensor in payload["model"].items():
        assert torch.equal(loaded["model"][key], tensor), key

    # It still predicts, exactly as the same weights in today's format do.
    submissions = {}
    for name, checkpoint in (("old", old), ("new", runs.narrow / "best.pt")):
        submissions[name] = tmp_path / f"{name}.csv"
        assert main(["predict", "--checkpoint", str(checkpoint), "--data", str(runs.corpus.root),
                     "--out", str(submissions[name]), "--device", "cpu"]) == 0
    assert "predates checksums" in capsys.readouterr().err
    assert submissions["old"].read_bytes() == submissions["new"].read_bytes()


def test_full_disk_while_writing_a_checkpoint_keeps_the_previous_one_and_a_rerun_resumes(runs, small_disk):
    folder, resize = small_disk
    resize("64m")
    run = folder / "deep"
    shutil.copytree(runs.deep, run)
    before = {name: _digest(run / name) for name in ("last.pt", "best.pt")}
    listing = sorted(path.name for path in run.iterdir())
    # Room for the small files the trainer rewrites (config.toml, metrics.json), not for a checkpoint.
    room = 24 * 1024
    assert (run / "best.pt").stat().st_size > 2 * room > 2 * (run / "config.toml").stat().st_size
    filler = fill_disk(folder, leave_bytes=room)

    # Continue the run for a second epoch on the nearly full disk.
    command = [sys.executable, "-m", "phonetune.cli", "train", "--config", str(run / "config.toml"),
               "--out", str(run), "--epochs", "2", "--quiet"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, env=ONE_THREAD_ENV)

    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr and result.stderr.count("error:") == 1, result.stderr
    assert "could not be written" in result.stderr and "No space left on device" in result.stderr, result.stderr
    assert str(run / "last.pt") in result.stderr or str(run / "best.pt") in result.stderr
    # Nothing half-written under a checkpoint name, no temporary file left, the epoch-1 checkpoints intact.
    assert sorted(path.name for path in run.iterdir()) == listing
    assert {name: _digest(run / name) for name in before} == before
    assert read_checkpoint(run / "last.pt")["epoch"] == 1
    load_checkpoint(run / "best.pt", device="cpu")

    # Space freed, the same command resumes after epoch 1 and finishes epoch 2.
    filler.unlink()
    again = subprocess.run(command, capture_output=True, text=True, timeout=120, env=ONE_THREAD_ENV)
    assert again.returncode == 0, again.stderr
    resumed = read_checkpoint(run / "last.pt")
    assert resumed["epoch"] == 2 and resumed["history"][0] == read_checkpoint(runs.deep / "last.pt")["history"][0]


def test_ctrl_c_while_a_checkpoint_is_written_is_the_stop_not_a_write_error(tmp_path):
    """A stop request (the screen's deadline, a Ctrl-C) that lands inside torch's writer comes out of torch.save as
    ``RuntimeError: unexpected pos``; it was reported as a checkpoint that could not be written, telling the user to
    free disk space (seen in a rerun after a full disk). It is a KeyboardInterrupt, and the previous file is intact."""
    target = tmp_path / "last.pt"
    save_checkpoint(target, {"step": 1})
    before = target.read_bytes()
    payload = {"tensors": [torch.full((25_000,), float(index)) for index in range(2_000)]}  # many writes of 100 kB

    def interrupt_once_writing() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if any(path.stat().st_size > 1_000_000 for path in tmp_path.glob(".last.pt.*.tmp")):
                os.kill(os.getpid(), signal.SIGINT)
                return
            time.sleep(0.001)

    previous = signal.getsignal(signal.SIGINT)
    interrupts.install()
    sender = threading.Thread(target=interrupt_once_writing)
    try:
        sender.start()
        with pytest.raises(KeyboardInterrupt):
            save_checkpoint(target, payload)
    finally:
        sender.join()
        signal.signal(signal.SIGINT, previous)
        interrupts.clear()
    assert target.read_bytes() == before
    assert not list(tmp_path.glob(".last.pt.*"))
