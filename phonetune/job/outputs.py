"""What a finished job names, as it wrote it: each output's path, size and SHA-256, kept in its summary.

A rerun of a finished job reprints its result; before it does, it checks each named file against this record, so a
file deleted, truncated or replaced since is found rather than vouched for. Files the job can make again from what
is intact are rebuilt: the exports (sheet, writeup table, report; ``phonetune report`` rewrites the last one too)
from the stored studies, the submission and the files beside it from the final checkpoints. A damaged checkpoint
cannot be, and the rerun names it and the command that trains it again.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

OUTPUTS_KEY = "outputs"  # the summary's record: label -> {"path", "bytes", "sha256"}
CHECKPOINT_LABEL = "checkpoint of trial"  # labels of the final model's checkpoints start with this
EXPORT_LABELS = ("ablation sheet", "writeup table", "report")
HASH_CHUNK_BYTES = 1 << 20


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(HASH_CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def record_outputs(named: Mapping[str, str | Path]) -> dict[str, dict]:
    """``{label: {"path", "bytes", "sha256"}}`` of files just written (each must exist)."""
    record = {}
    for label, path in named.items():
        path = Path(path)
        record[label] = {"path": str(path), "bytes": path.stat().st_size, "sha256": file_digest(path)}
    return record


@dataclass(frozen=True)
class DamagedOutput:
    label: str
    path: str
    problem: str

    @property
    def rebuildable(self) -> bool:
        return not self.label.startswith(CHECKPOINT_LABEL)

    @property
    def export(self) -> bool:
        """An export of the stored studies (rewritten in seconds), not a file of the final model's predictions."""
        return self.label in EXPORT_LABELS

    def __str__(self) -> str:
        return f"{self.label} {self.path} {self.problem}"


def damaged_outputs(record: Mapping[str, Mapping]) -> list[DamagedOutput]:
    """The recorded files that are no longer as written: missing, another size, or other bytes."""
    damaged = []
    for label, entry in record.items():
        path = Path(entry["path"])
        if not path.is_file():
            damaged.append(DamagedOutput(label, str(path), "is missing"))
            continue
        size = path.stat().st_size
        if size != entry["bytes"]:
            damaged.append(DamagedOutput(label, str(path), f"has {size:,} bytes, but was written with "
                                                           f"{entry['bytes']:,}"))
        elif file_digest(path) != entry["sha256"]:
            damaged.append(DamagedOutput(label, str(path), "has other bytes than were written (its SHA-256 differs)"))
    return damaged


def named_outputs(summary: Mapping, checkpoints: Mapping[int, Path]) -> dict[str, str | Path]:
    """The files a job's summary names, by label, with the final model's member checkpoints."""
    model = summary["final_model"]
    named: dict[str, str | Path] = {"submission": summary["submission"]}
    if model.get("other_submission"):
        named["labels beside the submission"] = model["other_submission"]
    if model.get("metadata"):
        named["model metadata"] = model["metadata"]
    named.update(zip(EXPORT_LABELS, (summary["sheet"], summary["changes"], summary["report"])))
    named.update({f"{CHECKPOINT_LABEL} {number}": path for number, path in sorted(checkpoints.items())})
    return named
