"""Where a study's files live: ``StudyPaths``, reached as ``config.paths`` of a ``StudyConfig``.

A study file writes its storage URL and artifacts folder as the user wrote them (``""`` for the defaults); the paths
here are resolved against the working folder when ``config.paths`` is read:

- ``storage_url``: ``sqlite:///studies/<name>.db`` by default, file paths of ``sqlite:///``/``journal:///`` URLs
  made absolute;
- ``artifacts_path``: ``studies/<name>/``, holding ``trials/<number>/`` (search trials' run folders),
  ``full/<source>/`` (full-data runs), ``optuna-artifacts/`` (Optuna's artifact store), ``resolved-study.toml`` (the
  study as ``phonetune search`` resolved it for its workers), and what the commands write (``retrain/``,
  ``ensemble/``, ``run/``, the sheet and the report of ``phonetune run``).

Example::

    paths = load_study_config("studies/demo.toml").paths
    paths.trial_dir(3)                      # /abs/studies/demo/trials/3
    paths.run_dir_of(paths.stored_run_dir(paths.trial_dir(3)))  # the same folder, recorded relative
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from phonetune.search.attributes import ARTIFACT_FOLDER, FULL_FIDELITY, SEARCH_FIDELITY, check_fidelity

RESOLVED_STUDY_FILE = "resolved-study.toml"


def resolve_storage_url(url: str) -> str:
    """Make the file path of a sqlite:/// or journal:/// URL absolute (relative to the working folder)."""
    for scheme in ("sqlite:///", "journal:///"):
        if url.startswith(scheme):
            path = url[len(scheme):]
            if path and path != ":memory:" and not path.startswith("/"):
                return scheme + str(Path(path).resolve())
    return url


@dataclass(frozen=True)
class StudyPaths:
    """The study's storage URL and artifacts folder, resolved, and the run folders inside it."""

    artifacts_path: Path  # folder of this study's files (trial run folders, exports), absolute
    storage_url: str  # the storage URL with the default filled in and relative file paths made absolute

    @classmethod
    def resolve(cls, name: str, artifacts_dir: str = "", storage: str = "") -> "StudyPaths":
        """The paths of study ``name`` from its ``[study] artifacts_dir`` and ``storage`` ("" = the defaults)."""
        return cls(
            artifacts_path=Path(artifacts_dir or f"studies/{name}").resolve(),
            storage_url=resolve_storage_url(storage or f"sqlite:///studies/{name}.db"),
        )

    def trial_dir(self, number: int, fidelity: str = SEARCH_FIDELITY) -> Path:
        """Run folder (config.toml, last.pt, best.pt, metrics.json) of trial ``number`` of one fidelity."""
        folder = "trials" if check_fidelity(fidelity) == SEARCH_FIDELITY else FULL_FIDELITY
        return self.artifacts_path / folder / str(number)

    @property
    def artifact_store_path(self) -> Path:
        """Folder of the study's Optuna ``FileSystemArtifactStore`` (curves and metrics of full-data runs)."""
        return self.artifacts_path / ARTIFACT_FOLDER

    @property
    def resolved_study_path(self) -> Path:
        """The complete study TOML that ``phonetune search`` writes for its worker processes (file plus overrides)."""
        return self.artifacts_path / RESOLVED_STUDY_FILE

    def stored_run_dir(self, folder: Path) -> str:
        """How a trial records its run folder: relative to ``artifacts_path`` when inside it, so that moving the
        study's folder (database and runs together) keeps the record true."""
        folder = Path(folder).resolve()
        try:
            return str(folder.relative_to(self.artifacts_path))
        except ValueError:
            return str(folder)

    def run_dir_of(self, stored: str) -> Path:
        """The run folder a trial recorded (relative ones are under ``artifacts_path``; older records absolute)."""
        return self.artifacts_path / stored if stored else Path()
