"""The split cache: every utterance of a split in one contiguous .npy array, built once and memory-mapped after.

A split's cache lives in ``<cache_dir>/<split>-<settings hash>/`` (settings: normalization and its statistics,
storage dtype, feature width, phoneme inventory) as ``<fingerprint>.features.npy`` ``(N, F)``,
``<fingerprint>.labels.npy`` ``(N,)`` int16, ``<fingerprint>.offsets.npy`` ``(U+1,)`` int64 and
``<fingerprint>.names.json``, where the fingerprint also covers every file's name, size and mtime. ``meta.json``
is written last and names the fingerprint and each file's size and CRC-32, so it is the commit point: a build that
dies half-way leaves the previous cache in force, a changed data file changes the fingerprint (rebuild), and a
cache file that was altered on disk fails its checksum (warning, rebuild).

Builds of one cache folder take turns under an ``fcntl`` lock on ``.build.lock`` in it; the build holding it first
deletes the temporary files (``.<name>.<random>.tmp``) that a killed build left behind.

The build makes one streaming pass: sizes come from the .npy headers, the output arrays are memory-mapped temporary
files filled one utterance at a time, then renamed into place, so memory stays near one utterance plus the page
cache the kernel may reclaim.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import mmap
import os
import zlib
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
from tqdm import tqdm

from phonetune.atomic import atomic_path, atomic_write_json
from phonetune.data_pipeline.config import DataConfig
from phonetune.data_pipeline.reader import SplitFiles
from phonetune.data_pipeline.split import SplitData
from phonetune.errors import DataError

logger = logging.getLogger(__name__)

# Bump when the on-disk layout changes so old caches are rebuilt rather than misread.
CACHE_FORMAT = 1

# Held (flock) by the process building a cache folder; see SplitCache._build_turn.
BUILD_LOCK = ".build.lock"

UtteranceReader = Callable[[int], "tuple[np.ndarray, np.ndarray | None]"]


def resolve_cache_dir(config: DataConfig) -> Path:
    """``config.cache_dir``; else ``ROOT/.phonetune-cache``; else, if ROOT is read-only, a per-root user cache."""
    if config.cache_dir:
        directory = Path(config.cache_dir).expanduser()
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DataError(f"cache_dir must be a writable folder, but {directory} cannot be created: {exc}") from exc
        return directory
    root = Path(config.root)
    beside_data = root / ".phonetune-cache"
    try:
        beside_data.mkdir(exist_ok=True)
        if os.access(beside_data, os.W_OK):
            return beside_data
    except OSError:
        pass
    user_cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    root_hash = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:16]
    directory = user_cache / "phonetune" / root_hash
    directory.mkdir(parents=True, exist_ok=True)
    logger.info("data root %s is not writable; caching in %s", root, directory)
    return directory


def _hash_json(payload: object) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def files_fingerprint(files: SplitFiles) -> str:
    """sha256 over every file's name, size and mtime (features and transcripts)."""
    listing = {
        "features": [[s.name, s.size, s.mtime_ns] for s in files.features],
        "transcripts": None if files.transcripts is None else [[s.name, s.size, s.mtime_ns] for s in files.transcripts],
    }
    return _hash_json(listing)


def file_checksum(path: Path) -> int:
    """CRC-32 of the whole file, computed over a read-only memory map (fast enough to verify a multi-GB cache on
    every load: no copy into a read buffer, and zlib walks the mapped pages in place)."""
    with open(path, "rb") as handle:
        if os.fstat(handle.fileno()).st_size == 0:
            return 0  # mmap refuses empty files; CRC-32 of no bytes is 0
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            return zlib.crc32(mapped)


def _reserve_blocks(path: Path) -> None:
    """Allocate every block of the sparse file ``open_memmap`` made, before anything is written through the map.

    On a full disk a store into a memory-mapped hole cannot fail like a ``write()``: the kernel kills the process with
    SIGBUS (no message, the temporary files left behind). ``posix_fallocate`` fails with ENOSPC instead, an OSError
    that ``build`` reports as a DataError naming the cache folder.
    """
    with open(path, "r+b") as handle:
        os.posix_fallocate(handle.fileno(), 0, os.fstat(handle.fileno()).st_size)


