"""The flite demo corpus end to end with the real flite binary: layout, features, labels against flite's timings,
determinism, re-run behaviour, errors, and loading the result through the data pipeline."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from phonetune.data_pipeline import DataConfig, load_split
from phonetune.data_pipeline.demo_corpus import (
    MANIFEST_NAME,
    DemoCorpusConfig,
    build_demo_corpus,
    plan_utterance,
    utterance_rng,
)
from phonetune.data_pipeline.features import frame_count, hz_to_mel, log_mel, mel_to_hz, resample
from phonetune.data_pipeline.flite_synth import (
    FliteMissingError,
    FliteVoiceError,
    UnmappedPhoneError,
    add_noise_and_channel,
    check_voices,
    find_flite,
    hw1p2_symbol,
    run_flite,
)
from phonetune.data_pipeline.phonemes import HW1P2_PHONEMES
from phonetune.data_pipeline.text_source import plain_sentences, stdlib_sentences
from phonetune.errors import ConfigError
from phonetune.cli.main import main

pytestmark = pytest.mark.slow

SMALL = dict(train_utterances=6, dev_utterances=2, test_utterances=2, seed=7)
LABELLED = {"train-clean-100": "train-clean-100/transcript", "dev-clean": "dev-clean/transcript",
            "test-clean": "test-clean-labels/transcript"}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("demo") / "corpus"
    summary = build_demo_corpus(root, DemoCorpusConfig(**SMALL, workers=2), progress=False)
    return root, summary


def corpus_files(root: Path) -> dict[str, bytes]:
    return {str(path.relative_to(root)): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


def utterances(root: Path, split: str) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(stem, features, labels without [SOS]/[EOS]) for every utterance of ``split``."""
    found = []
    for mfcc in sorted((root / split / "mfcc").glob("*.npy")):
        transcript = np.load(root / LABELLED[split] / mfcc.name)
        assert transcript[0] == "[SOS]" and transcript[-1] == "[EOS]"
        found.append((mfcc.stem, np.load(mfcc), transcript[1:-1]))
    return found


def test_layout_shapes_and_labels(corpus):
    root, summary = corpus
    assert not summary["skipped"]
    assert sorted(p.name for p in root.iterdir()) == sorted(
        ["train-clean-100", "dev-clean", "test-clean", "test-clean-labels", MANIFEST_NAME])
    assert not (root / "test-clean" / "transcript").exists()
    assert sorted(p.name for p in (root / "test-clean").iterdir()) == ["mfcc"]
    test_names = sorted(p.name for p in (root / "test-clean" / "mfcc").iterdir())
    assert test_names == sorted(p.name for p in (root / "test-clean-labels" / "transcript").iterdir())
    manifest = json.loads((root / MANIFEST_NAME).read_text())
    for split_number, (split, count) in enumerate((("train-clean-100", 6), ("dev-clean", 2), ("test-clean", 2))):
        found = utterances(root, split)
        assert len(found) == count
        # Sorted file order is generation order: split number, then utterance index.
        assert [stem.split("-")[:2] for stem, _, _ in found] == [
            [f"{split_number:04d}", f"{index:06d}"] for index in range(count)]
        frames = 0
        for stem, features, labels in found:
            assert features.dtype == np.float32 and features.ndim == 2 and features.shape[1] == 28
            assert len(labels) == len(features) > 50
            assert np.isfinite(features).all()
            assert set(labels) <= set(HW1P2_PHONEMES)
            # flite opens and closes every utterance with a pause longer than half a frame.
            assert labels[0] == "[SIL]" and labels[-1] == "[SIL]"
            frames += len(features)
        assert manifest["splits"][split]["frames"] == frames
        assert manifest["splits"][split]["utterances"] == count
        assert sum(manifest["splits"][split]["class_frames"].values()) == frames


