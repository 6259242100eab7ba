"""Package layout for setuptools; everything else is in pyproject.toml.

The repository keeps the design card's top-level layout (data_pipeline/, model/, search/) while everything imports
under one distribution name, so no generic top-level ``model`` or ``search`` module is installed. The rooms of their
own (the budgeted job, the results, the CLI) are subpackages of the ``phonetune/`` folder itself: ``phonetune/job/``
is ``phonetune.job``, ``phonetune/cli/commands/`` is ``phonetune.cli.commands``. pyproject.toml cannot both rename
folders and discover packages, so the package list is computed here: every folder with an ``__init__.py`` under each
mapped folder (``search/storage/`` is ``phonetune.search.storage``), so a new subpackage is installed without anyone
listing it (tests/test_packaging.py builds the wheel and checks that every module is in it).
"""

from pathlib import Path

from setuptools import setup

HERE = Path(__file__).resolve().parent
# import name -> folder in the repository
PACKAGE_DIR = {
    "phonetune": "phonetune",
    "phonetune.data_pipeline": "data_pipeline",
    "phonetune.model": "model",
    "phonetune.search": "search",
}


def find_packages() -> list[str]:
    packages = set()
    for name, folder in PACKAGE_DIR.items():
        for init in (HERE / folder).rglob("__init__.py"):
            relative = init.parent.relative_to(HERE / folder).parts
            packages.add(".".join((name, *relative)))
    return sorted(packages)


setup(package_dir=PACKAGE_DIR, packages=find_packages())
