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


def test_installing_into_an_environment_that_has_a_torch_keeps_that_torch(wheel, tmp_path, tiny_corpus):
    """docs/gpu.md's install on a GPU image: the project installed where a torch already is (here this test run's
    own torch, seen by a fresh virtual environment through a .pth file, as a base image's packages are) resolves
    against it: the same torch afterwards, not a download of another build (``--no-index`` fails any download)."""
    import torch

    env = tmp_path / "gpu-image"
    # No pip or setuptools of its own (they would shadow the image's); this run's pip installs into it.
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True, timeout=120)
    python = env / "bin" / "python"
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    # The image's packages: this run's, less phonetune itself (a GPU image has torch and friends, not the project).
    image = tmp_path / "image-packages"
    image.mkdir()
    for entry in Path(torch.__file__).resolve().parent.parent.iterdir():
        if not entry.name.startswith(("phonetune", "__editable__")):
            (image / entry.name).symlink_to(entry)
    Path(site, "base_image.pth").write_text(f"{image}\n")
    installed = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-index", "-q",
                                wheel.filename],
                               capture_output=True, text=True, timeout=300)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    seen = subprocess.run([python, "-c", "import torch, phonetune; print(torch.__version__, torch.__file__, "
                           "phonetune.__file__)"], capture_output=True, text=True, check=True, cwd=tmp_path).stdout.split()
    assert seen[:2] == [torch.__version__, str(image / Path(torch.__file__).parent.name / "__init__.py")]
    assert Path(seen[2]).resolve().is_relative_to(Path(site).resolve())  # the project itself went into the new env
    inspected = subprocess.run([env / "bin" / "phonetune", "inspect", "--data", str(tiny_corpus.root)],
                               capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert inspected.returncode == 0 and "train-clean-100" in inspected.stdout, inspected.stderr
