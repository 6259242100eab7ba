"""Shared pytest fixtures. The helper modules beside this file (``corpus``, ``shared``, ``postgres``, ``search_study``)
import by bare name from any test folder: pyproject.toml puts tests/ on the path (``pythonpath``)."""

from __future__ import annotations

import subprocess

import pytest
from corpus import TinyCorpus, write_tiny_corpus
from postgres import postgres_server, postgres_url  # noqa: F401  (fixtures: one server for the session)
from shared import one_torch_thread


@pytest.fixture
def tiny_corpus(tmp_path) -> TinyCorpus:
    """A fresh learnable HW1P2-layout corpus (24 train, 8 dev, 6 test utterances of 20-60 frames) in tmp_path."""
    return write_tiny_corpus(tmp_path / "data")


@pytest.fixture
def single_torch_thread():
    """Tests that train tiny models in this process: one intra-op thread (see shared.one_torch_thread)."""
    with one_torch_thread():
        yield


@pytest.fixture
def small_disk(tmp_path):
    """A real full disk to be: a 64 KiB tmpfs mounted at ``tmp_path/small-disk`` (root only; skipped otherwise), as
    ``(folder, resize)``, where ``resize("64m")`` frees space as a user would. ``shared.fill_disk`` fills it."""
    folder = tmp_path / "small-disk"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(folder)],
                             capture_output=True, text=True, check=False)
    if mounted.returncode != 0:
        pytest.skip(f"the disk-full tests mount a small tmpfs, which needs root ({mounted.stderr.strip()})")

    def resize(size: str) -> None:
        subprocess.run(["mount", "-o", f"remount,size={size}", str(folder)], check=True)

    yield folder, resize
    subprocess.run(["umount", "-l", str(folder)], check=False)

