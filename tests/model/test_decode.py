"""The sequence decode: stays and phoneme trigrams counted inside utterances, the batched beam Viterbi against the
textbook recursion, and the dev choice between it and the argmax."""

from __future__ import annotations

import numpy as np
import pytest

from phonetune.errors import ConfigError
from phonetune.model import decode as decode_module
from phonetune.model.decode import PhonemeTransitions, decode_sequence, every_nth_utterance, fit_decoder, viterbi
from phonetune.search.config import study_config_from_mapping


def plain_viterbi(scores: np.ndarray, offsets: np.ndarray, transitions: PhonemeTransitions, weight: float
                  ) -> np.ndarray:
    """One utterance at a time, one frame at a time, one state (phoneme before, phoneme now) at a time: the
    textbook recursion, exact (no beam)."""
    labels = np.empty(int(offsets[-1]), dtype=np.int64)
    classes = scores.shape[1]
    stay = weight * transitions.log_stay.astype(np.float64)
    leave = weight * np.log1p(-np.exp(transitions.log_stay.astype(np.float64)))
    states = [(before, now) for before in range(classes) for now in range(classes) if before != now]
    for start, end in zip(offsets[:-1], offsets[1:]):
        if end == start:
            continue
        best = {state: float(scores[start, state[1]]) for state in states}
        back = []
        for frame in range(start + 1, end):
            came, new = {}, {}
            for before, now in states:
                options = {(before, now): best[(before, now)] + stay[now]}
                for earlier in range(classes):
                    if earlier != before:
                        options[(earlier, before)] = (best[(earlier, before)] + leave[before]
                                                      + weight * float(transitions.log_next[earlier, before, now]))
                came[(before, now)] = max(options, key=options.get)
                new[(before, now)] = options[came[(before, now)]] + float(scores[frame, now])
            back.append(came)
            best = new
        state = max(best, key=best.get)
        path = [state[1]]
        for came in reversed(back):
            state = came[state]
            path.append(state[1])
        labels[start:end] = path[::-1]
    return labels


def path_score(labels: np.ndarray, scores: np.ndarray, transitions: PhonemeTransitions, weight: float) -> float:
    """What the decode maximizes, for one utterance's labels (its first phoneme free to follow any other)."""
    total = float(scores[np.arange(len(labels)), labels].sum())
    before = None
    for frame in range(1, len(labels)):
        now, previous = labels[frame], labels[frame - 1]
        if now == previous:
            total += weight * float(transitions.log_stay[now])
            continue
        total += weight * float(np.log1p(-np.exp(transitions.log_stay[previous])))
        if before is None:  # the first move: the best phoneme the first one may have followed
            total += weight * max(float(transitions.log_next[earlier, previous, now])
                                  for earlier in range(scores.shape[1]) if earlier != previous)
        else:
            total += weight * float(transitions.log_next[before, previous, now])
        before = previous
    return total


def random_transitions(rng: np.random.Generator, classes: int, utterances: int) -> PhonemeTransitions:
    labels = [np.repeat(rng.integers(0, classes, 12), rng.integers(1, 6, 12)) for _ in range(utterances)]
    offsets = np.concatenate([[0], np.cumsum([len(item) for item in labels])])
    return PhonemeTransitions.count(np.concatenate(labels), offsets, classes)


def test_the_batched_viterbi_finds_the_textbook_path_across_chunks_padding_and_empty_utterances(monkeypatch):
    rng = np.random.default_rng(0)
    classes = 5
    lengths = rng.integers(0, 25, size=19)
    lengths[:3] = (0, 1, 2)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    scores = rng.normal(size=(int(offsets[-1]), classes)).astype(np.float32)
    transitions = random_transitions(rng, classes, 30)
    # Back-pointers for about 4 utterances a batch: every batch is padded, and an empty utterance sits in one.
    monkeypatch.setattr(decode_module, "BACKPOINTER_BYTES", 4 * 12 * classes * classes)
    exact = viterbi(scores, offsets, transitions, weight=1.0, beam=classes)
    assert np.array_equal(exact, plain_viterbi(scores, offsets, transitions, 1.0))
    # A beam of 2 of 5 phonemes may miss the best path, never beat it.
    beamed = viterbi(scores, offsets, transitions, weight=1.0, beam=2)
    for start, end in zip(offsets[:-1], offsets[1:]):
        if end > start:
            frames = slice(start, end)
            assert (path_score(beamed[frames], scores[frames], transitions, 1.0)
                    <= path_score(exact[frames], scores[frames], transitions, 1.0) + 1e-4)
    # Transitions that count for nothing leave each frame its own best score: the argmax.
    assert np.array_equal(viterbi(scores, offsets, transitions, weight=0.0), scores.argmax(axis=1))


