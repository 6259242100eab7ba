"""From frame posteriors to labels: each frame's likeliest phoneme alone, or the likeliest phoneme sequence.

An MLP scores every frame on its own, but speech does not switch phoneme every 10 ms, and which phoneme comes next
depends on the ones before it (words are spelled in phonemes). The sequence decode is a hybrid recognizer's with a
phoneme trigram: its states are pairs (the phoneme before, the phoneme now); each frame either stays in its phoneme
(how long phonemes last: the frame-level self-transition, counted) or moves on to a next phoneme with the
probability of that phoneme after the last two (counted on the training labels' phoneme sequences, smoothed toward
the phoneme bigram). A Viterbi pass over each utterance's frame scores finds the best path; two numbers are chosen
on dev, never on test:

- ``weight``: how much the transitions count against the frame scores (0 would be the argmax);
- ``prior_power``: the posteriors are divided by the phoneme priors to this power (1 turns them into scaled
  likelihoods as an HMM wants them, 0 keeps them as they are; frequent phonemes are otherwise counted twice, once
  in the posterior and once in the transitions into them).

The trigram replaced a bigram of frame transitions (one state per phoneme) after measuring both on two corpora
(BENCHMARKS.md, "A phoneme trigram in the decode"): on dev it added 0.8 points over the bigram on the demo corpus's
make-demo model and 2.3 on a weaker model of the second corpus.

The model is untouched: the decode post-processes its outputs with tables of counts from the training labels,
nothing trained by gradient and nothing from outside the corpus. The handout frames the task as per-frame
classification by an MLP, so a submission holds the network's own argmax by default and the decoded labels are
written beside it (``[decode] mode = "argmax"``); ``"viterbi"`` makes them the submission, only when strictly better
than the argmax on dev; ``"off"`` skips the decode and its time.

Example::

    transitions = PhonemeTransitions.count(train.labels, train.offsets, num_classes=40)
    fit = fit_decoder(dev_probabilities, dev.labels, dev.offsets, transitions)
    labels = fit.decode(test_probabilities, test.offsets, transitions)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np

from phonetune.errors import ConfigError

# The constants below were chosen on dev of two models, one per corpus, and checked on a third corpus none of them
# was chosen on: BENCHMARKS.md, "A phoneme trigram in the decode".
# The dev grid: the four points where the best of a wider grid lay on both corpora.
WEIGHTS = (1.0, 1.5)
PRIOR_POWERS = (0.5, 0.75)
# The grid is scored on at most this many dev frames (every n-th utterance): enough to resolve its points, and the
# decode then costs the same on HW1P2's 1.9M dev frames as on the demo's.
FIT_MAX_FRAMES = 50_000
# Pseudo-counts that pull a phoneme trigram toward the bigram (fewer beat more on both corpora).
TRIGRAM_SMOOTHING = 1.0
# The phonemes (by their best state's score) that a path may leave at each frame: a beam this narrow matched the
# exact recursion over all 40 for a fraction of its time.
BEAM = 4
# Seconds per frame and grid point on the 2-core development machine, with a margin for a loaded one; the job
# reserves it (decode_seconds).
DECODE_S_PER_FRAME = 1e-4
# Back-pointers kept per batch of utterances decoded together (one byte per state and frame).
BACKPOINTER_BYTES = 256 << 20
FLOOR = 1e-8  # a posterior of 0 (bf16 underflow) must not make a frame's label impossible
STAYED = 255  # back-pointer of a frame that kept its state (phoneme indices are below it)
IMPOSSIBLE = -1e30


@dataclass(frozen=True)
class PhonemeTransitions:
    """Counted on labelled frames: how long phonemes last, which phoneme follows which two, the phoneme priors."""

    log_stay: np.ndarray  # (C,) float32: log P(the next frame keeps this phoneme), add-one smoothed
    log_next: np.ndarray  # (C, C, C) float32: log P(next phoneme c | the one before a, this one b); -inf at c == b
    log_prior: np.ndarray  # (C,) float32: log share of each phoneme among the frames (add-one smoothed)

    @classmethod
    def count(cls, labels: np.ndarray, offsets: np.ndarray, num_classes: int,
              smoothing: float = TRIGRAM_SMOOTHING) -> "PhonemeTransitions":
        """Count inside each utterance (``offsets`` as in ``SplitData``), never across two."""
        labels = np.asarray(labels, dtype=np.int64)
        offsets = np.asarray(offsets, dtype=np.int64)
        classes = num_classes
        if labels.size and (labels.min() < 0 or labels.max() >= classes):
            raise ConfigError(f"transition labels must be class indices in [0, {classes}), but range over "
                              f"[{labels.min()}, {labels.max()}]")
        if not 2 <= classes < STAYED:  # back-pointers are bytes, one value kept for "stayed"
            raise ConfigError(f"a sequence decode needs 2 to {STAYED - 1} classes, but got {classes}")
        starts = np.zeros(labels.size, dtype=bool)
        starts[offsets[:-1][offsets[:-1] < labels.size]] = True
        follows = ~starts[1:]  # frame i+1 continues the utterance of frame i
        stays = np.bincount(labels[:-1][follows & (labels[:-1] == labels[1:])], minlength=classes)
        steps = np.bincount(labels[:-1][follows], minlength=classes)
        stay = (stays + 1.0) / (steps + 2.0)
        # The phoneme sequence of each utterance: a phoneme starts where the utterance does or the label changes.
        changes = np.ones(labels.size, dtype=bool)
        changes[1:] = starts[1:] | (labels[1:] != labels[:-1])
        phones = labels[changes]
        utterance = np.cumsum(starts)[changes]
        pair = utterance[1:] == utterance[:-1]
        bigram = np.bincount(phones[:-1][pair] * classes + phones[1:][pair],
                             minlength=classes * classes).reshape(classes, classes).astype(np.float64)
        triple = pair[:-1] & pair[1:]
        trigram = np.bincount((phones[:-2][triple] * classes + phones[1:-1][triple]) * classes + phones[2:][triple],
                              minlength=classes ** 3).reshape(classes, classes, classes).astype(np.float64)
        other = 1.0 - np.eye(classes)  # a next phoneme is another phoneme
        bigram = (bigram + 1.0) * other
        bigram /= bigram.sum(axis=1, keepdims=True)
        following = (trigram + smoothing * bigram[None]) * other[None]
        following /= following.sum(axis=2, keepdims=True)
        with np.errstate(divide="ignore"):
            log_next = np.log(following).astype(np.float32)
        frames = np.bincount(labels, minlength=classes) + 1.0
        return cls(np.log(stay).astype(np.float32), log_next, np.log(frames / frames.sum()).astype(np.float32))

    @property
    def num_classes(self) -> int:
        return int(self.log_stay.shape[0])


def decode_seconds(dev_frames: int, test_frames: int) -> float:
    """About how long fitting the decode on dev and decoding test take (counting the transitions is far less)."""
    points = len(WEIGHTS) * len(PRIOR_POWERS)
    return DECODE_S_PER_FRAME * (points * min(dev_frames, FIT_MAX_FRAMES) + test_frames)


def viterbi(frame_scores: np.ndarray, offsets: Sequence[int], transitions: PhonemeTransitions, weight: float,
            beam: int = BEAM) -> np.ndarray:
    """The best-scoring label sequence of each utterance: maximizes the sum of its frames' ``frame_scores`` ``(N, C)``
    plus ``weight`` times the log-probabilities of its stays and moves (``PhonemeTransitions``). At each frame only
    paths in the ``beam`` best-scoring phonemes may move on (``beam = C`` is the exact recursion). Runs on the GPU
    when there is one. Returns ``(N,)`` int64."""
    import torch  # here, not at the top: the planner prices the decode (decode_seconds) and must not import torch

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    classes = transitions.num_classes
    scores = torch.from_numpy(np.ascontiguousarray(frame_scores, dtype=np.float32))
    stay = torch.from_numpy(weight * transitions.log_stay).to(device)
    leave = torch.from_numpy(weight * np.log1p(-np.exp(transitions.log_stay))).to(device)
    # move[b, a, c]: from the state (a, b) to (b, c); indexed by b first, the phoneme a path leaves.
    move = torch.from_numpy(weight * np.maximum(transitions.log_next, IMPOSSIBLE)).to(device)
    move = (move + leave.view(1, classes, 1)).permute(1, 0, 2).contiguous()
    offsets = np.asarray(offsets, dtype=np.int64)
    lengths = np.diff(offsets)
    labels = np.empty(int(offsets[-1]), dtype=np.int64)
    order = np.argsort(lengths, kind="stable")
    order = order[lengths[order] > 0]
    keep = min(beam, classes)
    first = 0
    while first < len(order):
        # As many utterances (shortest first, so that padding stays small) as their back-pointers allow.
        count = 1
        while (first + count < len(order)
               and (count + 1) * lengths[order[first + count]] * classes * classes <= BACKPOINTER_BYTES):
            count += 1
        chunk = order[first:first + count]
        first += count
        chunk_lengths = torch.from_numpy(lengths[chunk]).to(device)
        steps, width = int(lengths[chunk].max()), len(chunk)
        padded = torch.zeros(width, steps, classes)
        for row, utterance in enumerate(chunk):
            padded[row, :lengths[utterance]] = scores[offsets[utterance]:offsets[utterance + 1]]
        padded = padded.to(device)
        # best[u, a, b]: the best path's score ending in phoneme b with a before it; a == b is no state. An
        # utterance's first phoneme may follow any other (nothing was said before it).
        best = padded[:, 0].view(width, 1, classes).repeat(1, classes, 1)
        best[:, torch.eye(classes, dtype=torch.bool, device=device)] = IMPOSSIBLE
        # back[t, u, a, b]: the phoneme before a on the best path into (a, b) at t when it moved there from (that,
        # a), STAYED when it kept (a, b); past an utterance's end every state keeps itself, so the backtrace from the
        # padded end reaches the utterance's last frame in its best final state.
        back = torch.empty(steps, width, classes, classes, dtype=torch.uint8, device=device)
        spread = (width, keep, classes)
        for step in range(1, steps):
            leaving = best.amax(dim=1).topk(keep, dim=1).indices  # (u, keep): the phonemes worth leaving
            scores_in = best.gather(2, leaving.unsqueeze(1).expand(width, classes, keep)).transpose(1, 2)
            moved_k, came_k = (scores_in.unsqueeze(3) + move[leaving]).max(dim=2)  # (u, keep, c) over a
            moved = torch.full_like(best, IMPOSSIBLE).scatter_(1, leaving.unsqueeze(2).expand(spread), moved_k)
            came = torch.zeros(best.shape, dtype=torch.int64, device=device).scatter_(
                1, leaving.unsqueeze(2).expand(spread), came_k)
            stayed = best + stay
            kept = stayed >= moved
            active = (chunk_lengths > step).view(width, 1, 1)
            best = torch.where(active, torch.where(kept, stayed, moved) + padded[:, step].unsqueeze(1), best)
            back[step] = torch.where(active & ~kept, came, STAYED).to(torch.uint8)
        final = best.view(width, -1).argmax(dim=1)
        before, now = final // classes, final % classes
        rows = torch.arange(width, device=device)
        path = torch.empty(steps, width, dtype=torch.int64, device=device)
        for step in range(steps - 1, -1, -1):
            path[step] = now
            if step:
                came = back[step][rows, before, now].long()
                moved_here = came != STAYED
                now, before = torch.where(moved_here, before, now), torch.where(moved_here, came, before)
        path = path.T.cpu().numpy()
        for row, utterance in enumerate(chunk):
            labels[offsets[utterance]:offsets[utterance + 1]] = path[row, :lengths[utterance]]
    return labels


@dataclass(frozen=True)
class DecoderFit:
    """What dev chose: the sequence decode at ``weight`` and ``prior_power``, or the argmax (``used`` False)."""

    used: bool
    weight: float
    prior_power: float
    dev_argmax_accuracy: float  # on the dev frames the grid was scored on
    dev_decoded_accuracy: float  # the best grid point's, whether used or not
    grid: dict  # "weight/prior_power" -> dev accuracy, every point tried
    fit_frames: int = 0  # dev frames the grid was scored on (every n-th utterance, at most FIT_MAX_FRAMES or so)

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
    return viterbi(scores, offsets, transitions, weight)


def every_nth_utterance(offsets: Sequence[int], max_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """Frame indices and offsets of every n-th utterance, n the smallest that keeps about ``max_frames`` frames."""
    offsets = np.asarray(offsets, dtype=np.int64)
    stride = max(1, math.ceil(int(offsets[-1]) / max_frames))
    chosen = np.arange(0, len(offsets) - 1, stride)
    frames = np.concatenate([np.arange(offsets[u], offsets[u + 1]) for u in chosen]) if len(chosen) else \
        np.empty(0, dtype=np.int64)
    return frames, np.concatenate([[0], np.cumsum(offsets[chosen + 1] - offsets[chosen])])


def fit_decoder(probabilities: np.ndarray, labels: np.ndarray, offsets: Sequence[int],
                transitions: PhonemeTransitions, weights: Sequence[float] = WEIGHTS,
                prior_powers: Sequence[float] = PRIOR_POWERS, max_frames: int = FIT_MAX_FRAMES) -> DecoderFit:
    """Try every grid point on dev (``probabilities``, ``labels``, ``offsets``; every n-th utterance when there are
    more than ``max_frames`` frames); the best is used only when it is strictly better than the argmax there."""
    frames, fit_offsets = every_nth_utterance(offsets, max_frames)
    probabilities = np.asarray(probabilities)[frames]
    labels = np.asarray(labels, dtype=np.int64)[frames]
    argmax = float((probabilities.argmax(axis=1) == labels).mean())
    grid = {}
    for weight in weights:
        for power in prior_powers:
            decoded = decode_sequence(probabilities, fit_offsets, transitions, weight, power)
            grid[f"{weight:g}/{power:g}"] = float((decoded == labels).mean())
    best = max(grid, key=lambda key: grid[key])  # the first of equals: the lighter weight, the smaller power
    weight, power = (float(part) for part in best.split("/"))
    return DecoderFit(used=grid[best] > argmax, weight=weight, prior_power=power, dev_argmax_accuracy=argmax,
                      dev_decoded_accuracy=grid[best], grid=grid, fit_frames=len(labels))
