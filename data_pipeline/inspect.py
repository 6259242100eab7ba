"""``inspect_root``: validate a data root the way ``load_split`` reads it, without building a cache.

Run right after downloading the data. For each standard split present it reports utterances, frames, feature
width, frames per class and the first named error (``None`` when the split reads cleanly).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tqdm import tqdm

from phonetune.data_pipeline.config import DataConfig
from phonetune.data_pipeline.errors import MissingSplitError
from phonetune.data_pipeline.reader import (
    LabelLookup,
    list_split,
    nested_hint,
    nested_root,
    present_splits,
    read_utterance,
    scan_headers,
)
from phonetune.errors import DataError


def inspect_split(root: str | Path, split: str, config: DataConfig, *, progress: bool = False) -> dict:
    """Summary of one split; a ``DataError`` is reported in ``error`` as ``"ClassName: message"``."""
    summary: dict = {
        "utterances": None,
        "frames": None,
        "feature_width": config.feature_width,
        "has_transcripts": None,
        "frames_per_class": None,
        "error": None,
    }
    try:
        files = list_split(root, split)
        summary["utterances"] = len(files.features)
        summary["has_transcripts"] = files.has_labels
        lengths = scan_headers(files, config.feature_width)
        summary["frames"] = int(lengths.sum())
        lookup = LabelLookup(config.phonemes)
        counts = np.zeros(len(config.phonemes), dtype=np.int64)
        for index in tqdm(range(len(lengths)), desc=f"checking {split}", unit="utt", disable=not progress):
            _features, labels = read_utterance(files, index, config.feature_width, lookup)
            if labels is not None:
                counts += np.bincount(labels, minlength=len(counts))
        if files.has_labels:
            summary["frames_per_class"] = {symbol: int(count) for symbol, count in zip(config.phonemes, counts)}
    except DataError as exc:
        summary["error"] = f"{type(exc).__name__}: {exc}"
    return summary


def inspect_root(root: str | Path, config: DataConfig | None = None, *, progress: bool = False) -> dict[str, dict]:
    """``{split: summary}`` for each of the config's train/dev/test splits found under ``root``.

    Raises ``MissingSplitError`` when ``root`` does not exist or holds none of them.
    """
    config = config or DataConfig(root=str(root))
    candidates = [config.train_split, config.dev_split, config.test_split]
    present = present_splits(root, candidates)
    nested = nested_root(Path(root), candidates) if not present else None
    if nested is not None:
        raise MissingSplitError(f"data root {root} must hold the split folders {candidates}, but {nested_hint(nested)}")
    if not present:
        raise MissingSplitError(
            f"data root {root} must hold at least one of the split folders {candidates}, but has none; "
            f"expected layout ROOT/<split>/mfcc/*.npy"
        )
    return {split: inspect_split(root, split, config, progress=progress) for split in present}


def format_report(root: str | Path, report: dict[str, dict]) -> str:
    """Human-readable text of an ``inspect_root`` result."""
    lines = [f"data root: {root}"]
    for split, summary in report.items():
        counts = []
        if summary["utterances"] is not None:
            counts.append(f"{summary['utterances']:,} utterances")
        if summary["frames"] is not None:
            counts.append(f"{summary['frames']:,} frames")
        counts.append(f"feature width {summary['feature_width']}")
        if summary["has_transcripts"] is False:
            counts.append("no transcripts")
        lines.append(f"{split}: " + ", ".join(counts))
        per_class = summary["frames_per_class"]
        if per_class:
            total = max(sum(per_class.values()), 1)
            cells = [f"{symbol:>6} {count:>9,} {100 * count / total:5.1f}%" for symbol, count in per_class.items()]
            lines.append("  frames per class:")
            for start in range(0, len(cells), 4):
                lines.append("   " + "   ".join(cells[start : start + 4]))
        if summary["error"]:
            lines.append(f"  error: {summary['error']}")
        elif summary["frames"] is not None:
            lines.append("  ok")
    return "\n".join(lines)


def has_errors(report: dict[str, dict]) -> bool:
    return any(summary["error"] for summary in report.values())
