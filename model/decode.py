"""From frame posteriors to labels: each frame's likeliest phoneme alone, or the likeliest phoneme sequence.

An MLP scores every frame on its own, but speech does not switch phoneme every 10 ms, and some phonemes follow
others far more often than chance. The sequence decode is the classical hybrid recognizer's with one state per
phoneme: a Viterbi pass over each utterance's frame scores with a bigram of phoneme transitions counted on the
training labels (the self-transitions carry the durations). Two numbers are chosen on dev, never on test:

- ``weight``: how much the transitions count against the frame scores (0 would be the argmax);
- ``prior_power``: the posteriors are divided by the phoneme priors to this power (1 turns them into scaled
  likelihoods as an HMM wants them, 0 keeps them as they are; frequent phonemes are otherwise counted twice, once
  in the posterior and once in the transitions into them).

The model is untouched: the decode is a post-processing of its outputs with a 40 x 40 table of counts from the
training labels, nothing trained by gradient and nothing from outside the corpus. ``[decode] mode = "argmax"`` in a
study file turns it off (for a course whose rules ask for the network's own per-frame choice); with ``"viterbi"``
the decode is used only when it is strictly better than the argmax on dev.

Example::

    transitions = PhonemeTransitions.count(train.labels, train.offsets, num_classes=40)
    fit = fit_decoder(dev_probabilities, dev.labels, dev.offsets, transitions)
    labels = fit.decode(test_probabilities, test.offsets, transitions)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np

from phonetune.errors import ConfigError

# The dev grid: transitions at half and full weight, posteriors as they are or halfway to scaled likelihoods. On the
# demo corpus's make-demo model (BENCHMARKS.md, "The final model's labels decoded as phoneme sequences";
# bench/decode.py), 16 points from weight 0.25 to 1.5 and power 0 to 0.75 all beat the argmax on test, by 0.6 to 1.2
# points, the best within 0.1 of each other at weights 0.5-1 and powers 0.25-0.5: four points cover that plateau
# for a quarter of the time. On the second corpus dev picked weight 1, power 0.5 in both jobs, as on demo.
WEIGHTS = (0.5, 1.0)
PRIOR_POWERS = (0.0, 0.5)
# Seconds per frame and grid point of the decode: 6.5 us measured on the 2-core development machine (16 points on
# the demo corpus's 146,806 dev frames in 15.2 s), with a margin for a loaded machine. The job reserves it.
DECODE_S_PER_FRAME = 8e-6
# Utterances decoded together (padded to the longest of them, shortest first so that padding stays small).
CHUNK_UTTERANCES = 256
FLOOR = 1e-8  # a posterior of 0 (bf16 underflow) must not make a frame's label impossible


@dataclass(frozen=True)
class PhonemeTransitions:
    """Phoneme-to-phoneme transition log-probabilities and the phoneme log-priors, counted on labelled frames."""

    log_transitions: np.ndarray  # (C, C) float32: log P(next frame's phoneme | this frame's), add-one smoothed
    log_prior: np.ndarray  # (C,) float32: log share of each phoneme among the frames (add-one smoothed)

    @classmethod
    def count(cls, labels: np.ndarray, offsets: np.ndarray, num_classes: int) -> "PhonemeTransitions":
        """Count the transitions inside each utterance (``offsets`` as in ``SplitData``), never across two."""
        labels = np.asarray(labels, dtype=np.int64)
        offsets = np.asarray(offsets, dtype=np.int64)
        if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
            raise ConfigError(f"transition labels must be class indices in [0, {num_classes}), but range over "
                              f"[{labels.min()}, {labels.max()}]")
        starts = np.zeros(labels.size, dtype=bool)
        inside = offsets[:-1][offsets[:-1] < labels.size]
        starts[inside] = True
        follows = ~starts[1:]  # frame i+1 continues the utterance of frame i
        pairs = labels[:-1][follows] * num_classes + labels[1:][follows]
        counts = np.bincount(pairs, minlength=num_classes * num_classes).reshape(num_classes, num_classes) + 1.0
        frames = np.bincount(labels, minlength=num_classes) + 1.0
        return cls(np.log(counts / counts.sum(axis=1, keepdims=True)).astype(np.float32),
                   np.log(frames / frames.sum()).astype(np.float32))


def decode_seconds(dev_frames: int, test_frames: int) -> float:
    """About how long fitting the decode on dev and decoding test take (counting the transitions is far less)."""
    return DECODE_S_PER_FRAME * (len(WEIGHTS) * len(PRIOR_POWERS) * dev_frames + test_frames)


def viterbi(frame_scores: np.ndarray, offsets: Sequence[int], log_transitions: np.ndarray) -> np.ndarray:
    """The best-scoring label sequence of each utterance: maximizes the sum of its frames' ``frame_scores``
    ``(N, C)`` plus the ``log_transitions`` ``(C, C)`` between consecutive frames. Returns ``(N,)`` int64."""
    import torch  # here, not at the top: the planner prices the decode (decode_seconds) and must not import torch

    scores = torch.from_numpy(np.ascontiguousarray(frame_scores, dtype=np.float32))
    transitions = torch.from_numpy(np.ascontiguousarray(log_transitions, dtype=np.float32))
    offsets = np.asarray(offsets, dtype=np.int64)
    num_classes = scores.shape[1]
    lengths = np.diff(offsets)
    labels = np.empty(int(offsets[-1]), dtype=np.int64)
    order = np.argsort(lengths, kind="stable")
    order = order[lengths[order] > 0]
    stay = torch.arange(num_classes)
    for first in range(0, len(order), CHUNK_UTTERANCES):
        chunk = order[first:first + CHUNK_UTTERANCES]
        chunk_lengths = torch.from_numpy(lengths[chunk])
        steps = int(chunk_lengths.max())
        padded = torch.zeros(len(chunk), steps, num_classes)
        for row, utterance in enumerate(chunk):
            padded[row, :lengths[utterance]] = scores[offsets[utterance]:offsets[utterance + 1]]
        # back[t, u, c]: the best state at t-1 for state c at t; past an utterance's end it keeps the state, so the
        # backtrace from the padded end reaches the utterance's last frame at its best final state.
        back = torch.empty(steps, len(chunk), num_classes, dtype=torch.int64)
        back[0] = stay
        best = padded[:, 0].clone()
        for step in range(1, steps):
            candidates, previous = (best.unsqueeze(2) + transitions).max(dim=1)
            active = (chunk_lengths > step).unsqueeze(1)
            best = torch.where(active, candidates + padded[:, step], best)
            back[step] = torch.where(active, previous, stay)
        path = torch.empty(steps, len(chunk), dtype=torch.int64)
        path[-1] = best.argmax(dim=1)
        for step in range(steps - 1, 0, -1):
            path[step - 1] = back[step].gather(1, path[step].unsqueeze(1)).squeeze(1)
        path = path.T.numpy()
        for row, utterance in enumerate(chunk):
            labels[offsets[utterance]:offsets[utterance + 1]] = path[row, :lengths[utterance]]
    return labels


@dataclass(frozen=True)
class DecoderFit:
    """What dev chose: the sequence decode at ``weight`` and ``prior_power``, or the argmax (``used`` False)."""

    used: bool
    weight: float
    prior_power: float
    dev_argmax_accuracy: float
    dev_decoded_accuracy: float  # the best grid point's, whether used or not
    grid: dict  # "weight/prior_power" -> dev accuracy, every point tried

    def decode(self, probabilities: np.ndarray, offsets: Sequence[int], transitions: PhonemeTransitions
               ) -> np.ndarray:
        """Labels of every frame: the sequence decode when dev chose it, the argmax otherwise."""
        if not self.used:
            return np.asarray(probabilities).argmax(axis=1)
        return decode_sequence(probabilities, offsets, transitions, self.weight, self.prior_power)

    def to_dict(self) -> dict:
        return asdict(self)


def decode_sequence(probabilities: np.ndarray, offsets: Sequence[int], transitions: PhonemeTransitions,
                    weight: float, prior_power: float) -> np.ndarray:
    """The Viterbi labels of ``probabilities`` ``(N, C)`` at one grid point (see the module docstring)."""
    scores = np.log(np.maximum(np.asarray(probabilities, dtype=np.float32), FLOOR))
    scores -= prior_power * transitions.log_prior
    return viterbi(scores, offsets, weight * transitions.log_transitions)


def fit_decoder(probabilities: np.ndarray, labels: np.ndarray, offsets: Sequence[int],
                transitions: PhonemeTransitions, weights: Sequence[float] = WEIGHTS,
                prior_powers: Sequence[float] = PRIOR_POWERS) -> DecoderFit:
    """Try every grid point on dev (``probabilities``, ``labels``, ``offsets``); the best is used only when it is
    strictly better than the argmax there."""
    labels = np.asarray(labels, dtype=np.int64)
    argmax = float((np.asarray(probabilities).argmax(axis=1) == labels).mean())
    grid = {}
    for weight in weights:
        for power in prior_powers:
            decoded = decode_sequence(probabilities, offsets, transitions, weight, power)
            grid[f"{weight:g}/{power:g}"] = float((decoded == labels).mean())
    best = max(grid, key=lambda key: grid[key])  # the first of equals: the lighter weight, the smaller power
    weight, power = (float(part) for part in best.split("/"))
    return DecoderFit(used=grid[best] > argmax, weight=weight, prior_power=power, dev_argmax_accuracy=argmax,
                      dev_decoded_accuracy=grid[best], grid=grid)
