"""The final model's labels: each frame's argmax (the network's own) and the sequence decode's, which the
submission holds and which stands beside it (``[decode] mode``), and the line that says so.

The handout frames HW1P2 as per-frame classification by an MLP, so the submission holds each test frame's argmax by
default; ``submission-decoded.csv`` beside it holds each utterance's likeliest phoneme sequence under the training
labels' transitions (``model/decode.py``) at the point dev chose. ``[decode] mode = "viterbi"`` swaps the two when
the decode beats the argmax on dev (``submission-argmax.csv`` beside); ``"off"`` writes the argmax alone.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from phonetune.model.decode import DecoderFit, PhonemeTransitions, decode_sequence, fit_decoder
from phonetune.model.ensemble import EnsembleMember
from phonetune.model.inference import load_checkpoint_split
from phonetune.search.config import StudyConfig

logger = logging.getLogger(__name__)

SUBMISSION_FILE = "submission.csv"
DECODED_FILE = "submission-decoded.csv"  # beside an argmax submission: the sequence decode's labels
ARGMAX_FILE = "submission-argmax.csv"  # beside a decoded submission: the network's own labels


def decode_test_labels(config: StudyConfig, member: EnsembleMember, dev_probs: np.ndarray, dev_labels: np.ndarray,
                       dev_offsets: np.ndarray, test_probs: np.ndarray, progress: bool = False
                       ) -> tuple[DecoderFit | None, np.ndarray]:
    """The sequence decode fit on dev (None under ``[decode] mode = "off"``) and the test labels it gives at dev's best
    grid point (whether or not that beat the argmax on dev: ``DecoderFit.used`` says; with the decode off, each
    frame's argmax): the transitions counted on the train split as ``member`` reads it, the grid scored on dev's
    probabilities."""
    if config.decode.mode == "off":
        return None, test_probs.argmax(axis=1)
    data = config.data
    train = load_checkpoint_split(member.run_config, member.payload, data.root, data.train_split, progress=progress)
    test = load_checkpoint_split(member.run_config, member.payload, data.root, data.test_split, progress=progress)
    transitions = PhonemeTransitions.count(train.labels, train.offsets, test_probs.shape[1])
    decoder = fit_decoder(dev_probs, dev_labels, dev_offsets, transitions)
    logger.info("decode: %s on dev (argmax %.4f, sequence %.4f at weight %g, prior power %g)",
                "sequence" if decoder.used else "argmax", decoder.dev_argmax_accuracy, decoder.dev_decoded_accuracy,
                decoder.weight, decoder.prior_power)
    return decoder, decode_sequence(test_probs, test.offsets, transitions, decoder.weight, decoder.prior_power)


def labels_line(model: dict) -> str:
    """What the submission holds and what stands beside it, each with its dev (and, when labelled, test) accuracy:
    ``labels: each frame's argmax (dev 0.8801, test 0.8857); beside it, submission-decoded.csv: ...``."""
    decoder = model.get("decoder")
    argmax_test = model.get("test_argmax_accuracy")
    decoded_test = model.get("test_decoded_accuracy")

    def scored(dev: float | None, test: float | None) -> str:
        parts = [f"dev {dev:.4f}" if dev is not None else None, f"test {test:.4f}" if test is not None else None]
        return ", ".join(part for part in parts if part)

    argmax = f"each frame's argmax, the network's own ({scored(model.get('dev_accuracy'), argmax_test)})"
    if decoder is None:
        return f"labels: {argmax}; no sequence decode ([decode] mode = \"off\")"
    decoded = (f"the likeliest phoneme sequence at weight {decoder['weight']:g}, prior power "
               f"{decoder['prior_power']:g} ({scored(decoder['dev_decoded_accuracy'], decoded_test)}; dev by argmax on "
               f"the same {decoder.get('fit_frames', 0):,} frames {decoder['dev_argmax_accuracy']:.4f})")
    beside = Path(model["other_submission"]).name if model.get("other_submission") else "(not written)"
    if model.get("labels") == "decoded":
        return f"labels: {decoded}; beside it, {beside}: {argmax}"
    return f"labels: {argmax}; beside it, {beside}: {decoded}"
