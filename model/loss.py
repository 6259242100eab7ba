"""The loss a run trains on and the figures it reports on dev.

Training: cross-entropy with ``label_smoothing``, and with ``rdrop_alpha > 0`` R-Drop (a second pass draws other
dropout masks; both passes' losses plus alpha times their symmetric KL, which pulls the two sub-networks' predictions
together and regularises like an ensemble of them). Dev: unsmoothed cross-entropy and accuracy over every frame, in
eval mode, read from the device once.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from phonetune.data_pipeline.batches import ContextWindows
from phonetune.model.device import autocast_context
from phonetune.model.train_config import TrainConfig


def training_loss(step_model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor,
                  config: TrainConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """The loss to step on for batch ``(x, y)`` and the first pass's logits (batch, num_classes); call under the
    run's autocast context."""
    logits = step_model(x)
    loss = F.cross_entropy(logits, y, label_smoothing=config.label_smoothing)
    if config.rdrop_alpha > 0:
        second = step_model(x)
        loss = 0.5 * (loss + F.cross_entropy(second, y, label_smoothing=config.label_smoothing))
        log_p, log_q = F.log_softmax(logits.float(), dim=1), F.log_softmax(second.float(), dim=1)
        symmetric_kl = 0.5 * (
            F.kl_div(log_p, log_q, log_target=True, reduction="batchmean")
            + F.kl_div(log_q, log_p, log_target=True, reduction="batchmean")
        )
        loss = loss + config.rdrop_alpha * symmetric_kl
    return loss, logits


@torch.inference_mode()
def evaluate(
    model: torch.nn.Module, windows: ContextWindows, batch_size: int, device: torch.device, bf16: bool
) -> tuple[float, float]:
    """Mean unsmoothed cross-entropy and accuracy over every frame of ``windows`` (eval mode)."""
    was_training = model.training
    model.eval()
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    for x, y in windows.eval_batches(batch_size, recycle=True):
        with autocast_context(device, bf16):
            logits = model(x)  # (batch, num_classes)
        loss_sum += F.cross_entropy(logits.float(), y, reduction="sum")
        correct += (logits.argmax(dim=1) == y).sum()
    model.train(was_training)
    frames = windows.num_frames
    return float(loss_sum.item()) / frames, int(correct.item()) / frames