def test_labels_follow_flite_timings(corpus):
    """Regenerate an utterance's flite run from its seed and check every frame label against the phone end times."""
    root, summary = corpus
    config = DemoCorpusConfig(**SMALL)
    sentences = stdlib_sentences().sentences
    for index, (stem, features, labels) in enumerate(utterances(root, "train-clean-100")[:3]):
        rng = utterance_rng(config.seed, 0, index)
        plan = plan_utterance(config, sentences, rng)
        assert stem.endswith(f"-{config.voices.index(plan.voice):03d}")
        waveform, segments = run_flite(find_flite(), plan, root.parent / f"check-{index}.wav", "test")
        assert frame_count(len(waveform)) == len(labels)
        ends = [end for _, end in segments]
        for frame, label in enumerate(labels):
            centre = frame * 0.010 + 0.0125
            holder = next((i for i, end in enumerate(ends) if centre < end), len(segments) - 1)
            phone = segments[holder][0]
            assert label == {"pau": "[SIL]", "ax": "AH"}.get(phone, phone.upper()), (stem, frame)
        # The share of [SIL] frames is the share of time flite spends in pauses (within a frame per boundary).
        audio_s = len(waveform) / 16000
        starts = [0.0] + ends[:-1]
        pause_s = sum(min(end, audio_s) - start for (phone, end), start in zip(segments, starts)
                      if phone == "pau" and start < audio_s)
        num_pauses = sum(phone == "pau" for phone, _ in segments)
        assert abs(np.mean(labels == "[SIL]") * len(labels) * 0.01 - pause_s) <= 0.01 * (2 * num_pauses + 2)
        # Pause frames are near-silent in flite's audio, speech frames are not: the labels sit on the right audio.
        clean_energy = np.log(np.exp(log_mel(waveform).astype(np.float64)).sum(axis=1))
        assert np.median(clean_energy[labels == "[SIL]"]) < np.median(clean_energy[labels != "[SIL]"]) - 3.0
        # The stored features are exactly that audio with the plan's noise and channel.
        np.testing.assert_array_equal(features, log_mel(add_noise_and_channel(waveform, plan, rng)))


def test_features_vary_across_voices_and_channels(corpus):
    root, summary = corpus
    found = utterances(root, "train-clean-100") + utterances(root, "dev-clean") + utterances(root, "test-clean")
    voices = {stem.rsplit("-", 1)[1] for stem, _, _ in found}
    assert len(voices) >= 2
    means = np.stack([features.mean(axis=0) for _, features, _ in found])  # (utterances, 28)
    # Gain and channel colouring move each utterance's average spectrum by several nats: CMVN has work to do.
    assert means.std(axis=0).max() > 1.0
    assert (means.max(axis=0) - means.min(axis=0)).mean() > 2.0


def test_same_seed_same_bytes_whatever_the_workers_and_reruns_skip(corpus, tmp_path, capsys):
    root, _ = corpus
    again = tmp_path / "again"
    args = ["demo-data", "--out", str(again), "--train", "6", "--dev", "2", "--test", "2", "--seed", "7"]
    assert main([*args, "--workers", "1"]) == 0
    assert "demo corpus built" in capsys.readouterr().out
    assert corpus_files(again) == corpus_files(root)
    before = {path: path.stat().st_mtime_ns for path in again.rglob("*")}
    assert main(args) == 0
    assert "skipped" in capsys.readouterr().out
    assert {path: path.stat().st_mtime_ns for path in again.rglob("*")} == before


def test_other_seed_other_corpus_and_existing_corpus_protected(corpus, tmp_path):
    root, _ = corpus
    other = tmp_path / "other"
    build_demo_corpus(other, DemoCorpusConfig(**{**SMALL, "seed": 8}, workers=2), progress=False)
    for split in ("train-clean-100", "dev-clean", "test-clean"):
        ours = sorted((root / split / "mfcc").iterdir())
        theirs = sorted((other / split / "mfcc").iterdir())
        assert all(a.read_bytes() != b.read_bytes() for a, b in zip(ours, theirs))
    # A corpus with other parameters is never overwritten silently...
    with pytest.raises(ConfigError, match=r"other parameters.*seed"):
        build_demo_corpus(other, DemoCorpusConfig(**SMALL), progress=False)
    assert json.loads((other / MANIFEST_NAME).read_text())["parameters"]["seed"] == 8
    # ...nor is a folder that is not a corpus.
    stranger = tmp_path / "stranger"
    stranger.mkdir()
    (stranger / "notes.txt").write_text("keep me")
    with pytest.raises(ConfigError, match="no corpus.json"):
        build_demo_corpus(stranger, DemoCorpusConfig(**SMALL), progress=False)
    assert (stranger / "notes.txt").read_text() == "keep me"
    # --force replaces it once the new corpus is complete, leaving no building or retired folders behind.
    build_demo_corpus(other, DemoCorpusConfig(**{**SMALL, "train_utterances": 1, "dev_utterances": 1,
                                                  "test_utterances": 1}), progress=False, force=True)
    assert len(list((other / "train-clean-100" / "mfcc").iterdir())) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other", "stranger"]


