"""How fast this machine trains MLPs: ``Speed``, seconds per training frame as a line in the parameter count.

A training step of an MLP costs about 6 multiply-adds per parameter per frame (forward, two backward products), plus
a per-frame cost that does not grow with the model (gathering windows, the loss, the optimizer's fixed overheads),
plus a per-step cost that does not grow with the batch (kernel launches and Python around each step: small on a CPU,
most of a small-batch step on a GPU). So ``seconds_per_frame = fixed + per_param * params + per_step / batch_size``
prices a run of any candidate before it starts. ``model.speed_probe.measure_speed`` measures the coefficients
(torch); this module is plain arithmetic.

Example::

    speed = measure_speed(device="cpu")    # from phonetune.model.speed_probe
    speed.frames_per_s(1_000_000)          # training frames per second of a 1M-parameter MLP here, batch 1024
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

# Evaluating a frame (forward only) costs about a third of training it (forward + backward).
EVAL_COST_FRACTION = 1 / 3
DEFAULT_BATCH = 1024
# ``Speed.through`` moves the probe's per-parameter slope by at most this factor either way: the probe's models are
# not the warm start (no dropout, another width), whose step measured within 1.5x of the line on the development
# machine (BENCHMARKS.md, "Faster dropout on the CPU"), so 2x leaves room for other machines and still stops a step
# timed under load.
MAX_REFIT = 2.0


@dataclass(frozen=True)
class Speed:
    """``seconds_per_frame(params, batch) = fixed + per_param * params + per_step / batch``; evaluation a third."""

    fixed: float  # seconds per training frame that do not depend on the model size
    per_param: float  # seconds per training frame per parameter
    device: str
    per_step: float = 0.0  # seconds per optimizer step that do not depend on the batch size
    threads: int = 0  # the torch threads it was measured with (0: not recorded)
    # The probe's own timing of its large model's step (``speed_probe.LARGE`` at ``speed_probe.BATCH``), seconds; a
    # step timed later beside that model is priced from it (0: not recorded, the line at that model instead).
    reference_step_s: float = 0.0

    def seconds_per_frame(self, params: int, batch_size: int = DEFAULT_BATCH) -> float:
        return self.fixed + self.per_param * params + self.per_step / batch_size

    def step_seconds(self, params: int, batch_size: int) -> float:
        """One optimizer step of a ``params``-parameter model at ``batch_size``."""
        return self.seconds_per_frame(params, batch_size) * batch_size

    def steps_in(self, seconds: float, params: int, batch_size: int) -> int:
        """Optimizer steps that ``seconds`` of training buy (at least 1)."""
        return max(1, int(seconds / self.step_seconds(params, batch_size)))

    def frames_per_s(self, params: int, batch_size: int = DEFAULT_BATCH) -> float:
        return 1.0 / self.seconds_per_frame(params, batch_size)

    def epoch_seconds(self, params: int, train_frames: int, dev_frames: int, batch_size: int = DEFAULT_BATCH) -> float:
        """One epoch: every training frame trained once, then every dev frame evaluated."""
        return (self.seconds_per_frame(params, batch_size) * train_frames
                + self.predict_seconds(params, dev_frames))

    def predict_seconds(self, params: int, frames: int) -> float:
        """Evaluating or predicting ``frames`` frames with a ``params``-parameter model (large batches)."""
        return EVAL_COST_FRACTION * (self.fixed + self.per_param * params) * frames

    def largest_params(self, seconds_per_frame: float, batch_size: int = DEFAULT_BATCH) -> int:
        """The most parameters a model may have to train at ``seconds_per_frame`` (0 when even a tiny one cannot)."""
        return max(0, int((seconds_per_frame - self.fixed - self.per_step / batch_size) / self.per_param))

    def through(self, params: int, batch_size: int, step_seconds: float) -> "Speed":
        """The line refit through one measured step: ``per_param`` such that a ``params``-parameter model at
        ``batch_size`` costs ``step_seconds`` a step, the per-frame and per-step costs kept (they come from the small
        probe, which this one measurement says nothing about). Within ``MAX_REFIT`` of the probe's own slope either
        way: a step timed during a burst of other work must not resize the whole plan."""
        if params <= 0 or batch_size <= 0 or step_seconds <= 0:
            raise ValueError(f"a measured step needs params, batch_size and step_seconds above 0, but got "
                             f"params={params}, batch_size={batch_size}, step_seconds={step_seconds}")
        slope = (step_seconds / batch_size - self.fixed - self.per_step / batch_size) / params
        slope = min(self.per_param * MAX_REFIT, max(self.per_param / MAX_REFIT, slope))
        return replace(self, per_param=slope)

    def to_dict(self) -> dict:
        return asdict(self)
