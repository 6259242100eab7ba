"""Hostile checkpoints: a checkpoint that does not match its config, and a full disk while writing one.

Two real one-epoch runs on a tiny corpus give genuine checkpoints. ``phonetune predict`` with weights from one run
and the config of the other must refuse with a CheckpointError naming the file (and leave an earlier submission
alone); a training run that continues on a disk that fills up must fail with a CheckpointError naming the file,
leaving the previous epoch's checkpoints byte for byte as they were, still loadable, and no partial file behind.
"""

from __future__ import annotations

import hashlib
import resource
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from corpus import write_tiny_corpus
from shared import one_torch_thread

from phonetune.data_pipeline import DataConfig
from phonetune.errors import CheckpointError
from phonetune.model import ModelConfig, RunConfig, TrainConfig
from phonetune.model.checkpoint import read_checkpoint, save_checkpoint
from phonetune.model.inference import load_checkpoint
from phonetune.model.trainer import Trainer
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
    capsys.readouterr()

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


def _limit_file_size(limit_bytes: int):
    def apply() -> None:
        # Writing past the limit then fails with EFBIG (as on a full disk) instead of killing the process.
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))

    return apply


def test_full_disk_while_writing_a_checkpoint_keeps_the_previous_one(runs):
    run = runs.deep
    before = {name: _digest(run / name) for name in ("last.pt", "best.pt")}
    listing = sorted(path.name for path in run.iterdir())
    checkpoint_bytes = (run / "last.pt").stat().st_size
    limit = 20_000
    assert checkpoint_bytes > limit > (run / "config.toml").stat().st_size

    # Continue the run for a second epoch on a "disk" with 20 kB of room per file.
    command = [sys.executable, "-m", "phonetune.cli", "train", "--config", str(run / "config.toml"),
               "--out", str(run), "--epochs", "2", "--quiet"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, preexec_fn=_limit_file_size(limit))

    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert "could not be written" in result.stderr and "File too large" in result.stderr
    assert str(run / "last.pt") in result.stderr or str(run / "best.pt") in result.stderr
    # Nothing half-written under a checkpoint name, no temporary file left, the epoch-1 checkpoints intact.
    assert sorted(path.name for path in run.iterdir()) == listing
    assert {name: _digest(run / name) for name in before} == before
    assert read_checkpoint(run / "last.pt")["epoch"] == 1
    load_checkpoint(run / "best.pt", device="cpu")
