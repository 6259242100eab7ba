"""The planner of ``phonetune run``: ``--budget`` parsed, the budget split by what final runs cost on a machine of a
given speed, and the final runs chosen for the time really left."""

from __future__ import annotations

import pytest

from phonetune.errors import BudgetError, ConfigError
from phonetune.job.clock import parse_budget
from phonetune.job.planner import make_plan, plan_final_runs, run_seconds
from phonetune.model.speed import Speed


def test_parse_budget_and_unmeetable_budgets_are_named_errors():
    assert parse_budget("90s") == 90 and parse_budget("20m") == 1200 and parse_budget("1.5h") == 5400
    assert parse_budget("45") == 45
    for bad in ("", "10 minutes", "-5m", "0s", "m"):
        with pytest.raises(ConfigError, match="--budget must be a positive duration"):
            parse_budget(bad)
    slow = Speed(fixed=1e-3, per_param=1e-9, device="cpu")  # 1,000 frames/s at best
    with pytest.raises(BudgetError, match="cannot be met"):
        make_plan(60, slow, train_frames=1_000_000, dev_frames=100_000, param_budget=20_000_000, target_epochs=3,
                  search_fraction=0.2, search_epochs=3)


def test_plan_caps_models_by_what_their_final_runs_cost():
    speed = Speed(fixed=3.6e-6, per_param=5e-11, device="cpu")  # this 2-core machine, measured
    frames = dict(train_frames=1_000_000, dev_frames=150_000)
    fidelity = dict(param_budget=20_000_000, target_epochs=2, search_fraction=0.2, search_epochs=3)
    small = make_plan(600, speed, **frames, **fidelity)
    large = make_plan(20_000, speed, **frames, **fidelity)
    assert small.search_s + small.final_s + small.reserve_s == pytest.approx(600)
    assert small.search_cap <= small.final_cap < large.final_cap <= 20_000_000
    assert large.top_k == 4 and small.top_k < large.top_k  # a short budget trades runs for width
    assert small.final_cap >= 2_000_000 or small.top_k == 1
    # The final runs at the cap fit the final share.
    final = plan_final_runs([(0, small.final_cap)] * small.top_k, small.final_s, speed, **frames,
                            top_k=small.top_k, min_epochs=small.full_epochs, max_epochs=small.full_epochs)
    assert final.epochs == small.full_epochs and final.predicted_s <= small.final_s
    # Less time left than planned: the weakest candidate goes before the epochs drop below the plan's two.
    one_epoch = run_seconds(speed, 400_000, 1, 1_000_000, 150_000)
    short = plan_final_runs([(3, 400_000), (5, 400_000), (7, 400_000)], 2.5 * one_epoch, speed, **frames,
                            top_k=3, min_epochs=2, max_epochs=3)
    assert short.sources == [3] and short.epochs == 2
    with pytest.raises(BudgetError, match="no final run fits"):
        plan_final_runs([(3, 400_000)], 0.5 * one_epoch, speed, **frames, top_k=3, min_epochs=1, max_epochs=3)
