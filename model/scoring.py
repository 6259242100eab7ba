"""Scoring predictions against true labels: accuracy, per-phoneme accuracy, confusion matrix.

A submission CSV is scored against held-apart transcripts (``score_submission``); predictions already in memory,
such as a model's on dev, against their labels (``score_predictions``). Either gives a ``ScoreReport``, which
``write_score_report`` writes as ``per_phoneme.csv``, ``confusion.html`` and ``score.json``.

The labels folder holds ``transcript/*.npy`` (for example ``ROOT/test-clean-labels``); its files, in sorted name
order with ``[SOS]``/``[EOS]`` stripped, give the true label of submission row 0, 1, ...

HW1P2 keeps the test split's transcripts apart; a data root that has them beside the split
(``ROOT/<test_split>-labels``, as the demo corpus does) gets every test submission scored
(``score_when_labelled``, used by ``retrain`` and ``ensemble``).

Example::

    report = score_submission("submission.csv", "data/demo/test-clean-labels", HW1P2_PHONEMES)
    print(f"{report.accuracy:.4f}")
    write_score_report(report, "runs/mlp4/score")
"""

from __future__ import annotations

import csv
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from phonetune.atomic import atomic_write_json, atomic_write_text
from phonetune.data_pipeline.config import DataConfig
from phonetune.data_pipeline.phonemes import EOS, SOS
from phonetune.data_pipeline.reader import LabelLookup
from phonetune.errors import DataError, what_is_at

PER_PHONEME_FILE = "per_phoneme.csv"
CONFUSION_FILE = "confusion.html"
# The confusion page lists this many of the most-confused pairs under its heatmap.
MOST_CONFUSED = 20
SUMMARY_FILE = "score.json"


class SubmissionError(DataError):
    """A submission CSV is malformed, has unknown labels, or does not match the labels in length."""


@dataclass
class ScoreReport:
    """How predictions compare with the true labels."""

    predictions: str  # what was scored: a submission CSV, or the model whose predictions these are
    labels: str  # where the true labels came from: a labels folder, or a split
    phonemes: list[str]
    confusion: np.ndarray  # (C, C) int64 frame counts, rows = true class, columns = predicted class

    @property
    def frames(self) -> int:
        return int(self.confusion.sum())

    @property
    def accuracy(self) -> float:
        return float(np.trace(self.confusion)) / max(self.frames, 1)

    @property
    def per_phoneme(self) -> list[tuple[str, int, int, float]]:
        """(phoneme, true frames, correctly predicted frames, accuracy or NaN when it never occurs) per class."""
        totals = self.confusion.sum(axis=1)
        correct = np.diag(self.confusion)
        return [
            (symbol, int(totals[i]), int(correct[i]), float(correct[i] / totals[i]) if totals[i] else float("nan"))
            for i, symbol in enumerate(self.phonemes)
        ]


@dataclass(frozen=True)
class ConfusedPair:
    """Frames of one true phoneme predicted as another."""

    true: str
    predicted: str
    frames: int
    share_of_true: float  # of the true phoneme's frames
    share_of_errors: float  # of all wrongly labelled frames


def most_confused(report: ScoreReport, count: int = MOST_CONFUSED) -> list[ConfusedPair]:
    """The ``count`` (true, predicted) pairs with the most wrongly labelled frames, most first; ties by phoneme
    order, so the list is the same on every run."""
    errors = report.confusion.copy()
    np.fill_diagonal(errors, 0)
    wrong = int(errors.sum())
    totals = report.confusion.sum(axis=1)
    flat = np.argsort(-errors, axis=None, kind="stable")[:count]
    pairs = []
    for index in flat:
        true, predicted = divmod(int(index), len(report.phonemes))
        frames = int(errors[true, predicted])
        if frames == 0:
            break
        pairs.append(ConfusedPair(report.phonemes[true], report.phonemes[predicted], frames,
                                  frames / int(totals[true]), frames / wrong))
    return pairs


