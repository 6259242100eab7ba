"""What may import what (ARCHITECTURE.md): the import graph between phonetune's packages, derived from every
module's imports (lazy and type-checking ones included), has no upward edge.

    phonetune (errors, configs, atomic)  <-  data_pipeline  <-  model  <-  search  <-  job, results  <-  cli

The job may call the results' writers; the results never import the job; nothing but bench/ imports the CLI.
Run as a script (``python tests/test_layers.py``) it prints the graph and each package's size in lines.
"""

from __future__ import annotations

import ast
import collections
from pathlib import Path

from shared import REPO

CORE = "phonetune"
# Each package's folder in the repository. phonetune/job, results and cli are checked before phonetune itself.
FOLDERS = {
    "job": REPO / "phonetune" / "job",
    "results": REPO / "phonetune" / "results",
    "cli": REPO / "phonetune" / "cli",
    CORE: REPO / "phonetune",
    "data_pipeline": REPO / "data_pipeline",
    "model": REPO / "model",
    "search": REPO / "search",
    "bench": REPO / "bench",
}
BELOW = {
    CORE: set(),
    "data_pipeline": {CORE},
    "model": {CORE, "data_pipeline"},
    "search": {CORE, "data_pipeline", "model"},
    "results": {CORE, "data_pipeline", "model", "search"},
    "job": {CORE, "data_pipeline", "model", "search", "results"},
    "cli": {CORE, "data_pipeline", "model", "search", "results", "job"},
}
# The only names the job takes from the results: the writers of its outputs.
JOB_USES_OF_RESULTS = {("phonetune.results.export", "write_ablation_sheet"), ("phonetune.results.report", "write_report"),
                       ("phonetune.results.dashboard", "write_job_note")}


def package_of_file(path: Path) -> str:
    for package, folder in FOLDERS.items():
        if path.is_relative_to(folder):
            return package
    raise ValueError(f"{path} is in no package")


def package_of_module(name: str) -> str | None:
    """The package of an imported module name, None for a module outside phonetune."""
    parts = name.split(".")
    if parts[0] != "phonetune":
        return None
    return parts[1] if len(parts) > 1 and parts[1] in FOLDERS and parts[1] != "bench" else CORE


def python_files() -> list[Path]:
    return sorted({path for folder in FOLDERS.values() for path in folder.rglob("*.py")})


def imports_of(path: Path) -> list[tuple[str, str]]:
    """(module, name) of every import in ``path``: ``import a.b`` gives (a.b, ""), ``from a import b`` (a, b)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.extend((alias.name, "") for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.extend((node.module, alias.name) for alias in node.names)
    return found


def import_graph() -> dict[str, dict[str, set[str]]]:
    """package -> imported package -> the files that import it."""
    graph: dict[str, dict[str, set[str]]] = collections.defaultdict(lambda: collections.defaultdict(set))
    for path in python_files():
        source = package_of_file(path)
        for module, _name in imports_of(path):
            target = package_of_module(module)
            if target is not None and target != source:
                graph[source][target].add(str(path.relative_to(REPO)))
    return graph


def test_no_package_imports_upward():
    upward = {
        (source, target): sorted(files)
        for source, targets in import_graph().items() if source != "bench"
        for target, files in targets.items() if target not in BELOW[source]
    }
    assert upward == {}, f"imports against the layers of ARCHITECTURE.md: {upward}"


def test_the_job_takes_only_the_results_writers():
    taken = {
        (module, name)
        for path in python_files() if package_of_file(path) == "job"
        for module, name in imports_of(path) if package_of_module(module) == "results"
    }
    assert taken <= JOB_USES_OF_RESULTS, taken - JOB_USES_OF_RESULTS


def package_lines() -> dict[str, int]:
    lines: dict[str, int] = collections.Counter()
    for path in python_files():
        lines[package_of_file(path)] += len(path.read_text().splitlines())
    return dict(lines)


if __name__ == "__main__":
    for source, targets in sorted(import_graph().items()):
        print(f"{source:>13} imports {', '.join(sorted(targets)) or 'nothing of phonetune'}")
    print()
    sizes = package_lines()
    library = sum(count for package, count in sizes.items() if package != "bench")
    for package, count in sorted(sizes.items(), key=lambda item: -item[1]):
        share = f"{100 * count / library:.0f}% of the library" if package != "bench" else "(not library)"
        print(f"{package:>13} {count:>6} lines  {share}")
