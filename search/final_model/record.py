"""``FinalModel``: what the final model is and how it scored, as ``build_final_model`` records it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass
class FinalModel:
    """What ``build_final_model`` chose and how each option scored; kept in the full-data study as a dict."""

    chosen: str  # "ensemble" or "single"
    members: list[int]  # search trial numbers of the chosen run(s), the first one the best single
    param_count: int  # summed over the chosen members
    size_cap: int  # the most parameters the members may have together (the study's; the HW1P2 limit by default)
    dev_accuracy: float  # of the chosen model(s), each frame's argmax
    single_dev_accuracy: float  # of the best single run
    ensemble_dev_accuracy: float  # of the selected ensemble (equals single when selection kept one member)
    trail: list[float]  # dev accuracy after each greedy addition
    submission: Path
    test_frames: int
    test_accuracy: float | None = None  # None without test labels
    member_dev_accuracy: dict[int, float] = field(default_factory=dict)
    member_test_accuracy: dict[int, float] = field(default_factory=dict)  # each run alone; empty without labels
    dev_score_dir: str | None = None  # per_phoneme.csv and confusion.html of the chosen model on dev
    test_score_dir: str | None = None  # the same on test, when it has labels
    metadata: str | None = None  # model_metadata.json
    decoder: dict | None = None  # DecoderFit.to_dict(): what dev chose, every grid point; None with [decode] off
    test_argmax_accuracy: float | None = None  # the chosen model's own per-frame argmax on test (labels only)
    labels: str = "argmax"  # what the submission holds: "argmax" (the network's own) or "decoded"
    other_submission: str | None = None  # the other labels, beside it (submission-decoded.csv / -argmax.csv)
    test_decoded_accuracy: float | None = None  # the sequence decode's labels on test (labels only)
    member_weights: list[int] = field(default_factory=list)  # times each of ``members`` is in the average

    def to_dict(self) -> dict:
        values = asdict(self)
        values["submission"] = str(self.submission)
        return values
