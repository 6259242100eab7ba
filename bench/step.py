"""A training step of a dropout configuration: phonetune's CPU path against the same step with ``nn.Dropout`` and a per-tensor
weight average, in one run on this machine.

Both sides train the same model (the expert warm start's shape, resized: 3 GELU + batch-norm layers, dropout 0.15,
context 25) on the same windows with AdamW and a weight average after every step, under the same precision (bf16
autocast where ``model.device.bf16_pays`` says it pays, as the trainer decides). The baseline is that step as
torch's stock modules write it: ``nn.Dropout`` (one Bernoulli draw per unit) and the average updated tensor by
tensor; ours is ``model.dropout.Dropout`` (16 random bits per unit, four units per generator call) and one
multi-tensor lerp (``model.ema.ModelEMA``). The two alternate in blocks, each reports its median block. The last
line is ``ratio: X``: baseline seconds per step over ours (above 1: ours is faster).

Run::

    .venv/bin/python bench/step.py                          # the resized expert warm start, batch 1024
    .venv/bin/python bench/step.py --base-width 1024 --blocks 7
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

from phonetune.model import ModelConfig, count_params
from phonetune.model.config import ModelIO
from phonetune.model.device import autocast_context, bf16_pays, resolve_device
from phonetune.model.dropout import Dropout
from phonetune.model.ema import ModelEMA
from phonetune.model.network import build_model


class _LoopEMA:
    """The weight average as a Python loop of per-tensor lerps (the baseline's)."""

    def __init__(self, model: nn.Module) -> None:
        self.module = copy.deepcopy(model)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        for averaged, current in zip(self.module.parameters(), model.parameters()):
            averaged.lerp_(current.detach(), 0.01)
        for averaged, current in zip(self.module.buffers(), model.buffers()):
            if averaged.dtype.is_floating_point:
                averaged.lerp_(current, 0.01)
            else:
                averaged.copy_(current)


def _stock(model: nn.Module) -> nn.Module:
    """``model`` with every phonetune Dropout swapped for ``nn.Dropout`` of the same rate."""
    for index, module in enumerate(model.layers):
        if isinstance(module, Dropout):
            model.layers[index] = nn.Dropout(module.p)
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-width", type=int, default=752, help="hidden width (752: the expert at about 2.2M)")
    parser.add_argument("--context-frames", type=int, default=25)
    parser.add_argument("--dropout", type=float, default=0.15)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=15, help="steps per timed block")
    parser.add_argument("--blocks", type=int, default=5, help="timed blocks per side, alternating")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()

    device = resolve_device(args.device)
    config = ModelConfig(hidden_layers=3, base_width=args.base_width, activation="gelu", batchnorm="after",
                         dropout=args.dropout, init="kaiming_normal")
    io = ModelIO((2 * args.context_frames + 1) * 28, 40)
    params = count_params(config, io)
    bf16 = bf16_pays(device, params, args.batch_size)
    generator = torch.Generator(device=device).manual_seed(0)
    inputs = torch.randn(args.batch_size, io.input_dim, generator=generator, device=device)
    labels = torch.randint(0, io.num_classes, (args.batch_size,), generator=generator, device=device)

    sides = {}
    for name in ("baseline", "ours"):
        torch.manual_seed(0)
        model = build_model(config, io).to(device)
        if name == "baseline":
            model = _stock(model)
        average = _LoopEMA(model) if name == "baseline" else ModelEMA(model, 0.99)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-2)
        sides[name] = (model, average, optimizer)

    def block(name: str) -> float:
        model, average, optimizer = sides[name]
        started = time.perf_counter()
        for _ in range(args.steps):
            with autocast_context(device, bf16):
                loss = F.cross_entropy(model(inputs), labels, label_smoothing=0.05)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            average.update(model)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return (time.perf_counter() - started) / args.steps

    for name in sides:  # warm-up: allocator, kernels
        block(name)
    times = {name: [] for name in sides}
    for _ in range(args.blocks):
        for name in sides:
            times[name].append(block(name))
    baseline, ours = statistics.median(times["baseline"]), statistics.median(times["ours"])
    print(f"model: {params:,} params, dropout {args.dropout}, batch {args.batch_size}, {device}, "
          f"{'bf16' if bf16 else 'float32'}, {torch.get_num_threads()} threads")
    print(f"baseline (nn.Dropout, per-tensor average): {1000 * baseline:.1f} ms a step")
    print(f"ours (model.dropout.Dropout, one multi-tensor average): {1000 * ours:.1f} ms a step")
    print(f"ratio: {baseline / ours:.3f}")


if __name__ == "__main__":
    main()
