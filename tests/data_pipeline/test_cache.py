"""The split cache: reused while files are unchanged, rebuilt when any changes, corruption detected and repaired;
builds of one folder take turns, and the temporary files of a killed build are removed by the next one."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading

import numpy as np
import pytest
from corpus import DEV, TRAIN
from shared import readline_within

from phonetune.data_pipeline import DataConfig, load_split, resolve_cache_dir
from phonetune.data_pipeline.cache import BUILD_LOCK
from phonetune.data_pipeline.load import split_cache


def cache_files(config: DataConfig, split: str) -> dict[str, os.stat_result]:
    folder = next(resolve_cache_dir(config).glob(f"{split}-*"))
    return {path.name: path.stat() for path in folder.iterdir()}


def builds(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("building the")]


def test_second_load_memory_maps_the_cache_without_rebuilding(tiny_corpus, caplog):
    config = DataConfig(root=str(tiny_corpus.root))
    caplog.set_level(logging.INFO, logger="phonetune.data_pipeline")
    first = load_split(config, TRAIN, progress=False)
    before = cache_files(config, TRAIN)
    second = load_split(config, TRAIN, progress=False)
    assert len(builds(caplog)) == 1
    assert isinstance(second.features, np.memmap)
    assert cache_files(config, TRAIN) == before
    np.testing.assert_array_equal(first.features, second.features)
    assert (tiny_corpus.root / ".phonetune-cache").is_dir()


def test_changed_file_triggers_rebuild_with_new_contents(tiny_corpus, caplog):
    config = DataConfig(root=str(tiny_corpus.root), normalization="none")
    caplog.set_level(logging.INFO, logger="phonetune.data_pipeline")
    load_split(config, DEV, progress=False)
    path = tiny_corpus.root / DEV / "mfcc" / f"{tiny_corpus.names[DEV][1]}.npy"
    features = np.load(path)
    features[0, 0] = 1234.5
    np.save(path, features)
    reloaded = load_split(config, DEV, progress=False)
    assert len(builds(caplog)) == 2
    start = tiny_corpus.frames[DEV][0]
    assert reloaded.features[start, 0] == np.float32(1234.5)
    # Only the current generation of array files is kept.
    assert sum(name.endswith("features.npy") for name in cache_files(config, DEV)) == 1
    # A touch alone (same bytes, new mtime) also counts as a change.
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    load_split(config, DEV, progress=False)
    assert len(builds(caplog)) == 3


def test_normalization_and_dtype_get_separate_caches(tiny_corpus, caplog):
    caplog.set_level(logging.INFO, logger="phonetune.data_pipeline")
    root = str(tiny_corpus.root)
    for _ in range(2):
        for config in (DataConfig(root=root), DataConfig(root=root, normalization="none"),
                       DataConfig(root=root, storage_dtype="float16")):
            load_split(config, DEV, progress=False)
    assert len(builds(caplog)) == 3


def test_corrupted_cache_file_is_detected_and_rebuilt(tiny_corpus, caplog):
    config = DataConfig(root=str(tiny_corpus.root))
    good = np.array(load_split(config, TRAIN, progress=False).features)
    folder = next(resolve_cache_dir(config).glob(f"{TRAIN}-*"))
    features_file = next(folder.glob("*.features.npy"))
    raw = bytearray(features_file.read_bytes())
    raw[-100] ^= 0xFF  # one flipped byte inside the data, the size unchanged
    features_file.write_bytes(bytes(raw))
    caplog.set_level(logging.INFO, logger="phonetune.data_pipeline")
    caplog.clear()  # only the records of the load below (an earlier CLI test may have left the root at INFO)
    repaired = load_split(config, TRAIN, progress=False)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("is corrupted" in message and str(features_file) in message for message in warnings)
    assert len(builds(caplog)) == 1
    np.testing.assert_array_equal(repaired.features, good)


@pytest.mark.parametrize("damage", ["delete_labels", "garble_meta"])
def test_missing_cache_file_or_bad_metadata_is_rebuilt(tiny_corpus, caplog, damage):
    config = DataConfig(root=str(tiny_corpus.root))
    good = np.array(load_split(config, TRAIN, progress=False).labels)
    folder = next(resolve_cache_dir(config).glob(f"{TRAIN}-*"))
    if damage == "delete_labels":
        next(folder.glob("*.labels.npy")).unlink()
    else:
        (folder / "meta.json").write_text("{not json")
    caplog.set_level(logging.INFO, logger="phonetune.data_pipeline")
    repaired = load_split(config, TRAIN, progress=False)
    assert len(builds(caplog)) == 1
    assert any(r.levelno == logging.WARNING for r in caplog.records)
    np.testing.assert_array_equal(repaired.labels, good)


def test_explicit_cache_dir_and_fallback_when_root_cache_cannot_be_made(tiny_corpus, tmp_path, monkeypatch):
    explicit = DataConfig(root=str(tiny_corpus.root), cache_dir=str(tmp_path / "elsewhere"))
    load_split(explicit, DEV, progress=False)
    assert list((tmp_path / "elsewhere").glob(f"{DEV}-*/meta.json"))
    # A file where the cache folder would go stands in for a read-only data root.
    (tiny_corpus.root / ".phonetune-cache").write_text("occupied")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "user-cache"))
    config = DataConfig(root=str(tiny_corpus.root))
    assert resolve_cache_dir(config).parent == tmp_path / "user-cache" / "phonetune"
    data = load_split(config, DEV, progress=False)
    assert data.num_frames == tiny_corpus.total_frames(DEV)
    assert list((tmp_path / "user-cache" / "phonetune").glob(f"*/{DEV}-*/meta.json"))


KILLED_BUILD = """
import os, signal, sys
from phonetune.data_pipeline import DataConfig
from phonetune.data_pipeline.load import split_cache
from phonetune.data_pipeline.reader import LabelLookup, list_split, read_utterance, scan_headers

