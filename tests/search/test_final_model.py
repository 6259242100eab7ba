"""What the final model leaves beside its submission (``phonetune ensemble``, ``phonetune run``): the dev diagnostics
(per-phoneme accuracy, confusion matrix) and ``model_metadata.json``, checked against the models themselves."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from phonetune.configs import from_mapping
from phonetune.data_pipeline import load_split
from phonetune.model.params import DEFAULT_PARAM_LIMIT
from phonetune.model.checkpoint import read_checkpoint
from phonetune.model.train_config import RunConfig
from phonetune.search import attributes as attrs
from phonetune.search.study import open_studies


def test_the_final_model_has_dev_diagnostics_and_metadata_that_rebuild_it(finished):
    path, config = finished
    _search, full = open_studies(config)
    final = full.user_attrs[attrs.ENSEMBLE_ATTR]

    # Per-phoneme accuracy on dev: every dev frame counted once, and their accuracy is the final model's.
    dev_frames = load_split(config.data, config.data.dev_split, progress=False).num_frames
    with open(Path(final["dev_score_dir"]) / "per_phoneme.csv", newline="") as handle:
        per_phoneme = list(csv.DictReader(handle))
    frames = sum(int(row["frames"]) for row in per_phoneme)
    correct = sum(int(row["correct"]) for row in per_phoneme)
    assert frames == dev_frames and correct / frames == pytest.approx(final["dev_accuracy"], abs=1e-9)
    confusion = (Path(final["dev_score_dir"]) / "confusion.html").read_text()
    assert "dev-clean" in confusion and "Plotly" in confusion
    assert (Path(final["test_score_dir"]) / "confusion.html").is_file()  # the tiny corpus has test labels

    metadata = json.loads(Path(final["metadata"]).read_text())
    assert Path(final["metadata"]).parent == Path(final["submission"]).parent
    assert metadata["final_model"] == final["chosen"] and metadata["hw1p2_limit"] == DEFAULT_PARAM_LIMIT
    assert [member["search_trial"] for member in metadata["members"]] == final["members"]
    assert metadata["param_count"] == sum(member["param_count"] for member in metadata["members"])
    assert metadata["test_accuracy"] == final["test_accuracy"] and metadata["dev_accuracy"] == final["dev_accuracy"]
    for member in metadata["members"]:
        payload = read_checkpoint(member["checkpoint"])
        rebuilt = from_mapping(RunConfig, member["run_config"], "model_metadata.json")
        assert rebuilt == from_mapping(RunConfig, payload["run_config"], "checkpoint")
        assert member["param_count"] == payload["param_count"]
        assert member["architecture"]["hidden_layers"] == rebuilt.model.hidden_layers
        assert len(member["architecture"]["layer_widths"]) == rebuilt.model.hidden_layers
        assert member["epochs"] == pytest.approx(config.fidelity.full_epochs)
        assert member["data"]["normalization"] == config.data.normalization
        assert member["schedule"]["lr"] == rebuilt.train.lr
        number = str(member["search_trial"])
        assert member["test_accuracy"] == final["member_test_accuracy"][number]
        assert member["dev_accuracy"] == final["member_dev_accuracy"][number]