def test_transitions_are_counted_inside_utterances_never_across_two():
    # Utterance one is 0 0 1 2 2 0 (phonemes 0 1 2 0), utterance two 1 1 2 (phonemes 1 2): the step from 0 to 1
    # crosses a boundary and is neither a stay nor a move.
    labels = np.array([0, 0, 1, 2, 2, 0, 1, 1, 2])
    counted = PhonemeTransitions.count(labels, np.array([0, 6, 9]), num_classes=3, smoothing=1.0)
    # Stays, add-one smoothed: phoneme 0 stayed once in 2 steps, 1 once in 3, 2 once in 2.
    assert np.allclose(np.exp(counted.log_stay), [2 / 4, 2 / 5, 2 / 4])
    following = np.exp(counted.log_next)
    assert np.allclose(following.sum(axis=2), 1.0)
    assert np.all(following[:, [0, 1, 2], [0, 1, 2]] == 0.0)  # the next phoneme is another one
    # Bigram of phonemes (add-one over the other phonemes): after 1 came 2 twice; after 2 came 0 once.
    bigram = {1: np.array([1, 0, 3]) / 4, 2: np.array([2, 1, 0]) / 3}
    # Trigram 0 1 -> 2 once and 1 2 -> 0 once, smoothed toward the bigram with one pseudo-count.
    assert np.allclose(following[0, 1], (np.array([0, 0, 1]) + bigram[1]) / 2)
    assert np.allclose(following[1, 2], (np.array([1, 0, 0]) + bigram[2]) / 2)
    # A pair never seen is the bigram alone.
    assert np.allclose(following[2, 1], bigram[1])
    assert np.allclose(np.exp(counted.log_prior), np.array([4, 4, 4]) / 12)
    with pytest.raises(ConfigError, match=r"class indices in \[0, 3\).*\[0, 7\]"):
        PhonemeTransitions.count(np.array([0, 7]), np.array([0, 2]), num_classes=3)
    with pytest.raises(ConfigError, match="2 to 254 classes, but got 300"):
        PhonemeTransitions.count(np.array([0, 7]), np.array([0, 2]), num_classes=300)


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
    assert sorted(fit.grid) == ["1.5/0.5", "1.5/0.75", "1/0.5", "1/0.75"]
    assert fit.fit_frames == len(labels)
    decoded = fit.decode(probabilities, offsets, transitions)
    assert np.array_equal(decoded, decode_sequence(probabilities, offsets, transitions, fit.weight, fit.prior_power))
    # A large dev is scored on every n-th utterance: here every 4th, 10 of the 40 utterances.
    frames, kept_offsets = every_nth_utterance(offsets, len(labels) // 4)
    assert np.array_equal(frames, np.concatenate([np.arange(offsets[u], offsets[u + 1]) for u in range(0, 40, 4)]))
    assert np.array_equal(kept_offsets, np.arange(0, 401, 40))
    quarter = fit_decoder(probabilities, labels, offsets, transitions, max_frames=len(labels) // 4)
    assert quarter.fit_frames == 400
    assert quarter.dev_argmax_accuracy == pytest.approx((probabilities[frames].argmax(axis=1) == labels[frames]).mean())

    # Posteriors that are already right everywhere: the decode can only tie, so the argmax stays.
    exact = np.eye(classes, dtype=np.float32)[labels]
    tied = fit_decoder(exact, labels, offsets, transitions)
    assert not tied.used and tied.dev_argmax_accuracy == 1.0
    assert np.array_equal(tied.decode(exact, offsets, transitions), labels)


def test_a_decode_table_with_an_unknown_mode_or_key_is_refused_by_name():
    base = {"study": {"name": "decode"}, "data": {"root": "data/demo"}}
    assert study_config_from_mapping(base).decode.mode == "argmax"  # the network's own labels by default
    assert study_config_from_mapping({**base, "decode": {"mode": "viterbi"}}).decode.mode == "viterbi"
    assert study_config_from_mapping({**base, "decode": {"mode": "off"}}).decode.mode == "off"
    refused = r"s.toml \[decode\].mode must be one of \['argmax', 'viterbi', 'off'\], but got 'beam'"
    with pytest.raises(ConfigError, match=refused):
        study_config_from_mapping({**base, "decode": {"mode": "beam"}}, source="s.toml")
    with pytest.raises(ConfigError, match=r"\[decode\].*width"):
        study_config_from_mapping({**base, "decode": {"width": 3}}, source="s.toml")