config = DataConfig(root=sys.argv[1], normalization="none")
split = sys.argv[2]
files = list_split(config.root, split)
cache = split_cache(config, split)
lengths = scan_headers(files, config.feature_width)
lookup = LabelLookup(config.phonemes)

def read(index):
    if index == len(lengths) // 2:  # half-way through the streaming pass: killed, as by the OOM killer
        os.kill(os.getpid(), signal.SIGKILL)
    return read_utterance(files, index, config.feature_width, lookup)

cache.build(cache.key(files), files, lengths, read, feature_width=config.feature_width,
            storage_dtype=config.storage_dtype, progress=False)
"""


def test_temporary_files_of_a_killed_build_are_removed_by_the_next_build(tiny_corpus, caplog):
    config = DataConfig(root=str(tiny_corpus.root), normalization="none")
    killed = subprocess.run([sys.executable, "-c", KILLED_BUILD, config.root, TRAIN], capture_output=True, text=True,
                            timeout=120)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    folder = next(resolve_cache_dir(config).glob(f"{TRAIN}-*"))
    leftovers = sorted(path.name for path in folder.glob(".*.tmp"))
    assert len(leftovers) == 2, leftovers  # the features and labels arrays being filled
    assert not (folder / "meta.json").exists()

    caplog.set_level(logging.INFO, logger="phonetune.data_pipeline")
    split = load_split(config, TRAIN, progress=False)
    assert len(builds(caplog)) == 1
    assert list(folder.glob("*.tmp")) == []
    assert sum("did not finish" in record.getMessage() for record in caplog.records) == 2
    assert split.features.shape[0] == tiny_corpus.total_frames(TRAIN)
    assert load_split(config, TRAIN, progress=False).features.shape == split.features.shape  # and it is reused
    assert len(builds(caplog)) == 1


def test_a_build_waits_for_a_live_build_and_keeps_its_temporary_file(tiny_corpus):
    config = DataConfig(root=str(tiny_corpus.root), normalization="none")
    folder = split_cache(config, DEV).directory
    folder.mkdir(parents=True)
    live_tmp = folder / ".abc.features.npy.live.tmp"
    # Another process in the middle of a build: it holds the folder's build lock and has a temporary file open, until
    # the test tells it to let go (no sleeps to race against on a loaded machine).
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(folder / BUILD_LOCK), str(live_tmp)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    built = threading.Event()
    failures: list[BaseException] = []

    def build() -> None:
        try:
            load_split(config, DEV, progress=False)
        except BaseException as exc:  # noqa: BLE001 - reported by the test below
            failures.append(exc)
        finally:
            built.set()

    try:
        assert readline_within(holder.stdout, 60, "the process holding the build lock").strip() == "locked"
        builder = threading.Thread(target=build, name="build", daemon=True)
        builder.start()
        assert not built.wait(1.0), f"the build did not wait for the live build's lock ({failures})"
        holder.stdin.write("release\n")
        holder.stdin.flush()
        assert holder.wait(timeout=30) == 0  # the live build's file was still there when it let go
        assert built.wait(60) and not failures, failures
        assert (folder / "meta.json").is_file()
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()


HOLD_LOCK = """
import fcntl, sys
from pathlib import Path
lock, tmp = sys.argv[1], Path(sys.argv[2])
with open(lock, "a+b") as handle:
    fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
    tmp.write_bytes(b"partial")
    print("locked", flush=True)
    sys.stdin.readline()  # held until the test says release
    ok = tmp.exists()
    tmp.unlink()  # a real build would rename it into place
sys.exit(0 if ok else 1)
"""
