"""``JobState``: the job's ``<artifacts>/run/state.json`` (the budget, the plan, the time spent, the steps done),
written atomically after every change so that a stopped job continues where it stopped."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from phonetune.atomic import atomic_write_json
from phonetune.errors import ConfigError
from phonetune.job.clock import format_seconds

STATE_FILE = "state.json"


class JobState:
    """``state.json``: the budget, the plan, the time spent and which steps are done; written atomically."""

    def __init__(self, path: Path, values: dict[str, Any]) -> None:
        self.path = path
        self.values = values
        self._lock = threading.Lock()

    @classmethod
    def load(cls, path: Path, budget_s: float) -> "JobState":
        if path.is_file():
            try:
                values = json.loads(path.read_text())
            except (OSError, ValueError) as exc:
                raise ConfigError(f"job state {path} is unreadable ({exc}); delete it to start the job over") from exc
            if values.get("budget_s") != budget_s:
                raise ConfigError(
                    f"job state {path} belongs to a --budget of {format_seconds(values.get('budget_s', 0))}, but this "
                    f"command gives {format_seconds(budget_s)}; rerun with the same --budget to continue, or delete "
                    f"{path.parent} (and the study) to start over"
                )
            return cls(path, values)
        return cls(path, {"budget_s": budget_s, "spent_s": 0.0, "done": []})

    def save(self, **changes: Any) -> None:
        with self._lock:
            self.values.update(changes)
            atomic_write_json(self.path, self.values)

    def done(self, step: str) -> bool:
        return step in self.values["done"]

    def mark_done(self, step: str, **changes: Any) -> None:
        self.save(done=[*self.values["done"], step], **changes)
