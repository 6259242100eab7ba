"""``phonetune inspect``: per-split counts and the first named error, as text and JSON, in-process and as a program."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from corpus import DEV, TEST, TRAIN, write_tiny_corpus

from phonetune.cli.main import main
from phonetune.data_pipeline import DataConfig, load_split
from phonetune.data_pipeline.errors import MissingSplitError


def frames_per_class(corpus, split) -> Counter:
    counts = Counter()
    for path in (corpus.root / split / "transcript").glob("*.npy"):
        counts.update(np.load(path)[1:-1].tolist())
    return counts


def test_json_reports_every_split(tiny_corpus, capsys):
    assert main(["inspect", "--data", str(tiny_corpus.root), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert sorted(report) == sorted([TRAIN, DEV, TEST])
    for split in (TRAIN, DEV, TEST):
        assert report[split]["utterances"] == len(tiny_corpus.names[split])
        assert report[split]["frames"] == tiny_corpus.total_frames(split)
        assert report[split]["feature_width"] == 28 and report[split]["error"] is None
    assert report[TEST]["frames_per_class"] is None
    expected = frames_per_class(tiny_corpus, TRAIN)
    assert {s: c for s, c in report[TRAIN]["frames_per_class"].items() if c} == dict(expected)
    assert not (tiny_corpus.root / ".phonetune-cache").exists()  # inspecting builds no cache


def test_text_report_and_first_error_gives_exit_1(tmp_path, capsys):
    corpus = write_tiny_corpus(tmp_path / "data", n_train=3, n_dev=2, n_test=0)
    assert main(["inspect", "--data", str(corpus.root)]) == 0
    text = capsys.readouterr().out
    assert f"{TRAIN}: 3 utterances, {corpus.total_frames(TRAIN):,} frames, feature width 28" in text
    assert f"{DEV}: 2 utterances" in text and TEST not in text
    bad = corpus.root / DEV / "mfcc" / f"{corpus.names[DEV][1]}.npy"
    np.save(bad, np.zeros((5, 20), dtype=np.float32))
    assert main(["inspect", "--data", str(corpus.root)]) == 1
    text = capsys.readouterr().out
    assert f"error: FeatureWidthError: {bad} must have shape (frames, 28), but has shape (5, 20)" in text
    assert main(["inspect", "--data", str(corpus.root), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report[TRAIN]["error"] is None and report[DEV]["error"].startswith("FeatureWidthError")


def test_root_without_splits_is_an_error(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["inspect", "--data", str(tmp_path / "empty")]) == 1
    assert "must hold at least one of the split folders" in capsys.readouterr().err
    assert main(["inspect", "--data", str(tmp_path / "missing")]) == 1
    assert "was not found" in capsys.readouterr().err


def test_inspect_runs_as_a_program(tmp_path):
    corpus = write_tiny_corpus(tmp_path / "data", n_train=2, n_dev=1, n_test=1)
    phonetune = Path(sys.executable).parent / "phonetune"
    result = subprocess.run(
        [str(phonetune), "inspect", "--data", str(corpus.root), "--json"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report[DEV]["frames"] == corpus.total_frames(DEV)
    assert report[TEST]["utterances"] == 1


def test_a_download_unpacked_into_its_own_folder_is_found_one_level_down(tmp_path, capsys):
    corpus = write_tiny_corpus(tmp_path / "11785-f24-hw1p2")
    assert main(["inspect", "--data", str(tmp_path)]) == 1
    error = capsys.readouterr().err
    assert f"use {corpus.root} as the data root" in error and "one level down" in error
    with pytest.raises(MissingSplitError) as caught:
        load_split(DataConfig(root=str(tmp_path)), "train-clean-100", progress=False)
    assert f"use {corpus.root} as the data root" in str(caught.value)
    (tmp_path / "a-file").write_text("not a corpus")
    assert main(["inspect", "--data", str(tmp_path / "a-file")]) == 1
    assert "a-file is a file" in capsys.readouterr().err  # not "was not found": it is there, as the wrong kind
