"""Atomic writes: the umask's permissions (not a temp file's 0600), and nothing lost when a write fails."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

import pytest

from phonetune.atomic import atomic_write, atomic_write_text


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("umask, expected", [(0o022, 0o644), (0o027, 0o640), (0o002, 0o664)])
def test_new_files_get_the_permissions_the_umask_gives(tmp_path, umask, expected):
    target = tmp_path / "sheet.csv"
    code = ("import os, sys; os.umask(int(sys.argv[1], 8)); from phonetune.atomic import atomic_write_text; "
            "atomic_write_text(sys.argv[2], 'a,b\\n')")
    subprocess.run([sys.executable, "-c", code, oct(umask)[2:], str(target)], check=True)
    assert target.read_text() == "a,b\n"
    assert _mode(target) == expected


def test_a_replaced_file_keeps_its_own_permissions(tmp_path):
    target = tmp_path / "private.json"
    target.write_text("old")
    target.chmod(0o640)  # neither the umask's 0644 nor a temporary file's 0600
    atomic_write_text(target, "new")
    assert target.read_text() == "new" and _mode(target) == 0o640


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "report.html"
    target.write_text("the previous report")

    def half_then_fail(handle):
        handle.write(b"half a repo")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        atomic_write(target, half_then_fail)
    assert target.read_text() == "the previous report"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["report.html"]
