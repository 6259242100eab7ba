"""``measure_speed``: time real training steps on this machine and fit ``model.speed.Speed`` through them.

The steps are what training does (windows gathered from the real training split when one is given, AdamW, batch
norm, GELU, cross-entropy; bf16 autocast where native, as in training), for a small model (dominated by the
per-frame cost) and a larger one (dominated by the per-parameter cost), the larger one also at a small batch (the
per-step cost). Measured overheads, not a factor fitted once, are what ``phonetune run`` prices its runs with.

The thread count is measured too: on a machine where another process holds a core, torch's default of one thread
per core makes every step wait for the busy core, and one thread is faster; the probe then keeps one thread for
this process and says so in ``Speed.threads``.

Example::

    speed = measure_speed(device="cpu", split=data.train)
    speed.epoch_seconds(1_000_000, train_frames=977_855, dev_frames=146_806)
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from phonetune.data_pipeline.batches import ContextWindows
from phonetune.data_pipeline.split import SplitData, subsample_utterances
from phonetune.model.params import count_params
from phonetune.model.config import ModelConfig, ModelIO
from phonetune.model.device import autocast_context, bf16_pays, resolve_device
from phonetune.model.network import build_model
from phonetune.model.speed import Speed
from phonetune.model.train_config import RunConfig

logger = logging.getLogger(__name__)

SMALL = (ModelConfig(hidden_layers=1, base_width=64, activation="gelu", batchnorm="after"), 20)
LARGE = (ModelConfig(hidden_layers=3, base_width=512, activation="gelu", batchnorm="after"), 25)
BATCH, SMALL_BATCH = 1024, 256
PROBE_FRAMES = 200_000  # enough real frames to gather from without copying a large split
# One thread is kept when it trains the small probe at least this much faster than the default thread count.
ONE_THREAD_GAIN = 1.15


class _StepTimer:
    """Training steps of one model at one batch size, built and warmed up once, timed span by span: so that two
    models' spans can alternate and a change in the machine's speed between them cancels out."""

    def __init__(self, config: ModelConfig, context: int, batch_size: int, device: torch.device,
                 split: SplitData | None) -> None:
        feature_width = split.feature_width if split is not None else 28
        io = ModelIO((2 * context + 1) * feature_width, 40)
        self.device = device
        self.model = build_model(config, io).to(device)
        self.bf16 = bf16_pays(device, count_params(config, io), batch_size)  # as the trainer decides
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=1e-3)
        generator = torch.Generator(device=device).manual_seed(0)
        self.batch_size, self.generator, self.windows, self.batches = batch_size, generator, None, None
        if split is not None:
            self.windows = ContextWindows(split, context, device)
            self.batches = self.windows.train_batches(batch_size, generator, recycle=True)
        else:
            self.fixed_batch = (torch.randn(batch_size, io.input_dim, generator=generator, device=device),
                                torch.randint(0, io.num_classes, (batch_size,), generator=generator, device=device))
        for _ in range(3):  # warm-up: allocator, kernels, caches
            self._step()
        self._synchronize()

    def _synchronize(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def _step(self) -> int:
        if self.windows is not None:
            try:
                inputs, labels = next(self.batches)
            except StopIteration:
                self.batches = self.windows.train_batches(self.batch_size, self.generator, recycle=True)
                inputs, labels = next(self.batches)
        else:
            inputs, labels = self.fixed_batch
        with autocast_context(self.device, self.bf16):
            loss = F.cross_entropy(self.model(inputs), labels)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return labels.shape[0]

    def span(self, seconds: float) -> float:
        """Seconds per training frame over about ``seconds`` of steps (at least 3)."""
        frames, steps, started = 0, 0, time.perf_counter()
        while True:
            frames += self._step()
            steps += 1
            self._synchronize()
            elapsed = time.perf_counter() - started
            if elapsed >= seconds and steps >= 3:
                return elapsed / frames


def _seconds_per_frame(config: ModelConfig, context: int, batch_size: int, device: torch.device,
                       split: SplitData | None, seconds: float, spans: int = 1) -> float:
    """Seconds per training frame, timed over ``spans`` spans of ``seconds / spans`` each after a warm-up; the
    fastest span is kept, since another process can only slow a span down, never speed it up."""
    timer = _StepTimer(config, context, batch_size, device, split)
    return min(timer.span(seconds / spans) for _span in range(spans))


def measure_speed(device: str = "auto", split: SplitData | None = None, seconds: float = 1.0) -> Speed:
    """Time the probes for about ``seconds`` each and fit the speed line (see the module docstring). With ``split``
    (a training split) the steps gather real windows from a slice of it; otherwise random inputs."""
    target = resolve_device(device)
    if split is not None and split.num_frames > PROBE_FRAMES:
        split = subsample_utterances(split, PROBE_FRAMES / split.num_frames, seed=0)
    (small, small_context), (large, large_context) = SMALL, LARGE
    threads = torch.get_num_threads()
    small_time = _seconds_per_frame(small, small_context, BATCH, target, split, seconds)
    if target.type == "cpu" and threads > 1:
        torch.set_num_threads(1)
        alone = _seconds_per_frame(small, small_context, BATCH, target, split, seconds)
        if alone * ONE_THREAD_GAIN < small_time:
            logger.warning("one torch thread trains faster than %d here (another process is using the cores?); "
                           "this process keeps one thread", threads)
            small_time, threads = alone, 1
        else:
            torch.set_num_threads(threads)
    large_time = _seconds_per_frame(large, large_context, BATCH, target, split, seconds)
    small_batch_time = _seconds_per_frame(large, large_context, SMALL_BATCH, target, split, seconds)
    small_params = count_params(small, ModelIO((2 * small_context + 1) * 28, 40))
    large_params = count_params(large, ModelIO((2 * large_context + 1) * 28, 40))
    per_step = max(0.0, (small_batch_time - large_time) / (1 / SMALL_BATCH - 1 / BATCH))
    large_frame = large_time - per_step / BATCH
    small_frame = small_time - per_step / BATCH
    # A noisy probe can invert the two; a model is never cheaper per frame than a smaller one.
    per_param = max((large_frame - small_frame) / (large_params - small_params), large_frame / large_params / 10)
    fixed = max(small_frame - per_param * small_params, 0.0)
    return Speed(fixed=fixed, per_param=per_param, device=str(target), per_step=per_step, threads=threads,
                 reference_step_s=large_time * BATCH)


def measure_run_step_seconds(run_config: RunConfig, split: SplitData, seconds: float = 3.0, spans: int = 3) -> float:
    """Seconds per optimizer step of ``run_config``'s own model and batch size on this machine now (real windows
    from ``split``, AdamW, this process's threads): what the rest of a run that continues will cost per step. The
    fastest of ``spans`` spans: a burst of other work (a worker still exiting, a cron job) must not price a whole
    run; a lasting load is caught by the trainer's own replanning against its deadline."""
    target = resolve_device(run_config.train.device)
    if split.num_frames > PROBE_FRAMES:
        split = subsample_utterances(split, PROBE_FRAMES / split.num_frames, seed=0)
    batch = run_config.train.batch_size
    return batch * _seconds_per_frame(run_config.model, run_config.data.context_frames, batch, target, split, seconds,
                                      spans)


