"""Packaging: the wheel `pip install .` would install holds every package of the source tree.

The repository's folders data_pipeline/, model/ and search/ install as phonetune.data_pipeline, phonetune.model and
phonetune.search, and phonetune/'s own subfolders (job/, results/, cli/) as phonetune.job and so on (setup.py). A
subpackage missing from the wheel is invisible in an editable install and breaks only a real one (the commands
package once was: `phonetune` had no subcommands), so this builds the real wheel from a copy of the tree, offline
(no build isolation), and compares its contents with the tree.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from shared import REPO

# folder in the repository -> import name
FOLDERS = {"phonetune": "phonetune", "data_pipeline": "phonetune.data_pipeline", "model": "phonetune.model",
           "search": "phonetune.search"}


def tree_packages() -> dict[str, Path]:
    """Every package of the tree (a folder with __init__.py under a mapped folder), by import name."""
    packages = {}
    for folder, name in FOLDERS.items():
        for init in (REPO / folder).rglob("__init__.py"):
            parts = init.parent.relative_to(REPO / folder).parts
            packages[".".join((name, *parts))] = init.parent
    return packages


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    pytest.importorskip("setuptools", reason="building without isolation needs setuptools (the dev extra)")
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"  # a copy, so the build leaves no build/ or egg-info in the repository
    source.mkdir()
    for name in ("pyproject.toml", "setup.py", "setup.cfg", "README.md"):
        if (REPO / name).exists():
            shutil.copy2(REPO / name, source / name)
    for folder in FOLDERS:
        shutil.copytree(REPO / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
         "-w", str(work / "dist"), str(source)],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (built,) = (work / "dist").glob("phonetune-*.whl")
    with zipfile.ZipFile(built) as archive:
        yield archive


def test_wheel_holds_every_package_of_the_tree(wheel):
    names = set(wheel.namelist())
    packages = tree_packages()
    assert {"phonetune.cli.commands", "phonetune.job", "phonetune.results"} <= set(packages)
    missing = sorted(name for name in packages if f"{name.replace('.', '/')}/__init__.py" not in names)
    assert missing == [], f"packages missing from the wheel: {missing}"
    # Every module of each package, not just its __init__.py.
    for name, folder in packages.items():
        for module in folder.glob("*.py"):
            assert f"{name.replace('.', '/')}/{module.name}" in names
    # Nothing installed under the repository's generic folder names.
    assert not {name.split("/")[0] for name in names} & {"model", "search", "data_pipeline"}


def test_wheel_installs_the_phonetune_command_with_every_subcommand(wheel):
    entry_points = next(name for name in wheel.namelist() if name.endswith(".dist-info/entry_points.txt"))
    assert "phonetune = phonetune.cli.main:main" in wheel.read(entry_points).decode()
    from phonetune.cli.commands import COMMANDS

    names = set(wheel.namelist())
    for module, _summary in COMMANDS.values():
        assert f"phonetune/cli/commands/{module}.py" in names
