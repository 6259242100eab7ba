"""The flite demo corpus: a small synthetic HW1P2 data root, so the whole job runs without the Kaggle download.

``build_demo_corpus(out_dir, config)`` writes::

    out_dir/train-clean-100/{mfcc,transcript}/0000-000000-002.npy ...
    out_dir/dev-clean/{mfcc,transcript}/0001-000000-001.npy ...
    out_dir/test-clean/mfcc/0002-000000-000.npy ...           (features only, like the real test split)
    out_dir/test-clean-labels/transcript/0002-000000-000.npy  (kept apart, to score a submission)
    out_dir/corpus.json                                      (parameters, counts, frames per class)

File names are ``<split number>-<utterance index>-<voice number>``, so sorted order is generation order. mfcc arrays
are (T, 28) float32 log mel energies, transcripts are ``['[SOS]', *T labels, '[EOS]']``.

Each utterance draws its text, voice, rate, pitch, noise and channel from its own seed, derived from the corpus
seed, the split and the utterance index, so the output is byte-identical for a given seed whatever the number of
workers. It also depends on the text source (the Python minor release, see ``text_source``) and the flite build;
both are recorded in ``corpus.json``. The corpus is built in a hidden sibling folder and renamed into place when
complete, so a folder holding ``corpus.json`` is always a finished corpus.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from phonetune.atomic import atomic_write, atomic_write_json
from phonetune.configs import raise_problems
from phonetune.data_pipeline.flite_synth import (
    VOICE_BASE_F0,
    UtterancePlan,
    check_voices,
    find_flite,
    flite_version,
    synthesize_utterance,
)
from phonetune.data_pipeline.phonemes import EOS, HW1P2_PHONEMES, SOS
from phonetune.data_pipeline.text_source import stdlib_sentences
from phonetune.errors import ConfigError

logger = logging.getLogger(__name__)

# Bump when a change to the generator changes its output for the same parameters.
GENERATOR_VERSION = 1
MANIFEST_NAME = "corpus.json"
TEST_LABELS_DIR = "test-clean-labels"
_SYMBOL_INDEX = {symbol: index for index, symbol in enumerate(HW1P2_PHONEMES)}


@dataclass(frozen=True)
class _Split:
    name: str  # folder under the corpus root
    number: int  # first field of its file names and part of every utterance seed
    count_field: str  # DemoCorpusConfig field holding its size
    transcript_dir: str  # where its labels go, relative to the root


SPLITS = (
    _Split("train-clean-100", 0, "train_utterances", "train-clean-100/transcript"),
    _Split("dev-clean", 1, "dev_utterances", "dev-clean/transcript"),
    _Split("test-clean", 2, "test_utterances", f"{TEST_LABELS_DIR}/transcript"),
)


@dataclass
class DemoCorpusConfig:
    """Size, seed and the ranges every utterance draws its voice, rate, pitch, noise and channel from."""

    train_utterances: int = 2000  # train-clean-100 utterances, about 500 frames (5 s) each
    dev_utterances: int = 300  # dev-clean utterances (validation accuracy)
    test_utterances: int = 300  # test-clean utterances (mfcc only; labels in test-clean-labels/)
    seed: int = 11785  # corpus seed; every utterance's own seed derives from it, its split and its index
    voices: list[str] = field(default_factory=lambda: ["kal16", "slt", "rms", "awb"])  # flite voices, drawn uniformly
    max_sentences_per_utterance: int = 2  # an utterance joins 1..this sentences (fewer more often); sets the length
    duration_stretch_range: tuple[float, float] = (0.8, 1.2)  # flite duration_stretch; > 1 speaks slower
    pitch_factor_range: tuple[float, float] = (0.85, 1.2)  # times the voice's base F0 (ignored by rms)
    snr_db_range: tuple[float, float] = (10.0, 40.0)  # white noise level relative to speech power
    channel_tilt_range: tuple[float, float] = (-0.6, 0.9)  # first-order tilt: > 0 thins the lows, < 0 dulls highs
    channel_ripple_taps: int = 4  # extra random FIR taps colouring the spectrum (0 = tilt only)
    gain_db_range: tuple[float, float] = (-20.0, 6.0)  # overall level, which shifts every log-mel band alike
    workers: int = 0  # parallel flite runs; 0 = one per CPU; never changes the output
    flite_binary: str = "flite"  # flite executable, looked up on PATH

    def problems(self) -> list[str]:
        found = []
        for name in ("train_utterances", "dev_utterances", "test_utterances"):
            if getattr(self, name) < 1:
                found.append(f"{name} must be at least 1, but got {name}={getattr(self, name)}")
        if not self.voices:
            found.append("voices must name at least one flite voice, but got an empty list")
        unknown = [voice for voice in self.voices if voice not in VOICE_BASE_F0]
        if unknown:
            found.append(f"voices must be among {sorted(VOICE_BASE_F0)}, but got {unknown}")
        if self.max_sentences_per_utterance < 1:
            found.append(f"max_sentences_per_utterance must be at least 1, but got {self.max_sentences_per_utterance}")
        for name in ("duration_stretch_range", "pitch_factor_range", "snr_db_range", "channel_tilt_range",
                     "gain_db_range"):
            low, high = getattr(self, name)
            if low > high:
                found.append(f"{name} must be (low, high) with low <= high, but got {(low, high)}")
        for name in ("duration_stretch_range", "pitch_factor_range"):
            if getattr(self, name)[0] <= 0:
                found.append(f"{name} must be positive, but got {getattr(self, name)}")
        if not (-0.95 <= self.channel_tilt_range[0] and self.channel_tilt_range[1] <= 0.95):
            found.append(f"channel_tilt_range must lie within [-0.95, 0.95], but got {self.channel_tilt_range}")
        if self.channel_ripple_taps < 0:
            found.append(f"channel_ripple_taps must be 0 or more, but got {self.channel_ripple_taps}")
        if self.workers < 0:
            found.append(f"workers must be 0 (one per CPU) or more, but got {self.workers}")
        return found

    def validate(self) -> None:
        raise_problems(self.problems(), "invalid demo corpus config")

    def generation_parameters(self) -> dict[str, Any]:
        """The fields that decide the corpus content (not how fast or with which binary it is built)."""
        values = dataclasses.asdict(self)
        for name in ("workers", "flite_binary"):
            values.pop(name)
        return json.loads(json.dumps(values))  # tuples -> lists, as they read back from corpus.json


def utterance_rng(seed: int, split_number: int, index: int) -> np.random.Generator:
    """The generator of one utterance: independent of every other utterance and of the order of generation."""
    return np.random.default_rng(np.random.SeedSequence(entropy=seed, spawn_key=(split_number, index)))


def plan_utterance(config: DemoCorpusConfig, sentences: tuple[str, ...], rng: np.random.Generator) -> UtterancePlan:
    """Draw one utterance's text and conditions; 1 sentence is likelier than 2, 2 than 3 (weights 1, 1/2, 1/3...)."""
    counts = np.arange(1, config.max_sentences_per_utterance + 1)
    weights = 1.0 / counts
    num_sentences = int(rng.choice(counts, p=weights / weights.sum()))
    text = " ".join(sentences[i] for i in rng.integers(0, len(sentences), size=num_sentences))
    voice = config.voices[int(rng.integers(0, len(config.voices)))]
    pitch_factor = rng.uniform(*config.pitch_factor_range)
    base_f0 = VOICE_BASE_F0[voice]
    tilt = rng.uniform(*config.channel_tilt_range)
    # Ripple taps shrink with delay so the channel stays a gentle colouring rather than an echo.
    ripple = rng.normal(0.0, 0.3, size=config.channel_ripple_taps) / np.arange(1, config.channel_ripple_taps + 1)
    fir = np.convolve([1.0, -tilt], np.concatenate([[1.0], ripple]))
    fir /= np.sqrt(np.sum(fir**2))
    return UtterancePlan(
        text=text,
        voice=voice,
        duration_stretch=round(float(rng.uniform(*config.duration_stretch_range)), 4),
        f0_mean_hz=None if base_f0 is None else round(float(base_f0 * pitch_factor), 2),
        snr_db=float(rng.uniform(*config.snr_db_range)),
        channel_fir=tuple(float(tap) for tap in fir),
        gain_db=float(rng.uniform(*config.gain_db_range)),
    )