def _transcript_folder(labels_dir: Path) -> Path:
    if (labels_dir / "transcript").is_dir():
        return labels_dir / "transcript"
    if labels_dir.is_dir() and any(labels_dir.glob("*.npy")):
        return labels_dir
    raise DataError(
        f"labels folder {labels_dir} must hold transcript/*.npy (e.g. ROOT/test-clean-labels), but none were found"
    )


def read_true_labels(labels_dir: str | Path, phonemes: Sequence[str]) -> np.ndarray:
    """Concatenated class indices of every transcript in sorted file order, markers stripped."""
    folder = _transcript_folder(Path(labels_dir))
    lookup = LabelLookup(list(phonemes))
    parts = []
    for path in sorted(folder.glob("*.npy"), key=lambda p: p.name):
        try:
            transcript = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise DataError(f"{path} must be a readable .npy array of phoneme strings, but: {exc}") from exc
        if transcript.dtype.kind not in "US" or transcript.ndim != 1:
            raise DataError(f"{path} must be a 1-D array of phoneme strings, but has dtype {transcript.dtype} "
                            f"and shape {transcript.shape}")
        symbols = transcript.astype(str)
        if len(symbols) and symbols[0] == SOS:
            symbols = symbols[1:]
        if len(symbols) and symbols[-1] == EOS:
            symbols = symbols[:-1]
        parts.append(lookup(symbols, path).astype(np.int64))
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


def read_submission(path: str | Path, phonemes: Sequence[str]) -> np.ndarray:
    """Class indices of a submission's rows; checks the header, that ids run 0..N-1, and that labels are known."""
    path = Path(path)
    if not path.is_file():
        raise SubmissionError(f"submission {path} must be a file, but it {what_is_at(path)}")
    index_of = {symbol: index for index, symbol in enumerate(phonemes)}
    predicted = []
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header != ["id", "label"]:
            raise SubmissionError(f"submission {path} must start with the header 'id,label', but starts with {header}")
        for line_number, row in enumerate(reader, start=2):
            expected_id = line_number - 2
            if len(row) != 2 or row[0].strip() != str(expected_id):
                raise SubmissionError(
                    f"submission {path} line {line_number} must be '{expected_id},<phoneme>', but is {','.join(row)!r}"
                )
            label = row[1].strip()
            if label not in index_of:
                raise SubmissionError(
                    f"submission {path} line {line_number} must have one of the {len(index_of)} phonemes as its "
                    f"label, but has {label!r}"
                )
            predicted.append(index_of[label])
    return np.asarray(predicted, dtype=np.int64)


def score_submission(submission_csv: str | Path, labels_dir: str | Path, phonemes: Sequence[str]) -> ScoreReport:
    """Compare a submission with the transcripts in ``labels_dir``; raises SubmissionError on any mismatch."""
    phonemes = list(phonemes)
    predicted = read_submission(submission_csv, phonemes)
    truth = read_true_labels(labels_dir, phonemes)
    if len(predicted) != len(truth):
        raise SubmissionError(
            f"submission {submission_csv} must have one row per labelled frame ({len(truth)} in {labels_dir}), "
            f"but has {len(predicted)} rows; predict the split those labels belong to"
        )
    return score_predictions(predicted, truth, phonemes, str(submission_csv), str(labels_dir))


def score_predictions(predicted: np.ndarray, truth: np.ndarray, phonemes: Sequence[str], predictions: str,
                      labels: str) -> ScoreReport:
    """Compare class indices ``predicted`` with ``truth`` (equal lengths); ``predictions`` and ``labels`` say what
    they are, for the report's files."""
    classes = len(phonemes)
    confusion = np.bincount(np.asarray(truth, dtype=np.int64) * classes + np.asarray(predicted, dtype=np.int64),
                            minlength=classes * classes).reshape(classes, classes)
    return ScoreReport(predictions, labels, list(phonemes), confusion.astype(np.int64))


