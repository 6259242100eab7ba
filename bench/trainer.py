"""Trainer overhead: frames/s of a full ``Trainer`` epoch versus a bare forward/backward/step loop, in one run.

Both sides train the same model config with the same optimizer and batch size. The trainer side is the real thing
(seeded shuffle, ContextWindows gathering, device-side metrics, progress bar, per-epoch checkpoint excluded from
its frames/s); the bare side loops over batches gathered before timing starts, so it measures only the math. The two
alternate (a bare block of one epoch's step count after every trainer epoch) and each reports its median. Also
reports achieved GFLOP/s (6 x params x frames/s: forward 2, backward 4 flops per weight per frame) against a plain
square matmul measured in the same run. The last line is ``ratio: X`` (trainer frames/s over bare frames/s).

Run::

    .venv/bin/python bench/trainer.py                         # CPU-sized defaults
    .venv/bin/python bench/trainer.py --frames 4000000 --batch-size 8192 --hidden-layers 4 --base-width 2048
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import numpy as np
import torch
import torch.nn.functional as F

from phonetune.data_pipeline import DataConfig, SplitData, TrainingData
from phonetune.data_pipeline.batches import ContextWindows
from phonetune.model import ModelConfig, RunConfig, TrainConfig, count_params
from phonetune.model.device import autocast_context, bf16_is_native, bf16_pays, resolve_device
from phonetune.model.network import build_model
from phonetune.model.optim import build_optimizer
from phonetune.model.trainer import Trainer


def synthetic_split(name: str, frames: int, utterance_frames: int, seed: int) -> SplitData:
    """Random features and labels in the SplitData layout (content does not matter for throughput)."""
    rng = np.random.default_rng(seed)
    utterances = max(1, frames // utterance_frames)
    offsets = np.linspace(0, frames, utterances + 1).astype(np.int64)
    features = rng.standard_normal((frames, 28), dtype=np.float32)
    labels = rng.integers(0, 40, frames).astype(np.int16)
    return SplitData(name, features, labels, offsets, [f"u{i:06d}" for i in range(utterances)])


class BareLoop:
    """Forward, loss, backward, step over batches gathered once up front; nothing else."""

    def __init__(self, run_config: RunConfig, windows: ContextWindows, device: torch.device) -> None:
        train = run_config.train
        torch.manual_seed(train.seed)
        self.device = device
        self.batch_size = train.batch_size
        self.model = build_model(run_config.model, run_config.io).to(device)
        self.optimizer = build_optimizer(self.model, train, device)
        self.use_bf16 = train.bf16 and bf16_pays(
            device, count_params(run_config.model, run_config.io), train.batch_size)
        generator = torch.Generator(device=device).manual_seed(train.seed)
        self.batches = []
        for x, y in windows.train_batches(train.batch_size, generator):
            if x.shape[0] == train.batch_size:
                self.batches.append((x, y))
            if len(self.batches) == 16:
                break
        for x, y in self.batches[:3]:  # warm-up: allocator, kernels, optimizer state
            self.step(x, y)

    def step(self, x: torch.Tensor, y: torch.Tensor) -> None:
        with autocast_context(self.device, self.use_bf16):
            loss = F.cross_entropy(self.model(x), y)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()

    def frames_per_s(self, steps: int) -> float:
        synchronize(self.device)
        started = time.perf_counter()
        for index in range(steps):
            self.step(*self.batches[index % len(self.batches)])
        synchronize(self.device)
        return steps * self.batch_size / (time.perf_counter() - started)


def matmul_gflops(device: torch.device, size: int, repeats: int) -> float:
    dtype = torch.bfloat16 if bf16_is_native(device) else torch.float32
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    a @ b
    synchronize(device)
    started = time.perf_counter()
    for _ in range(repeats):
        a @ b
    synchronize(device)
    return 2 * size**3 * repeats / (time.perf_counter() - started) / 1e9


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=200_000, help="training frames per epoch")
    parser.add_argument("--batch-size", type=int, default=2048)
    parser.add_argument("--context", type=int, default=15)
    parser.add_argument("--hidden-layers", type=int, default=3)
    parser.add_argument("--base-width", type=int, default=512)
    parser.add_argument("--epochs", type=int, default=5, help="trainer epochs, each followed by a bare block")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--matmul-size", type=int, default=0, help="square matmul size (0: 1024 CPU, 8192 CUDA)")
    args = parser.parse_args()

    device = resolve_device(args.device)
    data = DataConfig(root="(synthetic)", context_frames=args.context)
    model = ModelConfig(hidden_layers=args.hidden_layers, base_width=args.base_width, activation="gelu",
                        batchnorm="after", dropout=0.1)
    train = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, optimizer="adamw", device=str(device),
                        compile=args.compile)
    run_config = RunConfig(data, model, train)
    params = count_params(run_config.model, run_config.io)
    train_split = synthetic_split("train", args.frames, 400, seed=0)
    dev_split = synthetic_split("dev", max(args.batch_size, args.frames // 50), 400, seed=1)
    print(f"device: {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu'}), "
          f"torch threads {torch.get_num_threads()}")
    print(f"model: {params:,} parameters, context {args.context}, batch {args.batch_size}, {args.frames:,} frames")

    # Trainer epochs and bare blocks of the same step count alternate, and each side reports its median: a shared
    # machine's speed drifts over a minute, and timing one side after the other would book that drift as overhead.
    bare_rates: list[float] = []
    with tempfile.TemporaryDirectory() as out_dir:
        trainer = Trainer(run_config, out_dir, data=TrainingData(train_split, dev_split, None, 1.0, 0), progress=True,
                          curves=False, epoch_callback=lambda _metrics: bare_rates.append(bare.frames_per_s(steps)))
        trainer.setup()
        try:
            steps = trainer.train_windows.num_batches(args.batch_size)
            bare = BareLoop(run_config, trainer.train_windows, device)
            history = trainer.train().history
        finally:
            trainer.cleanup()
    trainer_rate = statistics.median(metrics.frames_per_s for metrics in history)
    bare_rate = statistics.median(bare_rates)
    matmul = matmul_gflops(device, args.matmul_size or (8192 if device.type == "cuda" else 1024),
                           repeats=20 if device.type == "cuda" else 5)
    print(f"trainer epochs frames/s: {', '.join(f'{m.frames_per_s:,.0f}' for m in history)}")
    print(f"bare blocks frames/s:    {', '.join(f'{rate:,.0f}' for rate in bare_rates)}")
    print(f"trainer frames/s (median epoch): {trainer_rate:,.0f}")
    print(f"bare loop frames/s (median block): {bare_rate:,.0f}")
    print(f"achieved GFLOP/s (6 x params x frames/s): trainer {6 * params * trainer_rate / 1e9:,.1f}, "
          f"bare {6 * params * bare_rate / 1e9:,.1f}")
    print(f"plain matmul GFLOP/s: {matmul:,.1f} ({'bf16' if bf16_is_native(device) else 'float32'}); "
          f"trainer reaches {6 * params * trainer_rate / 1e9 / matmul:.1%} of it")
    print(f"ratio: {trainer_rate / bare_rate:.3f}")


if __name__ == "__main__":
    main()