@dataclass(frozen=True)
class _Task:
    split: _Split
    index: int


def _save_npy(path: Path, array: np.ndarray) -> None:
    atomic_write(path, lambda handle: np.save(handle, array, allow_pickle=False))


def _make_utterance(task: _Task, config: DemoCorpusConfig, binary: str, sentences: tuple[str, ...], root: Path,
                    scratch: Path) -> dict[str, Any]:
    """Synthesize and write one utterance; return its frame count, frames per class and audio length."""
    rng = utterance_rng(config.seed, task.split.number, task.index)
    plan = plan_utterance(config, sentences, rng)
    stem = f"{task.split.number:04d}-{task.index:06d}-{config.voices.index(plan.voice):03d}"
    where = f"{task.split.name} utterance {task.index} (voice {plan.voice}, text {plan.text[:60]!r})"
    utterance = synthesize_utterance(binary, plan, rng, scratch / f"{stem}.wav", where)
    _save_npy(root / task.split.name / "mfcc" / f"{stem}.npy", utterance.features)
    _save_npy(root / task.split.transcript_dir / f"{stem}.npy", np.array([SOS, *utterance.labels, EOS]))
    class_frames = np.bincount([_SYMBOL_INDEX[s] for s in utterance.labels], minlength=len(HW1P2_PHONEMES))
    return {"frames": len(utterance.labels), "class_frames": class_frames, "audio_seconds": utterance.audio_seconds}


