"""Training-batch throughput and split load time: phonetune's data path against starter-notebook baselines.

1. Batches: frames/s of ``ContextWindows.train_batches`` (one device tensor, vectorized gathering) against a
   starter-notebook loader (a ``Dataset`` whose ``__getitem__`` slices one window from the concatenated, padded
   array, batched by a ``DataLoader`` with shuffle and the default 0 workers), at context 30 and batch 4096. The
   baseline is timed over a bounded number of batches; ours over a whole epoch. The two alternate 5 times and the
   ratio is of their medians.
2. Loading the train split: from the cache (listing + fingerprint + CRC check + memory map, then reading every
   frame into memory so the data was really touched) against reading, validating, normalizing and concatenating
   every .npy file.

Data: ``--data ROOT`` (default ``data/demo`` when it exists), else a synthetic HW1P2-layout corpus of about 1M
frames written to a temporary folder. Run: ``.venv/bin/python bench/loader.py [--data ROOT]``.
The last line is ``ratio: X``, the batch-iterator speed-up.

Our iterator runs as the trainer runs it (``recycle=True``: gathered into two reused buffers). On CPU it is bound by
writing the batch itself: a (4096, 61*28) float32 batch is 28 MB, and a plain memcpy of that many bytes takes half
to two thirds of the time of one ``train_batches`` step, so the speed-up over the starter loader is capped by how cheap
that loader's per-window Python work is on the machine at hand.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT / "tests"))

from phonetune.data_pipeline import DataConfig, load_split  # noqa: E402
from phonetune.data_pipeline.batches import ContextWindows  # noqa: E402
from phonetune.data_pipeline.normalize import normalize  # noqa: E402
from phonetune.data_pipeline.reader import LabelLookup, list_split, read_utterance, scan_headers  # noqa: E402

CONTEXT_FRAMES = 30
BATCH_SIZE = 4096
LOAD_REPEATS = 3
BATCH_REPEATS = 5
BASELINE_BATCHES = 15  # the per-window loader is slow; this many batches give a stable rate


class StarterNotebookDataset(torch.utils.data.Dataset):
    """One window per ``__getitem__``, sliced from the whole split concatenated and padded at both ends."""

    def __init__(self, features: np.ndarray, labels: np.ndarray, context_frames: int) -> None:
        self.context_frames = context_frames
        self.padded = np.pad(features, ((context_frames, context_frames), (0, 0)))
        self.labels = labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        window = self.padded[index : index + 2 * self.context_frames + 1].flatten()
        return torch.FloatTensor(window), torch.tensor(self.labels[index])


def synthetic_root(folder: Path) -> Path:
    from corpus import write_tiny_corpus

    print(f"no --data and no data/demo: writing a synthetic corpus of ~1M frames to {folder}", flush=True)
    write_tiny_corpus(folder, n_train=2000, n_dev=0, n_test=0, min_frames=300, max_frames=700, seed=0)
    return folder


def time_ours(windows: ContextWindows) -> float:
    generator = torch.Generator(device=windows.device).manual_seed(0)
    next(windows.train_batches(BATCH_SIZE, generator, recycle=True))  # warm-up (allocator, first gather)
    generator.manual_seed(0)
    frames = 0
    start = time.perf_counter()
    for x, y in windows.train_batches(BATCH_SIZE, generator, recycle=True):
        frames += len(y)
    if windows.device.type == "cuda":
        torch.cuda.synchronize()
    return frames / (time.perf_counter() - start)


def time_starter(features: np.ndarray, labels: np.ndarray) -> float:
    dataset = StarterNotebookDataset(features, labels, CONTEXT_FRAMES)
    loader = torch.utils.data.DataLoader(dataset, batch_size=BATCH_SIZE, shuffle=True)
    batches = iter(loader)
    next(batches)  # warm-up
    frames = 0
    start = time.perf_counter()
    for _ in range(BASELINE_BATCHES):
        batch = next(batches, None)
        if batch is None:  # a small split: start another pass, as training would
            batches = iter(loader)
            batch = next(batches)
        frames += len(batch[1])
    return frames / (time.perf_counter() - start)


def load_from_files(config: DataConfig, split: str) -> np.ndarray:
    """What a pipeline without a cache does on every start: read, check, normalize and concatenate every file."""
    files = list_split(config.root, split)
    lengths = scan_headers(files, config.feature_width)
    lookup = LabelLookup(config.phonemes)
    features, labels = [], []
    for index in range(len(lengths)):
        utterance, utterance_labels = read_utterance(files, index, config.feature_width, lookup)
        features.append(normalize(utterance, config.normalization, None))
        labels.append(utterance_labels)
    return np.concatenate(features)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="data root (default data/demo if present, else a synthetic corpus)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        demo = REPO_ROOT / "data" / "demo"
        root = Path(args.data) if args.data else demo if demo.is_dir() else synthetic_root(Path(scratch) / "data")
        config = DataConfig(root=str(root))
        split_name = config.train_split

        build_start = time.perf_counter()
        train = load_split(config, split_name, progress=False)
        print(f"data: {root} [{split_name}], {train.num_frames:,} frames, {train.num_utterances:,} utterances; "
              f"cache ready in {time.perf_counter() - build_start:.2f} s; device {args.device}; "
              f"torch threads {torch.get_num_threads()}")

        windows = ContextWindows(train, CONTEXT_FRAMES, args.device)
        # Alternate the two and compare medians: this machine's speed drifts between runs of a few seconds each.
        features, labels = np.asarray(train.features), np.asarray(train.labels, dtype=np.int64)
        ours_runs, starter_runs = [], []
        for _ in range(BATCH_REPEATS):
            ours_runs.append(time_ours(windows))
            starter_runs.append(time_starter(features, labels))
        ours, starter = statistics.median(ours_runs), statistics.median(starter_runs)
        batch_ratio = ours / starter
        print(f"batches at context {CONTEXT_FRAMES}, batch {BATCH_SIZE}:")
        print(f"  ContextWindows.train_batches (full epoch, median of {BATCH_REPEATS}):  {ours:14,.0f} frames/s  "
              f"({', '.join(f'{rate:,.0f}' for rate in ours_runs)})")
        print(f"  starter Dataset + DataLoader ({BASELINE_BATCHES} batches, median of {BATCH_REPEATS}): {starter:14,.0f} frames/s  "
              f"({', '.join(f'{rate:,.0f}' for rate in starter_runs)})")
        print(f"  speed-up: {batch_ratio:.1f}x")

        # Best of LOAD_REPEATS for both sides: one slow run (a page-cache hiccup, a busy neighbour) is not the code.
        files_s, mapped_s, cached_s = float("inf"), float("inf"), float("inf")
        for _ in range(LOAD_REPEATS):
            start = time.perf_counter()
            from_files = load_from_files(config, split_name)
            files_s = min(files_s, time.perf_counter() - start)
            start = time.perf_counter()
            cached = load_split(config, split_name, progress=False)
            mapped_s = min(mapped_s, time.perf_counter() - start)
            in_memory = np.array(cached.features)
            cached_s = min(cached_s, time.perf_counter() - start)
        assert in_memory.shape == from_files.shape
        np.testing.assert_allclose(in_memory, from_files, rtol=1e-6, atol=1e-6)
        print(f"loading {split_name} ({from_files.nbytes / 1e6:,.0f} MB float32):")
        print(f"  from the .npy files (read, validate, normalize, concatenate): {files_s:8.3f} s")
        print(f"  from the cache (verify checksums, memory-map):                {mapped_s:8.3f} s")
        print(f"  from the cache, then every frame read into memory:            {cached_s:8.3f} s")
        print(f"  speed-up, files / cache memory-mapped:      {files_s / mapped_s:.1f}x")
        print(f"  speed-up, files / cache read into memory:   {files_s / cached_s:.1f}x")
        print(f"ratio: {batch_ratio:.1f}")


if __name__ == "__main__":
    main()
