"""The sequence decode: transitions counted inside utterances, the batched Viterbi against a plain one, and the dev
choice between it and the argmax."""

from __future__ import annotations

import numpy as np
import pytest

from phonetune.errors import ConfigError
from phonetune.model import decode as decode_module
from phonetune.model.decode import PhonemeTransitions, decode_sequence, fit_decoder, viterbi
from phonetune.search.config import study_config_from_mapping


def plain_viterbi(scores: np.ndarray, offsets: np.ndarray, transitions: np.ndarray) -> np.ndarray:
    """One utterance at a time, one frame at a time, one state at a time: the textbook recursion."""
    labels = np.empty(int(offsets[-1]), dtype=np.int64)
    states = scores.shape[1]
    for start, end in zip(offsets[:-1], offsets[1:]):
        if end == start:
            continue
        best = scores[start].astype(np.float64).copy()
        back = []
        for frame in range(start + 1, end):
            came = np.empty(states, dtype=np.int64)
            new = np.empty(states)
            for state in range(states):
                options = best + transitions[:, state]
                came[state] = int(options.argmax())
                new[state] = options[came[state]] + scores[frame, state]
            back.append(came)
            best = new
        path = [int(best.argmax())]
        for came in reversed(back):
            path.append(int(came[path[-1]]))
        labels[start:end] = path[::-1]
    return labels


def test_the_batched_viterbi_finds_the_textbook_path_across_chunks_padding_and_empty_utterances(monkeypatch):
    rng = np.random.default_rng(0)
    lengths = rng.integers(0, 30, size=23)
    lengths[:3] = (0, 1, 2)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    scores = rng.normal(size=(int(offsets[-1]), 5)).astype(np.float32)
    transitions = np.log(rng.dirichlet(np.ones(5), size=5)).astype(np.float32)
    # Chunks of 4 utterances of unequal lengths: every chunk is padded, and an empty utterance sits in one.
    monkeypatch.setattr(decode_module, "CHUNK_UTTERANCES", 4)
    decoded = viterbi(scores, offsets, transitions)
    assert np.array_equal(decoded, plain_viterbi(scores, offsets, transitions))
    # Transitions that cost nothing leave each frame its own best score: the argmax.
    assert np.array_equal(viterbi(scores, offsets, np.zeros((5, 5), np.float32)), scores.argmax(axis=1))


def test_transitions_are_counted_inside_utterances_never_across_two():
    # Utterance one is 0 0 1, utterance two 2 2: the step from 1 to 2 crosses a boundary and is not a transition.
    labels = np.array([0, 0, 1, 2, 2])
    counted = PhonemeTransitions.count(labels, np.array([0, 3, 5]), num_classes=3)
    probabilities = np.exp(counted.log_transitions)
    assert np.allclose(probabilities.sum(axis=1), 1.0)
    # Row 1 saw no transition at all (add-one smoothing only): uniform. Row 0 saw 0->0 and 0->1 once each.
    assert np.allclose(probabilities[1], 1 / 3)
    assert np.allclose(probabilities[0], [2 / 5, 2 / 5, 1 / 5])
    assert np.allclose(probabilities[2], [1 / 4, 1 / 4, 2 / 4])
    assert np.allclose(np.exp(counted.log_prior), np.array([3, 2, 3]) / 8)
    with pytest.raises(ConfigError, match=r"class indices in \[0, 3\).*\[0, 7\]"):
        PhonemeTransitions.count(np.array([0, 7]), np.array([0, 2]), num_classes=3)


def test_dev_chooses_the_sequence_decode_only_when_it_beats_the_argmax():
    # Phonemes last 8 frames and follow each other in a cycle; the network's posteriors are right but for one frame
    # in four, where a wrong phoneme edges out the right one. Counted transitions mend those frames.
    rng = np.random.default_rng(1)
    classes, utterances = 6, 40
    truth = [np.repeat(rng.permutation(classes)[:5], 8) for _ in range(utterances)]
    labels = np.concatenate(truth)
    offsets = np.concatenate([[0], np.cumsum([len(item) for item in truth])])
    probabilities = np.full((len(labels), classes), 0.02, dtype=np.float32)
    probabilities[np.arange(len(labels)), labels] = 0.5
    flipped = rng.random(len(labels)) < 0.25
    wrong = (labels + 1 + rng.integers(0, classes - 1, len(labels))) % classes
    probabilities[np.flatnonzero(flipped), wrong[flipped]] = 0.55
    transitions = PhonemeTransitions.count(labels, offsets, classes)

    fit = fit_decoder(probabilities, labels, offsets, transitions)
    assert fit.dev_argmax_accuracy == pytest.approx(1 - flipped.mean())
    assert fit.used and fit.dev_decoded_accuracy > 0.97 > fit.dev_argmax_accuracy
    assert sorted(fit.grid) == ["0.5/0", "0.5/0.5", "1/0", "1/0.5"]
    decoded = fit.decode(probabilities, offsets, transitions)
    assert np.array_equal(decoded, decode_sequence(probabilities, offsets, transitions, fit.weight, fit.prior_power))

    # Posteriors that are already right everywhere: the decode can only tie, so the argmax stays.
    exact = np.eye(classes, dtype=np.float32)[labels]
    tied = fit_decoder(exact, labels, offsets, transitions)
    assert not tied.used and tied.dev_argmax_accuracy == 1.0
    assert np.array_equal(tied.decode(exact, offsets, transitions), labels)


def test_a_decode_table_with_an_unknown_mode_or_key_is_refused_by_name():
    base = {"study": {"name": "decode"}, "data": {"root": "data/demo"}}
    assert study_config_from_mapping(base).decode.mode == "viterbi"
    assert study_config_from_mapping({**base, "decode": {"mode": "argmax"}}).decode.mode == "argmax"
    refused = r"s.toml \[decode\].mode must be one of \['viterbi', 'argmax'\], but got 'beam'"
    with pytest.raises(ConfigError, match=refused):
        study_config_from_mapping({**base, "decode": {"mode": "beam"}}, source="s.toml")
    with pytest.raises(ConfigError, match=r"\[decode\].*width"):
        study_config_from_mapping({**base, "decode": {"width": 3}}, source="s.toml")