def _generate(root: Path, config: DemoCorpusConfig, binary: str, sentences: tuple[str, ...],
              progress: bool) -> dict[str, Any]:
    """Write every split under ``root``; return per-split statistics in split order."""
    tasks = [_Task(split, index) for split in SPLITS for index in range(getattr(config, split.count_field))]
    workers = config.workers or os.cpu_count() or 1
    results: dict[_Task, dict[str, Any]] = {}
    # Threads suffice: the work is in flite subprocesses, and numpy releases the GIL for the feature maths.
    with tempfile.TemporaryDirectory(prefix="phonetune-flite-") as scratch, \
            concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool, \
            tqdm(total=len(tasks), desc="demo corpus", unit="utt", disable=not progress) as bar:
        futures = {pool.submit(_make_utterance, task, config, binary, sentences, root, Path(scratch)): task
                   for task in tasks}
        try:
            for future in concurrent.futures.as_completed(futures):
                results[futures[future]] = future.result()
                bar.update(1)
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    splits = {}
    for split in SPLITS:
        mine = [results[task] for task in tasks if task.split == split]
        class_frames = np.sum([r["class_frames"] for r in mine], axis=0)
        splits[split.name] = {
            "utterances": len(mine),
            "frames": int(sum(r["frames"] for r in mine)),
            "audio_seconds": round(float(sum(r["audio_seconds"] for r in mine)), 3),
            "labels_in": split.transcript_dir,
            "class_frames": {symbol: int(n) for symbol, n in zip(HW1P2_PHONEMES, class_frames)},
        }
    return splits


def _read_manifest(out_dir: Path) -> dict[str, Any] | None:
    path = out_dir / MANIFEST_NAME
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path} must be a demo corpus manifest (JSON), but it cannot be read: {exc}") from exc


def _replace_dir(built: Path, out_dir: Path) -> None:
    """Move the finished corpus onto ``out_dir``; an old corpus there is removed only after the new one is in place."""
    if not out_dir.exists():
        os.rename(built, out_dir)
        return
    retired = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old-", dir=out_dir.parent))
    os.rename(out_dir, retired / out_dir.name)
    os.rename(built, out_dir)
    shutil.rmtree(retired)