@dataclass(frozen=True)
class RelativeStep:
    """A run's step timed in rounds alternating with the probe's large model (``LARGE`` at ``BATCH``): the run's
    cost relative to the probe's, which a change in the machine's speed between the probe and now cannot move."""

    run_step_s: float  # the fastest of the run's spans, seconds a step
    reference_step_s: float  # the fastest of the reference model's spans, seconds a step
    relative: float  # the median over rounds of run step / reference step, each round's two spans side by side
    reference_params: int
    reference_batch: int

    def priced_step_s(self, speed: Speed) -> float:
        """The run's step at the machine's own speed: its cost relative to the reference, times the faster of the
        reference's two timings (the probe's, kept in ``speed``, and now); another process only ever slows a span
        down. A speed that did not keep the probe's timing gives its line's price for the reference instead (not
        the same figure: the line is fitted through two models and clamped)."""
        return self.relative * min(probed_reference_step_s(speed), self.reference_step_s)


def probed_reference_step_s(speed: Speed) -> float:
    """The probe's timing of its large model's step in ``speed`` (its line's price for it when not recorded)."""
    if speed.reference_step_s > 0:
        return speed.reference_step_s
    large, context = LARGE
    return speed.seconds_per_frame(count_params(large, ModelIO((2 * context + 1) * 28, 40)), BATCH) * BATCH


def measure_relative_step(run_config: RunConfig, split: SplitData, seconds: float = 3.0,
                          rounds: int = 3) -> RelativeStep:
    """``run_config``'s step against the probe's large model's, in ``rounds`` rounds of a span of each (the run's
    spans ``seconds / rounds`` long, the reference's half that). A machine whose speed changed since the probe
    (another process started or stopped) changes both spans of a round alike; a burst inside one round moves that
    round's ratio only, and the median leaves it out."""
    if rounds < 1:
        raise ValueError(f"measure_relative_step needs at least 1 round, but got rounds={rounds}")
    target = resolve_device(run_config.train.device)
    if split.num_frames > PROBE_FRAMES:
        split = subsample_utterances(split, PROBE_FRAMES / split.num_frames, seed=0)
    batch = run_config.train.batch_size
    run = _StepTimer(run_config.model, run_config.data.context_frames, batch, target, split)
    (large, large_context) = LARGE
    reference = _StepTimer(large, large_context, BATCH, target, split)
    run_steps, reference_steps = [], []
    for _round in range(rounds):
        run_steps.append(batch * run.span(seconds / rounds))
        reference_steps.append(BATCH * reference.span(seconds / rounds / 2))
    ratios = sorted(run_step / reference_step for run_step, reference_step in zip(run_steps, reference_steps))
    middle = len(ratios) // 2
    relative = ratios[middle] if len(ratios) % 2 else (ratios[middle - 1] + ratios[middle]) / 2
    reference_params = count_params(large, ModelIO((2 * large_context + 1) * split.feature_width, 40))
    return RelativeStep(run_step_s=min(run_steps), reference_step_s=min(reference_steps), relative=relative,
                        reference_params=reference_params, reference_batch=BATCH)
