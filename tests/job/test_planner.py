"""The planner of ``phonetune run``: ``--budget`` parsed and shown, and the budget split by what this machine's speed
buys, from a 2-core CPU and a small corpus to one H200 (four of them) and HW1P2's 36M training frames."""

from __future__ import annotations

import math

import pytest

from phonetune.errors import BudgetError, ConfigError
from phonetune.job.clock import format_seconds, parse_budget
from phonetune.job.planner import (
    FINAL_EVALUATIONS,
    FRAMES_PER_PARAM,
    MIN_SCREEN_S,
    SCREEN_SHARE,
    Plan,
    compute_optimal_params,
    make_plan,
    outputs_seconds,
    reserve_seconds,
)
from phonetune.model.decode import decode_seconds
from phonetune.model.speed import Speed

# The 2-core development machine, fitted from the trainer's own steps (BENCHMARKS.md): a 1.28M-parameter model
# trains about 8,000 frames a second here.
CPU = Speed(fixed=5e-7, per_param=7.5e-11, device="cpu")
# One H200 (issue 21, bench/trainer.py): an 18,481,192-parameter model trains 2,033,655 frames/s at batch 8192 and
# 258,473 at batch 1024; a step's launch cost of ~4 ms does not shrink with the batch.
H200 = Speed(fixed=0.0, per_param=4.3e-16, device="cuda", per_step=3.97e-3)
HW1P2 = dict(train_frames=36_000_000, dev_frames=1_930_000, test_frames=1_940_000)
DEMO = dict(train_frames=977_855, dev_frames=146_806, test_frames=142_398)


def test_budgets_parse_in_compound_units_and_print_in_hours():
    assert parse_budget("90s") == 90 and parse_budget("20m") == 1200 and parse_budget("1.5h") == 5400
    assert parse_budget("2m30s") == 150 and parse_budget("1h 30m") == 5400 and parse_budget("45") == 45
    for bad in ("", "10 minutes", "-5m", "0s", "m", "30s2m", "2m2m", "1h30"):
        with pytest.raises(ConfigError, match="--budget must be a positive duration"):
            parse_budget(bad)
    with pytest.raises(ConfigError, match="at most 30 days"):
        parse_budget("99999h")
    assert format_seconds(45) == "45 s" and format_seconds(185) == "3 min 05 s"
    assert format_seconds(7620) == "2 h 07 min" and format_seconds(-116) == "-1 min 56 s"


def test_the_final_model_sees_the_planned_frames_per_parameter_and_grows_with_the_square_root_of_time():
    sizes = []
    for seconds in (600, 2400):
        params = compute_optimal_params(CPU, seconds, 1024, param_limit=20_000_000, min_params=10_000)
        frames = seconds / CPU.seconds_per_frame(params, 1024)
        assert frames / params == pytest.approx(FRAMES_PER_PARAM, rel=0.01)
        sizes.append(params)
    # Compute-optimal: four times the time, about twice the model (the per-frame cost bends it a little).
    assert 1.7 < sizes[1] / sizes[0] < 2.3
    assert compute_optimal_params(CPU, 1e9, 1024, param_limit=20_000_000, min_params=10_000) == 20_000_000
    assert compute_optimal_params(CPU, 0.01, 1024, param_limit=20_000_000, min_params=10_000) == 10_000


def test_a_cpu_budget_screens_a_quarter_and_continues_a_mid_sized_model():
    plan = make_plan(600, CPU, **DEMO, param_limit=20_000_000, max_epochs=25, batch_size=1024, workers=2,
                     elapsed_s=20)
    training = plan.budget_s - plan.prepare_s - plan.reserve_s
    assert plan.screen_s == pytest.approx(SCREEN_SHARE * training)
    # The winner's trial is the first tenth of its run; the rest is what the screen leaves, minus its evaluations.
    continuation = plan.final_seconds - plan.trial_seconds
    assert continuation < training - plan.screen_s and continuation > 0.9 * (training - plan.screen_s)
    assert plan.trial_seconds == pytest.approx(0.1 * plan.final_seconds)
    assert 500_000 < plan.final_params < 3_609_640  # smaller than the expert recipe as written, for more epochs
    assert 2 < plan.final_epochs < 12
    assert plan.screen_end == pytest.approx(plan.prepare_s + plan.screen_s)


def test_a_cpu_screen_that_holds_only_the_recipes_is_skipped_and_its_time_goes_to_the_final_run():
    screened = make_plan(600, CPU, **DEMO, param_limit=20_000_000, max_epochs=25, batch_size=1024, workers=2,
                         elapsed_s=20)
    direct = make_plan(600, CPU, **DEMO, param_limit=20_000_000, max_epochs=25, batch_size=1024, workers=2,
                       elapsed_s=20, recipes=2)
    assert not screened.direct and direct.direct and direct.workers == 1
    assert "no screen" in direct.why and "2 recipes plus 3 searched" in direct.why
    # The whole training time is the final run's, less starting the one worker that runs its first tenth.
    training = direct.budget_s - direct.prepare_s - direct.reserve_s
    evaluating = training - MIN_SCREEN_S - direct.final_seconds
    assert evaluating == pytest.approx(FINAL_EVALUATIONS * CPU.predict_seconds(direct.final_params, DEMO["dev_frames"]))
    assert direct.trial_seconds == pytest.approx(0.1 * direct.final_seconds)
    assert direct.screen_s == pytest.approx(direct.trial_seconds + MIN_SCREEN_S)
    assert direct.final_seconds > 1.15 * screened.final_seconds
    # More time, so a larger compute-optimal model, at about the same frames per parameter.
    assert direct.final_params > screened.final_params
    assert direct.prepare_s + direct.screen_s + 0.9 * direct.final_seconds + direct.reserve_s <= 600 + 1e-6
    assert "no screen" in direct.describe() and Plan.from_dict(direct.to_dict(), "state.json") == direct
    # One recipe still leaves no room for three searched trials beside it on one CPU.
    assert make_plan(600, CPU, **DEMO, param_limit=20_000_000, max_epochs=25, batch_size=1024, workers=1,
                     recipes=1).direct


