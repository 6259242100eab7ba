"""How fast this machine trains MLPs: ``Speed``, seconds per training frame as a line in the parameter count.

A training step of an MLP costs about 6 multiply-adds per parameter per frame (forward, two backward products), plus
a per-frame cost that does not grow with the model (gathering windows, the loss, the optimizer's fixed overheads), so
``seconds_per_frame = fixed + per_param * params`` prices a full-data run of any candidate before it starts.
``model.speed_probe.measure_speed`` measures the two coefficients (torch); this module is plain arithmetic.

Example::

    speed = measure_speed(device="cpu")    # from phonetune.model.speed_probe
    speed.frames_per_s(1_000_000)          # training frames per second of a 1M-parameter MLP here
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

# Evaluating a frame (forward only) costs about a third of training it (forward + backward).
EVAL_COST_FRACTION = 1 / 3


@dataclass(frozen=True)
class Speed:
    """``seconds_per_frame(params) = fixed + per_param * params`` for training; evaluation costs a third of it."""

    fixed: float  # seconds per training frame that do not depend on the model size
    per_param: float  # seconds per training frame per parameter
    device: str

    def seconds_per_frame(self, params: int) -> float:
        return self.fixed + self.per_param * params

    def frames_per_s(self, params: int) -> float:
        return 1.0 / self.seconds_per_frame(params)

    def epoch_seconds(self, params: int, train_frames: int, dev_frames: int) -> float:
        """One epoch: every training frame trained once, then every dev frame evaluated."""
        return self.seconds_per_frame(params) * (train_frames + EVAL_COST_FRACTION * dev_frames)

    def largest_params(self, seconds_per_frame: float) -> int:
        """The most parameters a model may have to train at ``seconds_per_frame`` (0 when even a tiny one cannot)."""
        return max(0, int((seconds_per_frame - self.fixed) / self.per_param))

    def to_dict(self) -> dict:
        return asdict(self)
