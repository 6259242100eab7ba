"""Ensembles: averaged probabilities of real tiny runs, the summed-parameter guard, and greedy selection."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from corpus import DEV, TEST, write_tiny_corpus
from shared import REPO, one_torch_thread

from phonetune.data_pipeline import HW1P2_PHONEMES
from phonetune.errors import ParamLimitError
from phonetune.model import check_members_fit
from phonetune.model import ensemble as ensemble_module
from phonetune.model.ensemble import ensemble_probabilities, select_ensemble, write_ensemble_submission
from phonetune.model.inference import load_checkpoint, load_checkpoint_split, predict_probabilities, predict_split
from phonetune.cli.main import main

STARTER = str(REPO / "studies" / "starter.toml")
# Members that differ in depth, width, context, normalization and seed, so each one windows and normalizes the
# split its own way and their probabilities are not copies of each other.
MEMBERS = {
    "linear": ["data.context_frames=3", "train.seed=0"],
    "wide": ["data.context_frames=2", "model.hidden_layers=1", "model.base_width=64", "train.seed=1",
             'data.normalization="global"'],
    "deep": ["data.context_frames=4", "model.hidden_layers=2", "model.base_width=32", "train.seed=2"],
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny corpus and three members trained 2 epochs each through `phonetune train` (a few seconds)."""
    with one_torch_thread():
        base = tmp_path_factory.mktemp("ensemble")
        corpus = write_tiny_corpus(base / "data")
        checkpoints = {}
        for name, overrides in MEMBERS.items():
            out = base / "runs" / name
            command = ["train", "--config", STARTER, "--data", str(corpus.root), "--out", str(out), "--epochs", "2",
                       "--set", "train.batch_size=64", "--set", 'train.device="cpu"', "--quiet"]
            for override in overrides:
                command += ["--set", override]
            assert main(command) == 0
            checkpoints[name] = out / "best.pt"
        yield corpus, checkpoints


def _member_probabilities(checkpoint: Path, root: Path, split: str) -> np.ndarray:
    model, run_config, payload = load_checkpoint(checkpoint, device="cpu")
    split_data = load_checkpoint_split(run_config, payload, root, split, progress=False)
    return predict_probabilities(model, run_config, split_data, "cpu")


def test_probabilities_are_a_distribution_whose_argmax_is_predict_split(trained):
    corpus, checkpoints = trained
    for checkpoint in checkpoints.values():
        model, run_config, payload = load_checkpoint(checkpoint, device="cpu")
        split_data = load_checkpoint_split(run_config, payload, corpus.root, DEV, progress=False)
        # A batch size that does not divide the split exercises the batch seams.
        probabilities = predict_probabilities(model, run_config, split_data, "cpu", batch_size=97)
        assert probabilities.shape == (corpus.total_frames(DEV), len(HW1P2_PHONEMES))
        assert probabilities.dtype == np.float32
        np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
        classes = predict_split(model, run_config, split_data, "cpu")
        np.testing.assert_array_equal(probabilities.argmax(axis=1), classes)


def test_ensemble_averages_the_members_probabilities(trained, tmp_path):
    corpus, checkpoints = trained
    paths = list(checkpoints.values())
    members = [_member_probabilities(path, corpus.root, TEST) for path in paths]
    expected = np.mean(np.stack(members), axis=0)

    averaged = ensemble_probabilities(paths, corpus.root, TEST, device="cpu")
    np.testing.assert_allclose(averaged, expected, rtol=0, atol=1e-6)
    # The members disagree somewhere, or this would not test averaging at all.
    assert any((member.argmax(axis=1) != expected.argmax(axis=1)).any() for member in members)

    path, frames = write_ensemble_submission(paths, corpus.root, TEST, tmp_path / "ensemble.csv", device="cpu")
    lines = path.read_text().splitlines()
    assert frames == corpus.total_frames(TEST) and lines[0] == "id,label" and len(lines) == frames + 1
    written = [line.split(",", 1)[1] for line in lines[1:]]
    assert written == list(np.asarray(HW1P2_PHONEMES)[expected.argmax(axis=1)])