def test_loads_through_the_data_pipeline(corpus, tmp_path):
    root, summary = corpus
    config = DataConfig(root=str(root), normalization="none", cache_dir=str(tmp_path / "cache"))
    for split, count in (("train-clean-100", 6), ("dev-clean", 2)):
        data = load_split(config, split, progress=False)
        found = utterances(root, split)
        assert data.utterance_names == [stem for stem, _, _ in found]
        assert data.num_frames == summary["splits"][split]["frames"]
        np.testing.assert_array_equal(data.features, np.concatenate([f for _, f, _ in found]))
        index = {symbol: i for i, symbol in enumerate(HW1P2_PHONEMES)}
        np.testing.assert_array_equal(data.labels, [index[s] for _, _, labels in found for s in labels])
    test = load_split(config, "test-clean", progress=False)
    assert test.labels is None and len(test.utterance_names) == 2


def test_log_mel_puts_a_tone_in_its_band():
    sample_rate = 16000
    edges_hz = mel_to_hz(np.linspace(hz_to_mel(0), hz_to_mel(sample_rate / 2), 28 + 2))
    for tone_hz in (300.0, 1000.0, 4000.0):
        tone = 0.5 * np.sin(2 * np.pi * tone_hz * np.arange(sample_rate) / sample_rate)
        features = log_mel(tone)
        assert features.shape == (1 + (sample_rate - 400) // 160, 28) and features.dtype == np.float32
        nearest_band = int(np.argmin(np.abs(edges_hz[1:-1] - tone_hz)))
        assert set(np.argmax(features, axis=1)) == {nearest_band}
        # Far bands hold only window leakage: many nats below the tone's band.
        assert features[:, nearest_band].mean() - features[:, (nearest_band + 10) % 28].mean() > 8
    silent = log_mel(np.zeros(1000))
    assert silent.shape == (4, 28) and np.isfinite(silent).all()
    assert log_mel(np.zeros(399)).shape == (0, 28)


def test_resample_keeps_a_tone():
    tone = np.sin(2 * np.pi * 440 * np.arange(8000) / 8000)
    upsampled = resample(tone, 8000, 16000)
    assert len(upsampled) == 16000
    expected = np.sin(2 * np.pi * 440 * np.arange(16000) / 16000)
    assert np.abs(upsampled - expected)[100:-100].max() < 1e-6


def test_phone_mapping_and_flite_errors(tmp_path):
    assert hw1p2_symbol("pau") == "[SIL]" and hw1p2_symbol("ax") == "AH" and hw1p2_symbol("zh") == "ZH"
    with pytest.raises(UnmappedPhoneError, match="'axr'.*AXR"):
        hw1p2_symbol("axr")
    with pytest.raises(FliteMissingError, match="apt-get install flite"):
        build_demo_corpus(tmp_path / "x", DemoCorpusConfig(**SMALL, flite_binary=str(tmp_path / "no-flite")))
    # flite itself falls back to another voice for an unknown name, so the check must catch it first.
    with pytest.raises(FliteVoiceError, match="nosuch"):
        check_voices(find_flite(), ["kal16", "nosuch"])
    with pytest.raises(ConfigError, match=r"(?s)train_utterances must be at least 1.*voices must be among"):
        DemoCorpusConfig(train_utterances=0, voices=["kal"]).validate()
    assert not (tmp_path / "x").exists()


def test_text_source_keeps_plain_sentences_only():
    text = """Return the value of x.  Call os.path.join() here, then stop now.
    This sentence is fine, and has commas.  Too short.  It has 3 numbers in it here."""
    assert plain_sentences(text, 5, 20) == ["Return the value of x.", "This sentence is fine, and has commas."]
    source = stdlib_sentences()
    assert len(source.sentences) > 1000 and list(source.sentences) == sorted(set(source.sentences))
    assert source.fingerprint == stdlib_sentences().fingerprint
