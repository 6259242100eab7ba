"""What the sequence decode (``model/decode.py``) makes of one trained model, against its own argmax.

Loads a checkpoint, predicts dev and test, counts the phoneme transitions on the training labels, then prints dev
and test accuracy at every point of a grid of the transitions' weight and the prior power (wider than the job's
four points, to show where they sit; a point takes about 20 s on the demo corpus here), the point the job's own
grid picks on dev, and the argmax. The last line is ``ratio: X`` = test accuracy of the job's pick / test accuracy
of the argmax.

Usage: python bench/decode.py --checkpoint studies/demo/full/0/best.pt [--data data/demo]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from phonetune.model.decode import PRIOR_POWERS, WEIGHTS, PhonemeTransitions, decode_sequence, fit_decoder
from phonetune.model.inference import load_checkpoint, load_checkpoint_split, predict_probabilities
from phonetune.model.scoring import read_true_labels

GRID_WEIGHTS = (0.5, 1.0, 1.5, 2.0)
GRID_PRIOR_POWERS = (0.25, 0.5, 0.75)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--data", default="data/demo")
    parser.add_argument("--train-split", default="train-clean-100")
    parser.add_argument("--dev-split", default="dev-clean")
    parser.add_argument("--test-split", default="test-clean")
    args = parser.parse_args()
    model, run_config, payload = load_checkpoint(args.checkpoint, "cpu")
    phonemes = run_config.data.phonemes
    train, dev, test = (load_checkpoint_split(run_config, payload, args.data, split, progress=False)
                        for split in (args.train_split, args.dev_split, args.test_split))
    transitions = PhonemeTransitions.count(train.labels, train.offsets, len(phonemes))
    dev_labels = np.asarray(dev.labels, dtype=np.int64)
    test_labels = read_true_labels(Path(args.data) / f"{args.test_split}-labels", phonemes)
    dev_probs = predict_probabilities(model, run_config, dev, "cpu")
    test_probs = predict_probabilities(model, run_config, test, "cpu")
    argmax = float((test_probs.argmax(axis=1) == test_labels).mean())
    print(f"{args.checkpoint}: {dev.num_frames:,} dev frames, {test.num_frames:,} test frames")
    print(f"argmax: dev {(dev_probs.argmax(axis=1) == dev_labels).mean():.4f}, test {argmax:.4f}")
    print("weight / prior power: dev, test")
    for weight in GRID_WEIGHTS:
        cells = []
        for power in GRID_PRIOR_POWERS:
            on_dev = (decode_sequence(dev_probs, dev.offsets, transitions, weight, power) == dev_labels).mean()
            on_test = (decode_sequence(test_probs, test.offsets, transitions, weight, power) == test_labels).mean()
            cells.append(f"{weight:g}/{power:g}: {on_dev:.4f}, {on_test:.4f}")
        print("  " + " | ".join(cells), flush=True)
    started = time.perf_counter()
    fit = fit_decoder(dev_probs, dev_labels, dev.offsets, transitions)
    decoded = float((fit.decode(test_probs, test.offsets, transitions) == test_labels).mean())
    seconds = time.perf_counter() - started
    pick = f"weight {fit.weight:g}, prior power {fit.prior_power:g}" if fit.used else "the argmax"
    print(f"the job's grid ({len(WEIGHTS) * len(PRIOR_POWERS)} points) picks {pick} on dev: test {decoded:.4f} "
          f"({seconds:.1f} s to fit on dev and decode test)")
    print(f"ratio: {decoded / argmax:.4f}")


if __name__ == "__main__":
    main()
