"""train -> predict -> score through the CLI on a real tiny corpus, and the errors of each step."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from shared import REPO

from phonetune.data_pipeline import HW1P2_PHONEMES, DataConfig, load_split
from phonetune.errors import CheckpointError, ConfigError
from phonetune.model import SubmissionError, score_submission, write_score_report
from phonetune.model.checkpoint import read_checkpoint, save_checkpoint
from phonetune.model.inference import load_checkpoint, predict_split, write_submission
from phonetune.model.scoring import most_confused, score_predictions
from phonetune.cli.main import main

STARTER = str(REPO / "studies" / "starter.toml")


@pytest.fixture(autouse=True)
def one_thread(single_torch_thread):
    """Every test here trains or predicts tiny models in this process."""


@pytest.fixture
def trained_run(tiny_corpus, tmp_path):
    """The starter config (context reduced to 3 for speed), trained 3 epochs through `phonetune train`."""
    out = tmp_path / "runs" / "starter"
    code = main([
        "train", "--config", STARTER, "--data", str(tiny_corpus.root), "--out", str(out), "--epochs", "3",
        "--set", "data.context_frames=3", "--set", "train.batch_size=64", "--set", "train.device=\"cpu\"",
        "--quiet",
    ])
    assert code == 0
    return tiny_corpus, out


def _true_test_labels(root: Path) -> np.ndarray:
    index = {symbol: i for i, symbol in enumerate(HW1P2_PHONEMES)}
    files = sorted((root / "test-clean-labels" / "transcript").glob("*.npy"))
    return np.concatenate([[index[s] for s in np.load(path)[1:-1]] for path in files])


def test_predict_and_score_round_trip_through_the_cli(trained_run, tmp_path, capsys):
    corpus, run = trained_run
    submission = tmp_path / "submission.csv"
    assert main(["predict", "--checkpoint", str(run / "best.pt"), "--data", str(corpus.root),
                 "--out", str(submission), "--device", "cpu"]) == 0
    lines = submission.read_text().splitlines()
    assert lines[0] == "id,label" and len(lines) == 1 + corpus.total_frames("test-clean")
    assert [line.split(",")[0] for line in lines[1:4]] == ["0", "1", "2"]

    capsys.readouterr()
    report_dir = tmp_path / "report"
    assert main(["score", "--submission", str(submission), "--labels", str(corpus.root / "test-clean-labels"),
                 "--report", str(report_dir)]) == 0
    printed = capsys.readouterr().out
    accuracy = float(printed.split("accuracy: ")[1].split()[0])

    # Independent check: the same predictions made in-process, compared with the raw transcripts.
    model, run_config, payload = load_checkpoint(run / "best.pt", device="cpu")
    test_split = load_split(run_config.data, "test-clean", progress=False)
    predicted = predict_split(model, run_config, test_split, "cpu")
    truth = _true_test_labels(corpus.root)
    assert accuracy == pytest.approx(float((predicted == truth).mean()), abs=1e-4)
    assert accuracy > 0.3  # chance is 1/40
    per_phoneme = (report_dir / "per_phoneme.csv").read_text().splitlines()
    assert per_phoneme[0] == "phoneme,frames,correct,accuracy" and len(per_phoneme) == 41
    assert sum(int(row.split(",")[1]) for row in per_phoneme[1:]) == len(truth)
    assert "heatmap" in (report_dir / "confusion.html").read_text()


def test_global_normalization_statistics_travel_in_the_checkpoint(tiny_corpus, tmp_path):
    # Predicting must normalize with the training statistics even where the training split is absent (a
    # submission machine with only test-clean), and give the same predictions as with it present.
    out = tmp_path / "runs" / "global"
    assert main([
        "train", "--config", STARTER, "--data", str(tiny_corpus.root), "--out", str(out), "--epochs", "1",
        "--set", "data.context_frames=2", "--set", "data.normalization=\"global\"", "--set", "train.device=\"cpu\"",
        "--quiet",
    ]) == 0
    stored = read_checkpoint(out / "best.pt", map_location="cpu")["norm_stats"]
    train = load_split(DataConfig(root=str(tiny_corpus.root), normalization="none"), "train-clean-100", progress=False)
    features = np.asarray(train.features, dtype=np.float64)
    np.testing.assert_allclose(stored["mean"], features.mean(axis=0), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(stored["std"], features.std(axis=0), rtol=1e-5, atol=1e-6)

    with_train = tmp_path / "with-train.csv"
    assert main(["predict", "--checkpoint", str(out / "best.pt"), "--data", str(tiny_corpus.root),
                 "--out", str(with_train), "--device", "cpu"]) == 0
    (tiny_corpus.root / "train-clean-100").rename(tmp_path / "train-moved-away")
    without_train = tmp_path / "without-train.csv"
    assert main(["predict", "--checkpoint", str(out / "best.pt"), "--data", str(tiny_corpus.root),
                 "--out", str(without_train), "--device", "cpu"]) == 0
    assert without_train.read_text() == with_train.read_text()


def test_score_report_counts_agree_with_a_hand_made_submission(tiny_corpus, tmp_path):
    truth = _true_test_labels(tiny_corpus.root)
    guesses = truth.copy()
    guesses[::4] = (guesses[::4] + 1) % 40  # every 4th frame wrong
    write_submission(tmp_path / "s.csv", np.asarray(HW1P2_PHONEMES)[guesses])
    report = score_submission(tmp_path / "s.csv", tiny_corpus.root / "test-clean-labels", HW1P2_PHONEMES)
    assert report.frames == len(truth)
    assert report.accuracy == pytest.approx(1 - len(truth[::4]) / len(truth))
    assert report.confusion.sum(axis=1).tolist() == np.bincount(truth, minlength=40).tolist()

    # Every 4th frame of class c was labelled c + 1: those are the confused pairs, most frames first.
    shifted = np.bincount(truth[::4], minlength=40)
    expected = sorted(((int(frames), c) for c, frames in enumerate(shifted) if frames), key=lambda item: (-item[0], item[1]))
    pairs = most_confused(report, count=5)
    assert [(pair.frames, HW1P2_PHONEMES.index(pair.true)) for pair in pairs] == expected[:5]
    for pair in pairs:
        true = HW1P2_PHONEMES.index(pair.true)
        assert pair.predicted == HW1P2_PHONEMES[(true + 1) % 40]
        assert pair.share_of_true == pytest.approx(pair.frames / np.sum(truth == true))
        assert pair.share_of_errors == pytest.approx(pair.frames / len(truth[::4]))
    write_score_report(report, tmp_path / "score")
    stored = json.loads((tmp_path / "score" / "score.json").read_text())
    assert [item["frames"] for item in stored["most_confused"]][:5] == [frames for frames, _ in expected[:5]]
    page = (tmp_path / "score" / "confusion.html").read_text()
    assert "most-confused pairs" in page and "the diagonal (correct) is blank" in page
    assert most_confused(score_predictions(truth, truth, HW1P2_PHONEMES, "truth", "truth")) == []


def test_score_rejects_length_mismatch_bad_header_and_unknown_labels(tiny_corpus, tmp_path, capsys):
    labels = tiny_corpus.root / "test-clean-labels"
    truth = _true_test_labels(tiny_corpus.root)
    short = tmp_path / "short.csv"
    write_submission(short, np.asarray(HW1P2_PHONEMES)[truth[:-1]])
    with pytest.raises(SubmissionError, match=f"{len(truth)} in .*but has {len(truth) - 1} rows"):
        score_submission(short, labels, HW1P2_PHONEMES)
    assert main(["score", "--submission", str(short), "--labels", str(labels)]) == 1
    assert "short.csv" in capsys.readouterr().err

    header = tmp_path / "header.csv"
    header.write_text("Id,Label\n0,AA\n")
    with pytest.raises(SubmissionError, match="header 'id,label'"):
        score_submission(header, labels, HW1P2_PHONEMES)
    unknown = tmp_path / "unknown.csv"
    unknown.write_text("id,label\n0,AA\n1,XX\n")
    with pytest.raises(SubmissionError, match=r"unknown.csv line 3 .* 'XX'"):
        score_submission(unknown, labels, HW1P2_PHONEMES)


def test_load_checkpoint_names_missing_corrupt_and_mismatched_files(trained_run, tmp_path):
    _, run = trained_run
    with pytest.raises(CheckpointError, match="nothing.pt"):
        load_checkpoint(tmp_path / "nothing.pt")
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes((run / "best.pt").read_bytes()[:200])
    with pytest.raises(CheckpointError, match="corrupt.pt"):
        load_checkpoint(corrupt)
    payload = read_checkpoint(run / "best.pt")
    payload["run_config"]["model"]["hidden_layers"] = 1
    payload["param_count"] = 0
    mismatched = tmp_path / "mismatched.pt"
    save_checkpoint(mismatched, payload)
    with pytest.raises(CheckpointError, match="mismatched.pt"):
        load_checkpoint(mismatched)
    payload = read_checkpoint(run / "best.pt")
    payload["model"]["layers.0.weight"] = payload["model"]["layers.0.weight"][:, :10]
    save_checkpoint(mismatched, payload)
    with pytest.raises(CheckpointError, match="weights do not match"):
        load_checkpoint(mismatched)


def test_train_cli_reports_config_errors_naming_the_file(tiny_corpus, tmp_path, capsys):
    base = ["train", "--config", STARTER, "--data", str(tiny_corpus.root), "--out", str(tmp_path / "r"), "--quiet"]
    assert main(base + ["--set", "train.bogus=1"]) == 1
    err = capsys.readouterr().err
    assert "starter.toml" in err and "'bogus'" in err
    assert main(base + ["--set", "model.hidden_layers=12", "--set", "train.lr=-1"]) == 1
    err = capsys.readouterr().err
    assert "hidden_layers=12" in err and "lr=-1" in err
    assert main(base + ["--set", "model.context_frames=5"]) == 1
    assert "context_frames is set by the data; set it in [data]" in capsys.readouterr().err
    with pytest.raises(ConfigError):
        from phonetune.model import load_run_config

        load_run_config(tmp_path / "missing.toml")
    assert not (tmp_path / "r").exists()
