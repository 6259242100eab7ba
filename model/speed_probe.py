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

import torch
import torch.nn.functional as F

from phonetune.data_pipeline.batches import ContextWindows
from phonetune.data_pipeline.split import SplitData, subsample_utterances
from phonetune.model.budget import count_params
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


def _seconds_per_frame(config: ModelConfig, context: int, batch_size: int, device: torch.device,
                       split: SplitData | None, seconds: float, spans: int = 1) -> float:
    """Seconds per training frame, timed over ``spans`` spans of ``seconds / spans`` each after a warm-up; the
    fastest span is kept, since another process can only slow a span down, never speed it up."""
    feature_width = split.feature_width if split is not None else 28
    io = ModelIO((2 * context + 1) * feature_width, 40)
    model = build_model(config, io).to(device)
    bf16 = bf16_pays(device, count_params(config, io), batch_size)  # as the trainer decides
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    generator = torch.Generator(device=device).manual_seed(0)
    if split is not None:
        windows = ContextWindows(split, context, device)
        batches = windows.train_batches(batch_size, generator, recycle=True)
        labels_of = None
    else:
        x = torch.randn(batch_size, io.input_dim, generator=generator, device=device)
        labels_of = torch.randint(0, io.num_classes, (batch_size,), generator=generator, device=device)

    def step() -> int:
        nonlocal batches
        if labels_of is None:
            try:
                inputs, labels = next(batches)
            except StopIteration:
                batches = windows.train_batches(batch_size, generator, recycle=True)
                inputs, labels = next(batches)
        else:
            inputs, labels = x, labels_of
        with autocast_context(device, bf16):
            loss = F.cross_entropy(model(inputs), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return labels.shape[0]

    for _ in range(3):  # warm-up: allocator, kernels, caches
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    fastest = float("inf")
    for _span in range(spans):
        frames, steps, started = 0, 0, time.perf_counter()
        while True:
            frames += step()
            steps += 1
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            elapsed = time.perf_counter() - started
            if elapsed >= seconds / spans and steps >= 3:
                fastest = min(fastest, elapsed / frames)
                break
    return fastest


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
    return Speed(fixed=fixed, per_param=per_param, device=str(target), per_step=per_step, threads=threads)


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
