"""``ContextWindows``: batches of ``(2K+1)``-frame windows gathered on the device by index arithmetic.

The split is copied once into one device tensor in which every utterance is surrounded by ``K`` zero frames, so a
window never reaches into a neighbouring utterance and edge frames see zeros (the normalized mean) as context.
Global frame ``i`` of utterance ``u`` sits at padded row ``centers[i] = i + K * (2u + 1)``, so its window is padded
rows ``centers[i] - K .. centers[i] + K``. Seen through an overlapping strided view (row ``s`` = the ``2K+1`` frames
starting at padded row ``s``, flattened), a batch is one index-select of rows ``centers[idx] - K``. No Python code
runs per frame or per utterance while iterating.

Example::

    windows = ContextWindows(split, context_frames=20, device="cpu")
    generator = torch.Generator().manual_seed(epoch_seed)
    for x, y in windows.train_batches(4096, generator):   # x: (4096, 41*28) float32, y: (4096,) int64
        ...
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
import torch

from phonetune.data_pipeline.config import MAX_CONTEXT_FRAMES, AugmentConfig
from phonetune.data_pipeline.split import SplitData
from phonetune.errors import ConfigError, DataError

# Frames copied to the device per step while building the padded tensor: bounds host memory for float16 -> float32.
_UPLOAD_CHUNK_FRAMES = 1 << 20


class ContextWindows:
    """One split resident on ``device`` as a zero-padded frame tensor, served as flattened context windows."""

    def __init__(self, split: SplitData, context_frames: int, device: str | torch.device = "cpu") -> None:
        if not 0 <= context_frames <= MAX_CONTEXT_FRAMES:
            raise ConfigError(
                f"context_frames must be between 0 and {MAX_CONTEXT_FRAMES}, but got context_frames={context_frames}"
            )
        self.split_name = split.name
        self.context_frames = context_frames
        self.device = torch.device(device)
        self.feature_width = split.feature_width
        self.window_frames = 2 * context_frames + 1
        self.num_frames = split.num_frames
        self.num_utterances = split.num_utterances
        if self.num_frames == 0:
            raise DataError(f"split {split.name!r} must hold at least one frame to build windows, but it has none")

        lengths = torch.as_tensor(split.lengths, dtype=torch.int64, device=self.device)
        utterance_of_frame = torch.repeat_interleave(torch.arange(self.num_utterances, device=self.device), lengths)
        # (N,) padded row of each frame: K zeros before every utterance and K after each previous one.
        self.centers = torch.arange(self.num_frames, device=self.device) + context_frames * (2 * utterance_of_frame + 1)
        padded_rows = self.num_frames + 2 * context_frames * self.num_utterances
        # float16 storage stays float16 on the device (half the memory); batches are cast to float32 after gathering.
        storage = torch.float16 if split.features.dtype == np.float16 else torch.float32
        self.padded = torch.zeros((padded_rows, self.feature_width), dtype=storage, device=self.device)
        for start in range(0, self.num_frames, _UPLOAD_CHUNK_FRAMES):
            stop = min(start + _UPLOAD_CHUNK_FRAMES, self.num_frames)
            # A copy: cache memory maps are read-only, and torch.from_numpy wants a writable array.
            chunk = np.array(split.features[start:stop])
            self.padded[self.centers[start:stop]] = torch.from_numpy(chunk).to(self.device, storage)
        self.labels = None
        if split.labels is not None:
            self.labels = torch.from_numpy(np.asarray(split.labels, dtype=np.int64)).to(self.device)
        # Row s of this overlapping view is padded[s : s + 2K + 1] flattened: a window is one contiguous block of
        # memory, so a batch is B block copies rather than B * (2K+1) copies of one frame.
        window_starts = padded_rows - self.window_frames + 1
        self._windows = self.padded.as_strided((window_starts, self.input_dim), (self.feature_width, 1))

    @property
    def input_dim(self) -> int:
        """Width of a flattened window: ``(2K+1) * F``."""
        return self.window_frames * self.feature_width

    def num_batches(self, batch_size: int) -> int:
        """Batches per pass at ``batch_size`` (a trailing single frame joins the previous batch)."""
        return len(_batch_bounds(self.num_frames, batch_size))

    def gather(self, frame_indices: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """Windows centred on the given global frame indices: ``(B, (2K+1)*F)`` float32 on the device.

        ``out`` (float32 storage only): a ``(B, (2K+1)*F)`` float32 tensor to gather into instead of a new one.
        """
        starts = self.centers[frame_indices] - self.context_frames  # (B,) padded row of each window's first frame
        if out is not None and self.padded.dtype == torch.float32:
            return torch.index_select(self._windows, 0, starts, out=out)
        return self._windows.index_select(0, starts).to(torch.float32)  # (B, (2K+1)*F)

    def train_batches(
        self,
        batch_size: int,
        generator: torch.Generator,
        augment: AugmentConfig | None = None,
        *,
        recycle: bool = False,
        start_batch: int = 0,
        resume_state: torch.Tensor | None = None,
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """One shuffled epoch of ``(x, y)``; the order (and the masks) depend only on ``generator``'s state.

        ``generator`` must live on this object's device (``torch.Generator(device=windows.device)``). Seeding it
        per epoch makes a resumed run repeat the same order. ``augment`` applies time and frequency masks.

        ``start_batch`` with ``resume_state`` (the generator's ``get_state()`` saved after batch ``start_batch - 1``)
        continues an epoch in its middle: the same order is drawn, then the generator is put back where it was, so
        the rest of the epoch (masks included) is what it would have been without the interruption.

        ``recycle=True`` (a training loop that is done with a batch once it asks for the next but one): on CPU, ``x``
        is gathered into two buffers used in turn, so batch ``n`` is overwritten when batch ``n + 2`` is produced.
        A fresh 28 MB batch per step costs the CPU a page fault per 4 KiB, which is a quarter of the gather's time;
        on CUDA the caching allocator already reuses memory, so the flag changes nothing there.
        """
        if self.labels is None:
            raise DataError(f"split {self.split_name!r} has no transcripts, so it cannot be used for training")
        order = torch.randperm(self.num_frames, generator=generator, device=self.device)
        if start_batch:
            if resume_state is None:
                raise ValueError("train_batches needs the generator state saved at start_batch to continue an epoch")
            generator.set_state(resume_state)
        masking = augment is not None and augment.enabled
        bounds = _batch_bounds(self.num_frames, batch_size)
        buffers = self._recycled_buffers(bounds) if recycle else []
        for step, (start, stop) in enumerate(bounds):
            if step < start_batch:
                continue
            frame_indices = order[start:stop]
            out = buffers[step % 2][: stop - start] if buffers else None
            x = self.gather(frame_indices, out)
            if masking:
                x = self._mask(x, augment, generator)
            yield x, self.labels[frame_indices]

    def eval_batches(
        self, batch_size: int, *, recycle: bool = False
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
        """All windows in file order, unmasked; ``y`` is None for a split without transcripts.

        ``recycle``: as for ``train_batches`` (batch ``n`` is overwritten by batch ``n + 2`` on CPU).
        """
        bounds = _batch_bounds(self.num_frames, batch_size)
        buffers = self._recycled_buffers(bounds) if recycle else []
        for step, (start, stop) in enumerate(bounds):
            frame_indices = torch.arange(start, stop, device=self.device)
            y = None if self.labels is None else self.labels[start:stop]
            yield self.gather(frame_indices, buffers[step % 2][: stop - start] if buffers else None), y

    def _recycled_buffers(self, bounds: list[tuple[int, int]]) -> list[torch.Tensor]:
        """Two float32 batch buffers for a recycling iterator on CPU; none where gathering cannot use them."""
        if self.device.type != "cpu" or self.padded.dtype != torch.float32:
            return []
        largest = max(stop - start for start, stop in bounds)
        return [torch.empty((largest, self.input_dim), dtype=torch.float32) for _ in range(2)]

    def _mask(self, x: torch.Tensor, augment: AugmentConfig, generator: torch.Generator) -> torch.Tensor:
        """Zero one random run of frames and/or one random band of channels per window, each with its probability."""
        batch = x.shape[0]
        frames = x.view(batch, self.window_frames, self.feature_width)
        if augment.time_mask_prob > 0 and augment.time_mask_max_frames > 0:
            hit = self._random_spans(batch, self.window_frames, augment.time_mask_prob,
                                     augment.time_mask_max_frames, generator)  # (B, 2K+1)
            frames.masked_fill_(hit[:, :, None], 0.0)
        if augment.freq_mask_prob > 0 and augment.freq_mask_max_bands > 0:
            hit = self._random_spans(batch, self.feature_width, augment.freq_mask_prob,
                                     augment.freq_mask_max_bands, generator)  # (B, F)
            frames.masked_fill_(hit[:, None, :], 0.0)
        return x

    def _random_spans(
        self, batch: int, length: int, prob: float, max_width: int, generator: torch.Generator
    ) -> torch.Tensor:
        """``(batch, length)`` bool: per row, with chance ``prob``, one contiguous span of width 1..max_width."""
        max_width = min(max_width, length)
        uniform = torch.rand((batch, 3), generator=generator, device=self.device)
        applies = uniform[:, 0] < prob
        widths = 1 + (uniform[:, 1] * max_width).long().clamp_(max=max_width - 1)
        starts = (uniform[:, 2] * (length - widths + 1)).long().clamp_(max=length - 1)
        positions = torch.arange(length, device=self.device)
        inside = (positions >= starts[:, None]) & (positions < (starts + widths)[:, None])
        return inside & applies[:, None]


def _batch_bounds(num_frames: int, batch_size: int) -> list[tuple[int, int]]:
    """``[start, stop)`` of each batch; a trailing batch of one frame is merged into the previous one because
    BatchNorm cannot normalize a single sample in training mode."""
    if batch_size < 1:
        raise ConfigError(f"batch_size must be at least 1, but got {batch_size}")
    bounds = [(start, min(start + batch_size, num_frames)) for start in range(0, num_frames, batch_size)]
    if len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] == 1:
        bounds[-2:] = [(bounds[-2][0], num_frames)]
    return bounds
