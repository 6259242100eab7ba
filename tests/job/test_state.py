"""A job's state file read back: every value a running job relies on is checked, and a file this phonetune did not
write is one ConfigError naming the key, the value and both ways on (delete the file, or --fresh)."""

from __future__ import annotations

import json

import pytest

from phonetune.errors import ConfigError
from phonetune.job.planner import make_plan
from phonetune.job.state import STATE_FILE, JobState
from phonetune.model.speed import Speed


def _valid_state() -> dict:
    speed = Speed(fixed=1e-6, per_param=1e-12, device="cpu", per_step=1e-3, threads=2)
    plan = make_plan(600, speed, train_frames=977_855, dev_frames=142_000, test_frames=142_398,
                     param_limit=20_000_000, batch_size=1024, workers=1, elapsed_s=20)
    return {"version": 3, "budget_s": 600.0, "spent_s": 42.0, "settings": {"workers": 1}, "done": ["screen"],
            "plan": plan.to_dict(), "final": {"source": 3, "final_seconds": 300.0, "reserve_s": 20.0}}


def _write(tmp_path, values) -> object:
    path = tmp_path / STATE_FILE
    path.write_text(json.dumps(values))
    return path


def test_a_state_this_phonetune_wrote_loads(tmp_path):
    state = JobState.load(_write(tmp_path, _valid_state()))
    assert state.budget_s == 600.0 and state.spent_s == 42.0 and state.done("screen")


@pytest.mark.parametrize("change, named", [
    ({"budget_s": "abc"}, "budget_s must be a positive number, but got 'abc'"),
    ({"budget_s": None}, "budget_s must be a positive number, but got None"),
    ({"spent_s": -16666667.0}, "spent_s must be a number of 0 or more"),
    ({"starts": 0}, "starts must be a whole number of 1 or more"),
    ({"spent_s": 1e6}, "spent_s must be at most about the budget_s (600), but got 1000000.0"),
    ({"plan": "x"}, "plan must be a table of the planner's numbers, but got 'x'"),
    ({"plan": {"budget_s": 600}}, "plan.final_params must be an integer, but got None"),
    ({"done": ["screen", "bogus"]}, "done must list steps among"),
    ({"settings": None}, "settings must be a table, but got None"),
    ({"final": {"source": "x"}}, "final must name its source trial"),
    ({"final": {"source": 3, "final_seconds": -1, "reserve_s": 0}}, "final_seconds must be a positive number"),
])
def test_a_state_with_a_wrong_value_names_it_and_both_ways_on(tmp_path, change, named):
    path = _write(tmp_path, {**_valid_state(), **change})
    with pytest.raises(ConfigError) as raised:
        JobState.load(path)
    message = str(raised.value)
    assert named in message and str(path) in message
    assert "delete" in message and "--fresh" in message