def test_gpu_budgets_screen_even_with_recipes():
    for budget, workers in ((1200, 1), (6 * 3600, 4)):
        plan = make_plan(budget, H200, **HW1P2, param_limit=20_000_000, max_epochs=25, batch_size=8192,
                         workers=workers, elapsed_s=120, recipes=2)
        assert not plan.direct and plan.screen_s / plan.trial_seconds * workers > 5, plan


def test_six_hours_on_h200s_train_a_20m_model_for_the_studys_epochs_and_screen_with_the_rest():
    plan = make_plan(6 * 3600, H200, **HW1P2, param_limit=20_000_000, max_epochs=25, batch_size=8192, workers=4,
                     elapsed_s=120)
    assert plan.final_params == 20_000_000 and plan.final_epochs == 25
    # 25 epochs of 36M frames at ~1.9M frames/s take minutes; everything else buys trials.
    assert plan.final_seconds < 15 * 60 and plan.screen_s > 5 * 3600
    assert plan.trial_seconds * 4 < plan.screen_s / 100  # hundreds of trials on four GPUs
    assert "caps the model" in plan.why


def test_twenty_minutes_on_an_h200_still_train_near_the_20m_rule_and_screen_a_few_dozen_trials():
    plan = make_plan(1200, H200, **HW1P2, param_limit=20_000_000, max_epochs=25, batch_size=8192, workers=1,
                     elapsed_s=120)
    assert plan.final_params == 20_000_000 and 10 <= plan.final_epochs <= 25
    assert plan.prepare_s + plan.screen_s + plan.final_seconds * 0.9 + plan.reserve_s <= 1200
    assert plan.screen_s / plan.trial_seconds > 10
    # At batch 1024 the step's launch cost dominates: the same 20 minutes buy a far smaller model.
    small_batch = make_plan(1200, H200, **HW1P2, param_limit=20_000_000, max_epochs=25, batch_size=1024,
                            workers=1, elapsed_s=120)
    assert small_batch.final_epochs < plan.final_epochs


def test_an_unmeetable_budget_is_one_named_error_with_the_budget_that_would_do():
    slow = Speed(fixed=1e-3, per_param=1e-9, device="cpu")  # 1,000 frames/s at best
    with pytest.raises(BudgetError, match=r"--budget 40 s cannot be met on this machine.*at least"):
        make_plan(40, slow, **DEMO, param_limit=20_000_000, max_epochs=3, batch_size=1024, workers=1,
                  elapsed_s=20, min_params=50_000)


def test_a_state_files_plan_with_wrong_types_is_a_named_error():
    plan = make_plan(600, CPU, **DEMO, param_limit=20_000_000, max_epochs=25, batch_size=1024, workers=2)
    assert Plan.from_dict(plan.to_dict(), "state.json") == plan
    for key, value in (("budget_s", "abc"), ("final_params", None), ("screen_s", -5), ("why", 3)):
        broken = {**plan.to_dict(), key: value}
        with pytest.raises(ConfigError, match=rf"state.json.*plan\.{key}"):
            Plan.from_dict(broken, "state.json")
    with pytest.raises(ConfigError, match="plan must be a table"):
        Plan.from_dict("x", "state.json")
    # A plan kept before "direct" existed is a screened one; a kept "direct" must be true or false.
    older = {key: value for key, value in plan.to_dict().items() if key != "direct"}
    assert Plan.from_dict(older, "state.json") == plan and not plan.direct
    with pytest.raises(ConfigError, match=r"plan\.direct must be true or false, but got 'yes'"):
        Plan.from_dict({**plan.to_dict(), "direct": "yes"}, "state.json")
    with pytest.raises(ConfigError, match=r"plan\.budget_s must be a number, but got True"):
        Plan.from_dict({**plan.to_dict(), "budget_s": True}, "state.json")
    assert not math.isnan(plan.final_epochs)


def test_a_slow_measured_model_scales_the_predicting_in_the_reserve_not_the_fixed_end():
    # A 20-minute job on the second corpus measured its final model 8x slower than the speed line (the machine was
    # busy at that moment) and reserved 207 s where predicting took about 25: three minutes left idle. The sheet,
    # the report, the summary and the decode do not get slower with the model; only the predicting is scaled.
    speed = Speed(fixed=0.0, per_param=3.4e-11, device="cpu", per_step=4.1e-3)
    dev, test = 187_596, 195_300
    plain = reserve_seconds(speed, 2_314_024, dev, test, 1200)
    slow = reserve_seconds(speed, 2_314_024, dev, test, 1200, slowdown=8.0)
    fixed = outputs_seconds(1200) + decode_seconds(dev, test)
    assert plain == pytest.approx(fixed + speed.predict_seconds(2_314_024, dev + test))
    assert slow - fixed == pytest.approx(8.0 * (plain - fixed))


def test_the_outputs_reserve_is_seconds_on_a_short_job_and_grows_with_a_long_ones_many_trials():
    # A job of a minute keeps a few seconds for its sheet, report and summary (they take about 1.5 s here), not the
    # quarter of its budget that a fixed 15 s was; six hours keep a couple of minutes for a study of many trials.
    assert 5.0 <= outputs_seconds(60) <= 6.0
    assert outputs_seconds(600) < 10.0
    assert 60.0 <= outputs_seconds(6 * 3600) <= 180.0