def write_score_report(report: ScoreReport, out_dir: str | Path) -> list[Path]:
    """Write ``per_phoneme.csv``, ``confusion.html`` (a plotly heatmap of the confusions, rows normalized, and a
    table of the most-confused pairs) and ``score.json`` (with those pairs)."""
    import plotly.graph_objects as go

    out_dir = Path(out_dir)
    rows = ["phoneme,frames,correct,accuracy"]
    rows.extend(f"{symbol},{frames},{correct},{accuracy:.6f}" for symbol, frames, correct, accuracy in report.per_phoneme)
    per_phoneme = atomic_write_text(out_dir / PER_PHONEME_FILE, "\n".join(rows) + "\n")

    totals = report.confusion.sum(axis=1, keepdims=True)
    shares = np.divide(report.confusion, totals, out=np.zeros(report.confusion.shape), where=totals > 0)
    # The diagonal (most frames of a good model) would take the whole colour range and leave the confusions white:
    # it is left blank, its accuracy in the hover text, and the colours span the off-diagonal shares.
    off_diagonal = shares.copy()
    np.fill_diagonal(off_diagonal, np.nan)
    top = float(np.nanmax(off_diagonal)) if np.any(off_diagonal > 0) else 1.0
    hover = np.array([[f"true {true}, predicted {predicted}: {share:.3f} of {true}'s frames ({frames:,} frames)"
                       for predicted, share, frames in zip(report.phonemes, row, counts)]
                      for true, row, counts in zip(report.phonemes, shares, report.confusion)])
    heatmap = go.Figure(go.Heatmap(
        z=off_diagonal, x=report.phonemes, y=report.phonemes, colorscale="Reds", zmin=0, zmax=top,
        text=hover, hovertemplate="%{text}<extra></extra>", colorbar={"title": "share of the<br>true phoneme"},
    ))
    heatmap.update_layout(
        title=f"confusion of {report.predictions} against {report.labels}: accuracy {report.accuracy:.4f} over "
              f"{report.frames:,} frames<br><sub>rows: true phoneme, each normalized; the diagonal (correct) is "
              f"blank and the colours span the confusions, up to {top:.3f}</sub>",
        xaxis_title="predicted", yaxis_title="true", yaxis_autorange="reversed", height=900, width=950,
    )
    pairs = most_confused(report)
    table = go.Figure(go.Table(
        header={"values": ["true", "predicted as", "frames", "share of the true phoneme", "share of all errors"]},
        cells={"values": [[pair.true for pair in pairs], [pair.predicted for pair in pairs],
                          [f"{pair.frames:,}" for pair in pairs],
                          [f"{pair.share_of_true:.3f}" for pair in pairs],
                          [f"{pair.share_of_errors:.3f}" for pair in pairs]]},
    ))
    table.update_layout(title=f"the {len(pairs)} most-confused pairs", height=120 + 28 * len(pairs), width=950)
    page = ("<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>confusion</title></head><body>"
            + heatmap.to_html(include_plotlyjs=True, full_html=False)
            + table.to_html(include_plotlyjs=False, full_html=False) + "</body></html>")
    confusion = atomic_write_text(out_dir / CONFUSION_FILE, page)
    summary = atomic_write_json(out_dir / SUMMARY_FILE, {
        "predictions": report.predictions, "labels": report.labels, "frames": report.frames,
        "accuracy": report.accuracy,
        "most_confused": [dataclasses.asdict(pair) for pair in pairs],
    })
    return [per_phoneme, confusion, summary]


def labels_dir_of(data: DataConfig) -> Path:
    """Where the data's held-apart test transcripts are, when it has them: ``ROOT/<test_split>-labels``."""
    return Path(data.root) / f"{data.test_split}-labels"


def score_when_labelled(submission_csv: str | Path, data: DataConfig, out_dir: str | Path) -> float | None:
    """Score a test-split submission when the data has test labels (``labels_dir_of``): write the score files
    (``write_score_report``) to ``out_dir`` and return the accuracy; None, writing nothing, when it has none."""
    labels_dir = labels_dir_of(data)
    if not labels_dir.is_dir():
        return None
    report = score_submission(submission_csv, labels_dir, data.phonemes)
    write_score_report(report, out_dir)
    return report.accuracy
