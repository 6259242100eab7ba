"""Ensembles of trained checkpoints within the parameter limit: averaged probabilities, greedy selection, submission.

The HW1P2 rule caps the summed parameters of every model used for a submission, so each entry point checks the
members' total against the limit before it predicts anything. Members may differ in context and normalization:
each one windows and normalizes the split as it was trained, and their softmax probabilities are averaged.

Example::

    selection = select_ensemble(dev_probs, dev_labels, param_counts, 20_000_000, max_members=4)
    path, frames = write_ensemble_submission(
        [paths[key] for key in selection.members], "data/demo", "test-clean", "ensemble.csv", 20_000_000
    )
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Hashable, Mapping, Sequence, TypeVar

import numpy as np
import torch

from phonetune.errors import CheckpointError, ParamLimitError
from phonetune.model.params import DEFAULT_PARAM_LIMIT, check_members_fit, check_param_limit
from phonetune.model.device import resolve_device
from phonetune.model.inference import load_checkpoint, load_checkpoint_split, predict_probabilities, write_submission
from phonetune.model.network import PhonemeMLP
from phonetune.model.train_config import RunConfig

logger = logging.getLogger(__name__)

Key = TypeVar("Key", bound=Hashable)


@dataclass(frozen=True)
class EnsembleMember:
    checkpoint: Path
    model: PhonemeMLP
    run_config: RunConfig
    payload: dict[str, Any]  # the checkpoint payload, for the normalization statistics it carries

    @property
    def param_count(self) -> int:
        return int(self.payload["param_count"])


@dataclass(frozen=True)
class EnsembleSelection:
    members: tuple[Any, ...]  # keys in the order they were first added, the best single member first
    param_count: int  # summed over the members (each counted once, however often it was added)
    dev_accuracy: float  # of the members' probabilities averaged with ``weights``
    trail: tuple[float, ...]  # dev accuracy after each addition; trail[-1] == dev_accuracy
    weights: tuple[int, ...]  # times each member was added, aligned with ``members``


def load_members(
    checkpoints: Sequence[str | Path],
    param_limit: int = DEFAULT_PARAM_LIMIT,
    device: str | torch.device | None = None,
) -> list[EnsembleMember]:
    """Load every checkpoint, refuse a set over the limit or inconsistent, then move the models to ``device``.

    Models are loaded on the CPU first so that a set the limit refuses never reaches the accelerator.
    """
    members = []
    for checkpoint in checkpoints:
        model, run_config, payload = load_checkpoint(checkpoint, device="cpu")
        members.append(EnsembleMember(Path(checkpoint), model, run_config, payload))
    check_members_fit(
        [member.param_count for member in members], param_limit, names=[str(m.checkpoint) for m in members]
    )
    first = tuple(members[0].run_config.data.phonemes)
    for member in members[1:]:
        # Averaging probabilities is only meaningful when column i means the same phoneme in every member.
        phonemes = tuple(member.run_config.data.phonemes)
        if phonemes != first:
            index = next(
                (i for i, (ours, theirs) in enumerate(zip(first, phonemes)) if ours != theirs),
                min(len(first), len(phonemes)),
            )
            raise CheckpointError(
                f"ensemble members must share one phoneme list, but checkpoint {member.checkpoint} ({len(phonemes)} "
                f"phonemes) and {members[0].checkpoint} ({len(first)}) differ at class {index}; ensemble only models "
                "trained on the same phoneme list"
            )
    target = resolve_device("auto" if device is None else device, setting="the ensemble's device")
    for member in members:
        member.model.to(target)
    return members


def members_probabilities(
    members: Sequence[EnsembleMember],
    data_root: str | Path,
    split: str,
    *,
    weights: Sequence[float] | None = None,
    progress: bool = False,
) -> np.ndarray:
    """Mean of the members' softmax probabilities over ``data_root/split``, ``(N, num_classes)`` float32, weighted by
    ``weights`` (one per member, e.g. the times a selection with replacement added it; equal when None)."""
    weights = [1.0] * len(members) if weights is None else [float(weight) for weight in weights]
    if len(weights) != len(members) or min(weights, default=1.0) <= 0:
        raise ValueError(f"ensemble weights {weights} do not match {len(members)} members (one positive weight each)")
    total: np.ndarray | None = None
    for member, weight in zip(members, weights, strict=True):
        split_data = load_checkpoint_split(member.run_config, member.payload, data_root, split, progress=progress)
        device = next(member.model.parameters()).device
        probabilities = predict_probabilities(member.model, member.run_config, split_data, device)
        # A running float64 sum holds one array instead of all of them (test-clean is ~2M frames per member).
        if total is None:
            total = weight * probabilities.astype(np.float64)
        else:
            total += weight * probabilities
    assert total is not None
    return (total / sum(weights)).astype(np.float32)


def ensemble_probabilities(
    checkpoints: Sequence[str | Path],
    data_root: str | Path,
    split: str,
    *,
    param_limit: int = DEFAULT_PARAM_LIMIT,
    device: str | torch.device | None = None,
    weights: Sequence[float] | None = None,
    progress: bool = False,
) -> np.ndarray:
    """Averaged (``weights``: weighted) probabilities of ``checkpoints`` over ``data_root/split``; ParamLimitError
    first if they do not fit."""
    return members_probabilities(load_members(checkpoints, param_limit, device), data_root, split, weights=weights,
                                 progress=progress)


def write_ensemble_submission(
    checkpoints: Sequence[str | Path],
    data_root: str | Path,
    split: str,
    out_path: str | Path,
    param_limit: int = DEFAULT_PARAM_LIMIT,
    *,
    device: str | torch.device | None = None,
    progress: bool = False,
) -> tuple[Path, int]:
    """Predict ``data_root/split`` with the averaged ensemble and write the ``id,label`` CSV; returns (path, frames).

    Nothing is predicted or written when the members exceed ``param_limit``.
    """
    members = load_members(checkpoints, param_limit, device)
    probabilities = members_probabilities(members, data_root, split, progress=progress)
    symbols = np.asarray(members[0].run_config.data.phonemes)[probabilities.argmax(axis=1)]
    path = write_submission(out_path, symbols)
    logger.info(
        "wrote %d ensemble predictions (%d members, %d parameters) for %s/%s to %s",
        len(symbols), len(members), sum(member.param_count for member in members), data_root, split, path,
    )
    return path, len(symbols)


# Weights in steps of one addition: a few per member is as fine a weighting as dev can support.
MAX_ADDITIONS_PER_MEMBER = 3


def select_ensemble(
    member_probs: Mapping[Key, np.ndarray],
    labels: np.ndarray,
    param_counts: Mapping[Key, int],
    param_limit: int,
    max_members: int,
) -> EnsembleSelection:
    """Greedy forward selection with replacement (Caruana et al. 2004) by dev accuracy, within ``param_limit``.

    Starts from the best single member that fits, then adds the member that most raises the accuracy of the
    weighted average of probabilities: a new one while the summed parameters fit and fewer than ``max_members`` are
    in, or one already in again (its weight up, no parameters more). Stops when no addition raises it, or after
    ``MAX_ADDITIONS_PER_MEMBER * max_members`` additions. Ties go to the lower key.
    """
    check_param_limit(param_limit)
    if max_members < 1:
        raise ValueError(f"max_members must be at least 1, but got {max_members}")
    if not member_probs:
        raise ParamLimitError("ensemble selection needs at least one candidate member, but got none")
    labels = np.asarray(labels)
    keys = sorted(member_probs)
    for key in keys:
        shape = np.shape(member_probs[key])
        if len(shape) != 2 or shape[0] != len(labels):
            raise ValueError(f"member {key!r} probabilities must be (N={len(labels)}, classes), but are {shape}")
        if key not in param_counts:
            raise ValueError(f"member {key!r} has probabilities but no entry in param_counts")
    fitting = [key for key in keys if param_counts[key] <= param_limit]
    if not fitting:
        smallest = min(keys, key=lambda key: (param_counts[key], key))
        raise ParamLimitError(
            f"an ensemble must have at most {param_limit:,} parameters, but even the smallest candidate "
            f"{smallest!r} has {param_counts[smallest]:,}"
        )

    def correct(total: np.ndarray) -> int:
        return int((total.argmax(axis=1) == labels).sum())

    # Comparing correct-frame counts (integers) keeps ties exact; summed probabilities argmax like averaged ones.
    # max() keeps the first of equal candidates, and ``fitting`` is sorted: ties go to the lower key.
    start = max(fitting, key=lambda key: correct(np.asarray(member_probs[key])))
    weights = {start: 1}  # times each member was added, in the order of their first addition
    total = np.asarray(member_probs[start], dtype=np.float64)
    best = correct(total)
    trail = [best]
    used = param_counts[start]
    for _ in range(MAX_ADDITIONS_PER_MEMBER * max_members - 1):
        choice, choice_correct = None, best
        for key in fitting:
            # A member already in costs no parameters again: adding it once more weights it up.
            if key not in weights and (len(weights) >= max_members or used + param_counts[key] > param_limit):
                continue
            candidate = correct(total + member_probs[key])
            if candidate > choice_correct:
                choice, choice_correct = key, candidate
        if choice is None:
            break
        if choice not in weights:
            used += param_counts[choice]
        weights[choice] = weights.get(choice, 0) + 1
        total = total + member_probs[choice]
        best = choice_correct
        trail.append(best)
    frames = len(labels)
    return EnsembleSelection(tuple(weights), used, best / frames, tuple(count / frames for count in trail),
                             tuple(weights.values()))