def test_over_budget_members_are_refused_before_any_prediction(trained, tmp_path, monkeypatch):
    corpus, checkpoints = trained
    paths = list(checkpoints.values())
    counts = [int(load_checkpoint(path, device="cpu")[2]["param_count"]) for path in paths]
    budget = sum(counts) - 1

    def no_prediction(*args, **kwargs):
        pytest.fail("a member predicted before the budget check refused the set")

    monkeypatch.setattr(ensemble_module, "predict_probabilities", no_prediction)
    monkeypatch.setattr(ensemble_module, "load_checkpoint_split", no_prediction)
    out = tmp_path / "refused.csv"
    with pytest.raises(ParamLimitError) as caught:
        write_ensemble_submission(paths, corpus.root, TEST, out, budget, device="cpu")
    message = str(caught.value)
    assert f"at most {budget:,}" in message and f"have {sum(counts):,}" in message
    for path, count in zip(paths, counts):
        assert f"{path}: {count:,}" in message
    assert not out.exists() and list(tmp_path.iterdir()) == []
    with pytest.raises(ParamLimitError, match=f"{sum(counts):,}"):
        ensemble_probabilities(paths, corpus.root, TEST, param_limit=budget, device="cpu")
    # Exactly at the budget is allowed.
    assert check_members_fit(counts, sum(counts)) == sum(counts)


def _synthetic_members() -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Ten frames of class 0 out of 2; each member's probability of class 0 per frame.

    a and b are the best singles (7/10) and make the same mistakes, so together they stay at 7/10; c (6/10) is
    confidently right where they are wrong and barely wrong where they are right, so a + c is 10/10; d (2/10) fixes
    two of their three mistakes, so a + d is 9/10.
    """
    p_class0 = {
        "a": [0.6] * 7 + [0.4] * 3,
        "b": [0.62] * 7 + [0.41] * 3,
        "c": [0.9] * 3 + [0.45] * 4 + [0.9] * 3,
        "d": [0.45] * 7 + [0.9, 0.9, 0.45],
    }
    probs = {key: np.stack([np.array(p), 1 - np.array(p)], axis=1).astype(np.float32) for key, p in p_class0.items()}
    return probs, np.zeros(10, dtype=np.int64)


def test_greedy_selection_prefers_the_complementary_pair_over_the_two_best_singles():
    probs, labels = _synthetic_members()
    counts = {"a": 10, "b": 10, "c": 10, "d": 10}
    selection = select_ensemble(probs, labels, counts, param_limit=40, max_members=4)
    assert selection.members == ("a", "c")  # a and b tie at 7/10: the lower key starts
    assert selection.trail == (0.7, 1.0) and selection.dev_accuracy == 1.0
    assert selection.param_count == 20

    single = select_ensemble(probs, labels, counts, param_limit=40, max_members=1)
    assert single.members == ("a",) and single.trail == (0.7,)


def test_selection_with_replacement_weights_a_member_up_without_counting_its_parameters_twice():
    """Six frames of class 0. Alone, a and b are 4/6 each; averaged 5/6; b counted twice, 6/6: the frame both get
    wrong together (a 0.2, b 0.75) needs b's vote to weigh double, and no frame is lost by it."""
    p_class0 = {"a": [0.45, 0.7, 0.7, 0.9, 0.9, 0.2], "b": [0.6, 0.6, 0.6, 0.45, 0.45, 0.75]}
    probs = {key: np.stack([np.array(p), 1 - np.array(p)], axis=1).astype(np.float32) for key, p in p_class0.items()}
    labels = np.zeros(6, dtype=np.int64)
    selection = select_ensemble(probs, labels, {"a": 10, "b": 10}, param_limit=20, max_members=2)
    assert selection.members == ("a", "b") and selection.weights == (1, 2)
    assert selection.trail == pytest.approx((4 / 6, 5 / 6, 1.0)) and selection.param_count == 20
    # One member at most: a weight on one member changes no argmax, so it stays a single run.
    single = select_ensemble(probs, labels, {"a": 10, "b": 10}, param_limit=20, max_members=1)
    assert single.members == ("a",) and single.weights == (1,) and single.trail == pytest.approx((4 / 6,))
    # b alone does not fit beside a under a limit of 15: no second member, whatever its weight would be.
    capped = select_ensemble(probs, labels, {"a": 10, "b": 10}, param_limit=15, max_members=2)
    assert capped.members == ("a",) and capped.param_count == 10


def test_greedy_selection_respects_the_budget():
    probs, labels = _synthetic_members()
    # c no longer fits beside a (10 + 15 > 20); d, the next best addition, does (10 + 8).
    selection = select_ensemble(probs, labels, {"a": 10, "b": 10, "c": 15, "d": 8}, param_limit=20, max_members=4)
    assert selection.members == ("a", "d") and selection.param_count == 18
    assert selection.trail == (0.7, 0.9)
    # A best single member larger than the whole budget is never picked, even to start.
    selection = select_ensemble(probs, labels, {"a": 30, "b": 10, "c": 10, "d": 10}, param_limit=20, max_members=4)
    assert selection.members == ("b", "c")
    with pytest.raises(ParamLimitError, match="at most 5 parameters.*'d' has 8"):
        select_ensemble(probs, labels, {"a": 10, "b": 10, "c": 15, "d": 8}, param_limit=5, max_members=2)