def build_demo_corpus(out_dir: str | Path, config: DemoCorpusConfig | None = None, *, progress: bool = True,
                      force: bool = False) -> dict[str, Any]:
    """Build the demo corpus under ``out_dir`` and return its summary (the manifest plus ``out_dir``, ``skipped``,
    ``build_seconds``).

    When ``out_dir`` already holds a corpus built with the same parameters, nothing is generated (``skipped`` is
    True). A different corpus, or a non-empty folder that is not a corpus, raises ``ConfigError`` unless ``force``,
    in which case it is replaced once the new corpus is complete.
    """
    config = config or DemoCorpusConfig()
    config.validate()
    out_dir = Path(out_dir)
    started = time.perf_counter()
    binary = find_flite(config.flite_binary)
    check_voices(binary, config.voices)
    source = stdlib_sentences()
    parameters = {
        "generator_version": GENERATOR_VERSION,
        **config.generation_parameters(),
        "flite_version": flite_version(binary),
        "text_source": f"Python {source.python_version} standard library docstrings",
        "text_sentences": len(source.sentences),
        "text_fingerprint": source.fingerprint,
    }
    existing = _read_manifest(out_dir)
    if existing is not None and existing.get("parameters") == parameters:
        logger.info("%s already holds a demo corpus with these parameters; nothing to do", out_dir)
        return {**existing, "out_dir": str(out_dir), "skipped": True, "build_seconds": 0.0}
    if not force and out_dir.exists() and any(out_dir.iterdir()):
        if existing is None:
            raise ConfigError(f"{out_dir} must be empty or hold a demo corpus, but it holds other files and no "
                              f"{MANIFEST_NAME}; choose another --out or pass --force to replace it")
        changed = sorted(key for key in parameters.keys() | existing.get("parameters", {}).keys()
                         if parameters.get(key) != existing.get("parameters", {}).get(key))
        raise ConfigError(f"{out_dir} holds a demo corpus built with other parameters (differing: {changed}); "
                          "choose another --out or pass --force to replace it")

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.building-", dir=out_dir.parent))
    building.chmod(0o755)  # mkdtemp makes it private; the finished corpus should read like any data folder
    try:
        logger.info("building the demo corpus in %s (%d sentences from %s)", building, len(source.sentences),
                    source.origin)
        splits = _generate(building, config, binary, source.sentences, progress)
        manifest = {"generator": "phonetune demo-data", "parameters": parameters, "splits": splits,
                    "phonemes": list(HW1P2_PHONEMES)}
        atomic_write_json(building / MANIFEST_NAME, manifest)
        _replace_dir(building, out_dir)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    return {**manifest, "out_dir": str(out_dir), "skipped": False,
            "build_seconds": round(time.perf_counter() - started, 2)}


def format_summary(summary: dict[str, Any]) -> str:
    """Human-readable lines for a ``build_demo_corpus`` summary: per split sizes, then the class balance of train."""
    parameters = summary["parameters"]
    if summary["skipped"]:
        head = f"{summary['out_dir']}: demo corpus already built with these parameters (seed {parameters['seed']}); skipped"
    else:
        head = f"{summary['out_dir']}: demo corpus built in {summary['build_seconds']:.1f} s (seed {parameters['seed']})"
    lines = [head, f"  voices {', '.join(parameters['voices'])}; text: {parameters['text_source']} "
                   f"({parameters['text_sentences']} sentences, fingerprint {parameters['text_fingerprint']})"]
    for name, split in summary["splits"].items():
        lines.append(f"  {name:<16} {split['utterances']:>6} utterances {split['frames']:>9} frames "
                     f"{split['audio_seconds'] / 60:>7.1f} min  labels in {split['labels_in']}/")
    train = summary["splits"][SPLITS[0].name]["class_frames"]
    total = sum(train.values()) or 1
    ranked = sorted(train.items(), key=lambda item: -item[1])
    shares = ", ".join(f"{symbol} {100 * n / total:.1f}%" for symbol, n in ranked[:5])
    rarest = ", ".join(f"{symbol} {n}" for symbol, n in ranked[-3:])
    absent = [symbol for symbol, n in ranked if n == 0]
    lines.append(f"  train classes: most frequent {shares}; rarest (frames) {rarest}")
    if absent:
        lines.append(f"  train classes without any frame: {' '.join(absent)}")
    return "\n".join(lines)
