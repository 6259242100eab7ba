"""Opening a storage: what a URL that cannot work says before anything is created, and several processes opening
one new SQLite file at once (workers starting together, or a reader polling a study that `run` is creating)."""

from __future__ import annotations

import multiprocessing

import pytest

from phonetune.errors import StorageError
from phonetune.search.storage import build_storage, check_storage_url


@pytest.mark.parametrize("url, named", [
    ("sqlite:///{tmp}/missing/study.db", "does not exist; create it (mkdir -p"),
    ("sqlite:///{tmp}", "is a folder"),
    ("journal:///{tmp}/missing/study.log", "journal storage"),
    ("not-a-url", "cannot be parsed"),
    ("mysql+nodriver://x/y", "which SQLAlchemy does not know"),
])
def test_a_url_that_cannot_work_is_refused_and_nothing_is_created(tmp_path, url, named):
    before = sorted(tmp_path.rglob("*"))
    with pytest.raises(StorageError, match=named.replace("(", r"\(")):
        check_storage_url(url.format(tmp=tmp_path))
    assert sorted(tmp_path.rglob("*")) == before


def _open(url: str, barrier, results) -> None:
    barrier.wait()
    try:
        build_storage(url)
        results.put("ok")
    except StorageError as exc:
        results.put(str(exc))


def test_processes_opening_one_new_sqlite_storage_at_once_all_succeed(tmp_path):
    # Without waiting out the other process's table creation, 2 to 4 of 5 such rounds had a process fail with
    # "table studies already exists" or "UNIQUE constraint failed" (a StorageError).
    context = multiprocessing.get_context("fork")
    for round_number in range(5):
        url = f"sqlite:///{tmp_path / f'round{round_number}.db'}"
        barrier, results = context.Barrier(6), context.Queue()
        processes = [context.Process(target=_open, args=(url, barrier, results)) for _ in range(6)]
        for process in processes:
            process.start()
        for process in processes:
            process.join(timeout=60)
        outcomes = [results.get(timeout=10) for _ in processes]
        assert outcomes == ["ok"] * 6, outcomes