class SplitCache:
    """The cache folder of one split under one set of settings."""

    def __init__(self, cache_dir: Path, split: str, settings: dict) -> None:
        self.split = split
        self.settings = settings
        self.directory = Path(cache_dir) / f"{split}-{_hash_json(settings)[:12]}"
        self.meta_path = self.directory / "meta.json"

    def key(self, files: SplitFiles) -> str:
        """The fingerprint that a valid cache of ``files`` under these settings must carry."""
        return _hash_json({"format": CACHE_FORMAT, "settings": self.settings, "files": files_fingerprint(files)})

    def _path(self, fingerprint: str, part: str) -> Path:
        return self.directory / f"{fingerprint[:20]}.{part}"

    def load(self, fingerprint: str) -> SplitData | None:
        """The cached split memory-mapped, or None when absent, stale or corrupted (the latter logs a warning)."""
        try:
            meta = json.loads(self.meta_path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            logger.warning("cache metadata %s is unreadable (%s); rebuilding the %s cache", self.meta_path, exc, self.split)
            return None
        if meta.get("fingerprint") != fingerprint or meta.get("format") != CACHE_FORMAT:
            logger.info("data files of %s changed since %s was built; rebuilding", self.split, self.directory)
            return None
        for part, expected in meta["files"].items():
            path = self.directory / expected["name"]
            try:
                size, checksum = path.stat().st_size, file_checksum(path)
            except OSError as exc:
                logger.warning("cache file %s is missing (%s); rebuilding the %s cache", path, exc, self.split)
                return None
            if size != expected["size"] or checksum != expected["crc32"]:
                logger.warning(
                    "cache file %s is corrupted (size %d, crc32 %08x; expected size %d, crc32 %08x); rebuilding the %s cache",
                    path, size, checksum, expected["size"], expected["crc32"], self.split,
                )
                return None
        try:
            features = np.load(self._path(fingerprint, "features.npy"), mmap_mode="r")
            labels = np.load(self._path(fingerprint, "labels.npy"), mmap_mode="r") if meta["has_labels"] else None
            offsets = np.load(self._path(fingerprint, "offsets.npy"))
            names = json.loads(self._path(fingerprint, "names.json").read_text())
        except (OSError, ValueError) as exc:
            logger.warning("cache of %s in %s is unreadable (%s); rebuilding", self.split, self.directory, exc)
            return None
        return SplitData(self.split, features, labels, offsets, names)

    def build(
        self,
        fingerprint: str,
        files: SplitFiles,
        lengths: np.ndarray,
        read: UtteranceReader,
        *,
        feature_width: int,
        storage_dtype: str,
        progress: bool = True,
    ) -> SplitData:
        """Stream every utterance from ``read(index)`` into the cache files, then commit them with ``meta.json``.

        A failed write (full disk, quota, file size limit) raises DataError naming the cache folder; the previous
        cache, if any, stays in force because ``meta.json`` is written last.
        """
        try:
            with self._build_turn() as (exclusive, waited):
                if waited:  # the build this one waited for may have made exactly this cache
                    ready = self.load(fingerprint)
                    if ready is not None:
                        return ready
                if exclusive:
                    self._remove_leftovers()
                return self._build(
                    fingerprint, files, lengths, read, feature_width=feature_width, storage_dtype=storage_dtype,
                    progress=progress,
                )
        except OSError as exc:
            raise DataError(
                f"the {self.split} cache could not be written in {self.directory} ({type(exc).__name__}: {exc}); "
                "free disk space or set [data] cache_dir to a folder with room, then run again"
            ) from exc

    @contextlib.contextmanager
    def _build_turn(self) -> Iterator[tuple[bool, bool]]:
        """Hold the folder's build lock: yields (exclusive, waited).

        Why a lock decides which temporary files are leftovers, rather than their age or a process id in their
        name: a live build can leave its temporary file untouched for a long time (a slow or stalled read of the
        data), so no age is safe, and a process id means nothing when several hosts share the cache folder over NFS
        or once the id is reused. The kernel releases an flock when its holder dies, however it dies (SIGKILL, the
        OOM killer), so while this process holds the lock no other build of the folder is alive and every
        temporary file in it belongs to a build that will never finish. Where the file system has no locks,
        exclusive is False and leftovers are left alone.
        """
        self.directory.mkdir(parents=True, exist_ok=True)
        with open(self.directory / BUILD_LOCK, "a+b") as handle:
            exclusive, waited = True, False
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                logger.info("another process is building the %s cache in %s; waiting for it", self.split, self.directory)
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
                waited = True
            except OSError as exc:  # ENOLCK, EOPNOTSUPP: build without the lock, as before it existed
                logger.debug("no build lock in %s (%s); leftover temporary files are kept", self.directory, exc)
                exclusive = False
            try:
                yield exclusive, waited
            finally:
                if exclusive:
                    fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def _remove_leftovers(self) -> None:
        """Delete the temporary files of builds that died before renaming them into place (build lock held)."""
        for path in sorted(self.directory.glob(".*.tmp")):
            try:
                size = path.stat().st_size
                path.unlink()
            except FileNotFoundError:
                continue
            logger.info("removed %s (%d bytes), left by a %s cache build that did not finish", path, size, self.split)

    def _build(
        self,
        fingerprint: str,
        files: SplitFiles,
        lengths: np.ndarray,
        read: UtteranceReader,
        *,
        feature_width: int,
        storage_dtype: str,
        progress: bool,
    ) -> SplitData:
        self.directory.mkdir(parents=True, exist_ok=True)
        offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        num_frames = int(offsets[-1])
        checksums: dict[str, dict] = {}

        def record(part: str, tmp: Path) -> None:
            final = self._path(fingerprint, part)
            checksums[part] = {"name": final.name, "size": tmp.stat().st_size, "crc32": file_checksum(tmp)}

        features_target = self._path(fingerprint, "features.npy")
        labels_target = self._path(fingerprint, "labels.npy")
        with contextlib.ExitStack() as commits:
            features_tmp = commits.enter_context(atomic_path(features_target))
            labels_tmp = commits.enter_context(atomic_path(labels_target)) if files.has_labels else None
            features_out = np.lib.format.open_memmap(
                features_tmp, mode="w+", dtype=np.dtype(storage_dtype), shape=(num_frames, feature_width)
            )
            _reserve_blocks(features_tmp)
            labels_out = None
            if labels_tmp is not None:
                labels_out = np.lib.format.open_memmap(labels_tmp, mode="w+", dtype=np.int16, shape=(num_frames,))
                _reserve_blocks(labels_tmp)
            bar = tqdm(total=num_frames, desc=f"caching {self.split}", unit="frame", unit_scale=True, disable=not progress)
            with bar:
                for index in range(len(lengths)):
                    features, labels = read(index)
                    start, stop = offsets[index], offsets[index + 1]
                    features_out[start:stop] = features
                    if labels_out is not None:
                        labels_out[start:stop] = labels
                    bar.update(int(stop - start))
            features_out.flush()
            del features_out
            record("features.npy", features_tmp)
            if labels_out is not None:
                labels_out.flush()
                del labels_out
                record("labels.npy", labels_tmp)
        with atomic_path(self._path(fingerprint, "offsets.npy")) as offsets_tmp:
            with open(offsets_tmp, "wb") as handle:
                np.save(handle, offsets)
            record("offsets.npy", offsets_tmp)
        with atomic_path(self._path(fingerprint, "names.json")) as names_tmp:
            names_tmp.write_text(json.dumps(files.utterance_names))
            record("names.json", names_tmp)
        atomic_write_json(
            self.meta_path,
            {
                "format": CACHE_FORMAT,
                "split": self.split,
                "fingerprint": fingerprint,
                "settings": self.settings,
                "frames": num_frames,
                "utterances": len(lengths),
                "has_labels": files.has_labels,
                "files": checksums,
            },
        )
        self._remove_stale(fingerprint)
        loaded = self.load(fingerprint)
        if loaded is None:
            raise DataError(f"the cache just written to {self.directory} cannot be read back; check the disk")
        return loaded

    def _remove_stale(self, fingerprint: str) -> None:
        """Delete array files of earlier fingerprints (a changed data root would otherwise accumulate copies)."""
        keep = fingerprint[:20]
        for path in self.directory.iterdir():
            if path.name != self.meta_path.name and not path.name.startswith((keep, ".")):
                path.unlink(missing_ok=True)
