"""``JobState``: the job's ``<artifacts>/run/state.json`` (one ``phonetune run`` per study holds it: the study's
storage carries that lock, ``search.storage.job_lock``).

The state holds the budget, the time spent (saved every few seconds, so a kill loses at most that), the settings
the job was started with, the plan, the final run's length once decided, and the steps done. It is written
atomically after every change, and only once a job has a plan: a start refused for bad data, a budget that cannot
be met or a mistyped option leaves nothing behind. Read back, every value is checked for its type and range; a
state file that is not one this phonetune wrote is a ConfigError naming the key, not a traceback.

A full disk under the run folders would stop the job without the time it spent on record (its rerun then overran
its budget by half), so beside the state lies a ballast file, ``BALLAST_FILE``: a few blocks written when the state
is, deleted to make room for the state's last saves when the disk is full, and written again when there is room.

Example::

    state = JobState.load(artifacts / "run" / STATE_FILE)   # None before the first plan
"""

from __future__ import annotations

import errno
import json
import logging
import math
import os
import threading
from pathlib import Path
from typing import Any, Mapping

from phonetune.atomic import atomic_write_json
from phonetune.errors import ConfigError
from phonetune.job.planner import Plan

logger = logging.getLogger(__name__)

STATE_FILE = "state.json"
BALLAST_FILE = ".state-ballast"
BALLAST_BYTES = 256 * 1024  # many times a state's size: its atomic write holds the old and the new file at once
VERSION = 3  # 3: plans of a kind (direct or screened) with whole-run trials
STEPS = ("screen", "final", "final_model", "outputs")
# Settings of a job that its outputs depend on: a rerun with others is refused rather than silently ignored.
SETTING_KEYS = ("config", "workers", "gpus", "max_members")
# How far past its budget a state's spent time may be before it is taken for a file this phonetune did not write.
SPENT_LIMIT_FACTOR = 2.0
SPENT_LIMIT_SLACK_S = 60.0


def _not_ours(source: str, problem: str) -> ConfigError:
    """The error for a state file that holds what this phonetune never writes, with the two ways on."""
    return ConfigError(f"{source}: {problem}; this is not a state this phonetune wrote: delete {source} to plan the "
                       "job again (the study's trials are kept), or run with --fresh to start it over")


def _number(values: Mapping[str, Any], key: str, source: str, *, positive: bool = False) -> float:
    value = values.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0 or (
            positive and value <= 0):
        wanted = "a positive number" if positive else "a number of 0 or more"
        raise _not_ours(source, f"{key} must be {wanted}, but got {value!r}")
    return float(value)


class JobState:
    """``state.json``; see the module docstring. ``values`` is the validated content."""

    def __init__(self, path: Path, values: dict[str, Any]) -> None:
        self.path = path
        self.values = values
        self._lock = threading.Lock()

    @classmethod
    def new(cls, path: Path, budget_s: float, settings: Mapping[str, Any]) -> "JobState":
        return cls(path, {"version": VERSION, "budget_s": budget_s, "spent_s": 0.0, "settings": dict(settings),
                          "done": []})

    @classmethod
    def load(cls, path: Path) -> "JobState | None":
        """The state at ``path``, validated; None when there is none yet."""
        if not path.exists():
            return None
        source = str(path)
        try:
            values = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"job state {source} is unreadable ({exc}); delete it to plan the job again (the "
                              "study's trials are kept)") from exc
        if not isinstance(values, dict):
            raise ConfigError(f"job state {source} must be a JSON object, but holds {type(values).__name__}; delete "
                              "it to plan the job again (the study's trials are kept)")
        if values.get("version") != VERSION:
            raise ConfigError(f"job state {source} was written by another phonetune version (version "
                              f"{values.get('version')!r}, this one reads {VERSION}); delete {path.parent} to plan the "
                              "job again (the study's trials are kept)")
        budget = _number(values, "budget_s", source, positive=True)
        spent = _number(values, "spent_s", source)
        if spent > SPENT_LIMIT_FACTOR * budget + SPENT_LIMIT_SLACK_S:
            # A job stops at its budget; a killed one redoes at most the work since its last save.
            raise _not_ours(source, f"spent_s must be at most about the budget_s ({budget:.0f}), but got {spent!r}")
        done = values.get("done")
        if not isinstance(done, list) or any(step not in STEPS for step in done):
            raise _not_ours(source, f"done must list steps among {list(STEPS)}, but got {done!r}")
        starts = values.get("starts", 1)
        if isinstance(starts, bool) or not isinstance(starts, int) or starts < 1:
            raise _not_ours(source, f"starts must be a whole number of 1 or more, but got {starts!r}")
        if not isinstance(values.get("settings"), dict):
            raise _not_ours(source, f"settings must be a table, but got {values.get('settings')!r}")
        if "plan" in values:
            try:
                Plan.from_dict(values["plan"], source)
            except ConfigError as exc:
                raise _not_ours(source, str(exc).removeprefix(f"{source}: ")) from exc
        final = values.get("final")
        if final is not None:
            if not isinstance(final, dict) or isinstance(final.get("source"), bool) or not isinstance(
                    final.get("source"), int):
                raise _not_ours(source, f"final must name its source trial, but got {final!r}")
            _number(final, "final_seconds", f"{source} final", positive=True)
            _number(final, "reserve_s", f"{source} final")
            if "reserve_steps" in final:
                _number(final, "reserve_steps", f"{source} final")
        return cls(path, values)

    def changed_settings(self, settings: Mapping[str, Any]) -> list[str]:
        """``key: before -> now`` for each job setting that differs from what the job was started with."""
        before = self.values["settings"]
        return [f"{key}: {before.get(key)!r} -> {settings.get(key)!r}" for key in SETTING_KEYS
                if before.get(key) != settings.get(key)]

    @property
    def budget_s(self) -> float:
        return float(self.values["budget_s"])

    @property
    def spent_s(self) -> float:
        return float(self.values["spent_s"])

    @property
    def starts(self) -> int:
        """How many times ``phonetune run`` has worked on this job (the first start, then each continuation)."""
        return int(self.values.get("starts", 1))

    def save(self, **changes: Any) -> None:
        with self._lock:
            self.values.update(changes)
            try:
                atomic_write_json(self.path, self.values)
            except OSError as exc:
                if exc.errno not in (errno.ENOSPC, errno.EDQUOT) or not self._ballast_path.is_file():
                    raise
                self._ballast_path.unlink()
                logger.debug("the disk under %s is full: its ballast file was deleted to save it", self.path)
                atomic_write_json(self.path, self.values)
            self._keep_ballast()

    @property
    def _ballast_path(self) -> Path:
        return self.path.parent / BALLAST_FILE

    def _keep_ballast(self) -> None:
        """Write the ballast file when it is missing and there is room for it (real blocks: a sparse file frees none)."""
        if self._ballast_path.is_file():
            return
        try:
            with open(self._ballast_path, "wb") as handle:
                handle.write(b"\0" * BALLAST_BYTES)
                handle.flush()
                os.fsync(handle.fileno())
        except OSError:
            self._ballast_path.unlink(missing_ok=True)  # no room yet: the next save tries again

    def done(self, step: str) -> bool:
        return step in self.values["done"]

    def mark_done(self, step: str, **changes: Any) -> None:
        self.save(done=[*self.values["done"], step], **changes)
