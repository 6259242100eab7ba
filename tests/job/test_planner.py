"""The planner of ``phonetune run``: ``--budget`` parsed and shown, and the budget split by what this machine's speed
buys, from a 2-core CPU and a small corpus to one H200 and HW1P2's 36M training frames.

The plan must be monotone: at twice the budget the final run is never smaller or shorter (issue 34, item 1), from
5 minutes to 12 hours, on this machine's speed and on the H200's, for the demo study and the HW1P2 one."""

from __future__ import annotations

import math

import pytest
from shared import REPO

from phonetune.errors import BudgetError, ConfigError
from phonetune.job.clock import BudgetClock, TimeLimit, format_seconds, parse_budget
from phonetune.job.planner import (
    FINAL_EVALUATIONS,
    FRAMES_PER_PARAM,
    HORIZON_RATIO,
    SATURATION_FRAMES_PER_PARAM,
    WORKER_START_S,
    Plan,
    compute_optimal_params,
    fixed_reserve_seconds,
    make_plan,
    outputs_seconds,
    reserve_seconds,
)
from phonetune.model.decode import decode_seconds
from phonetune.model.speed import Speed

# The 2-core development machine, as its probe measured it on 2026-12-07 (a 985,840-parameter model trains about
# 27,000 frames a second at batch 1024), and the slower line the earlier tests used.
CPU = Speed(fixed=0.0, per_param=3.3e-11, device="cpu", per_step=4.6e-3)
SLOW_CPU = Speed(fixed=5e-7, per_param=7.5e-11, device="cpu")
# One H200 (issue 21, bench/trainer.py): an 18,481,192-parameter model trains 2,033,655 frames/s at batch 8192 and
# 258,473 at batch 1024; a step's launch cost of ~4 ms does not shrink with the batch.
H200 = Speed(fixed=0.0, per_param=4.3e-16, device="cuda", per_step=3.97e-3)
HW1P2 = dict(train_frames=36_000_000, dev_frames=1_930_000, test_frames=1_940_000)
DEMO = dict(train_frames=977_855, dev_frames=146_806, test_frames=142_398)
# The largest model of each shipped study's space (search.space_sizes.largest_model_of_space).
DEMO_SPACE_MAX = 8_199_768
DEFAULT_SPACE_MAX = 20_000_000
# The most each shipped study's first warm start (the expert) can become within its space: its widest base_width at
# its deepest hidden_layers (job.screen.warm_start_reach). A direct plan trains no larger a model.
DEMO_REACH = 4_661_288
DEFAULT_REACH = 19_980_328
BUDGETS = [5 * 60 * 2 ** (k / 2) for k in range(0, 14)]  # 5 min to 10 h 40 min in steps of sqrt(2)
BUDGETS.append(12 * 3600)


def _plan(budget_s: float, speed: Speed, frames: dict, **options) -> Plan:
    values = dict(param_limit=20_000_000, batch_size=1024, workers=2, elapsed_s=30.0, warm_starts=1,
                  max_params=DEMO_SPACE_MAX, reachable_params=DEMO_REACH, **frames)
    values.update(options)
    return make_plan(budget_s, speed, **values)


CELLS = {
    "demo.toml, this machine": (CPU, DEMO, {}),
    "demo.toml capped at 1M, this machine": (CPU, DEMO, {"param_limit": 1_000_000}),
    "demo.toml, a slower CPU": (SLOW_CPU, DEMO, {}),
    "default.toml, this machine": (CPU, HW1P2, {"max_params": DEFAULT_SPACE_MAX, "min_params": 200_000,
                                                "reachable_params": DEFAULT_REACH}),
    "default.toml, one H200": (H200, HW1P2, {"max_params": DEFAULT_SPACE_MAX, "reachable_params": DEFAULT_REACH,
                                             "batch_size": 8192, "workers": 1,
                                             "elapsed_s": 120.0}),
    "default.toml, four H200s": (H200, HW1P2, {"max_params": DEFAULT_SPACE_MAX, "reachable_params": DEFAULT_REACH,
                                               "batch_size": 8192, "workers": 4,
                                               "elapsed_s": 120.0}),
    "demo.toml, one H200": (H200, DEMO, {"batch_size": 8192, "workers": 1}),
}


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


def test_the_compute_optimal_model_sees_the_planned_frames_per_parameter_and_grows_with_the_square_root_of_time():
    sizes = []
    for seconds in (600, 2400):
        params = compute_optimal_params(SLOW_CPU, seconds, 1024, size_cap=20_000_000, min_params=10_000)
        frames = seconds / SLOW_CPU.seconds_per_frame(params, 1024)
        assert frames / params == pytest.approx(FRAMES_PER_PARAM, rel=0.01)
        sizes.append(params)
    # Compute-optimal: four times the time, about twice the model (the per-frame cost bends it a little).
    assert 1.7 < sizes[1] / sizes[0] < 2.3
    assert compute_optimal_params(SLOW_CPU, 1e9, 1024, size_cap=20_000_000, min_params=10_000) == 20_000_000
    assert compute_optimal_params(SLOW_CPU, 0.01, 1024, size_cap=20_000_000, min_params=10_000) == 10_000


@pytest.mark.parametrize("cell", sorted(CELLS))
def test_twice_the_budget_never_trains_a_smaller_or_shorter_final_model(cell):
    speed, frames, options = CELLS[cell]
    plans = {}
    for budget in BUDGETS:
        try:
            plans[budget] = _plan(budget, speed, frames, **options)
        except BudgetError:
            assert budget < 30 * 60, f"{cell}: {format_seconds(budget)} refused"
    assert len(plans) >= len(BUDGETS) - 2, cell
    for budget, plan in plans.items():
        # Every plan fits its budget: preparing, the screen, the final run and its evaluations, the reserve.
        evaluating = FINAL_EVALUATIONS * speed.predict_seconds(plan.final_params, plan.dev_frames)
        training = plan.final_seconds if plan.direct else plan.final_seconds + plan.screen_s
        assert plan.prepare_s + training + evaluating + plan.reserve_s <= budget + 1e-6, (cell, plan)
        doubled = next((other for other_budget, other in plans.items()
                        if math.isclose(other_budget, 2 * budget, rel_tol=1e-9)), None)
        if doubled is None:
            continue
        assert doubled.final_params >= plan.final_params, (cell, format_seconds(budget))
        assert doubled.final_seconds >= plan.final_seconds - 1e-6, (cell, format_seconds(budget), plan, doubled)
    # More budget never screens less once a screen has begun.
    screens = [plan.screen_s for plan in plans.values() if not plan.direct]
    assert screens == sorted(screens), cell


def test_an_uncapped_budget_trains_the_compute_optimal_model_the_whole_time():
    plan = _plan(600, SLOW_CPU, DEMO)
    assert plan.direct and plan.final_params < DEMO_SPACE_MAX and plan.workers == 1
    assert "compute-optimal" in plan.why and plan.trials == 1
    # The final run is all the training time but starting the worker of its first tenth (its screen trial).
    reserve = reserve_seconds(SLOW_CPU, plan.final_params, DEMO["dev_frames"], DEMO["test_frames"], 600)
    evaluating = FINAL_EVALUATIONS * SLOW_CPU.predict_seconds(plan.final_params, DEMO["dev_frames"])
    assert plan.reserve_s == pytest.approx(reserve)
    assert plan.final_seconds == pytest.approx(600 - 30 - reserve - evaluating - WORKER_START_S)
    assert plan.trial_seconds == pytest.approx(0.1 * plan.final_seconds)
    # Sized on the time before predicting and its evaluations are priced: a little under the target.
    frames = plan.final_seconds / SLOW_CPU.seconds_per_frame(plan.final_params, 1024)
    assert FRAMES_PER_PARAM * 0.85 < frames / plan.final_params <= FRAMES_PER_PARAM


def test_a_capped_budget_gives_the_final_run_half_and_screens_whole_runs_of_an_eighth_of_it():
    plan = _plan(1500, CPU, DEMO, param_limit=1_000_000)
    assert not plan.direct and plan.final_params == plan.size_cap == 1_000_000
    training = plan.budget_s - plan.prepare_s - plan.reserve_s - FINAL_EVALUATIONS * CPU.predict_seconds(
        1_000_000, DEMO["dev_frames"])
    assert plan.final_seconds == pytest.approx(0.5 * training)
    assert plan.screen_s == pytest.approx(0.5 * training)
    assert plan.trial_seconds == pytest.approx(plan.final_seconds / HORIZON_RATIO)
    # On a CPU the workers take turns on its cores: the screen holds its time over a trial, both workers together.
    assert 6 <= plan.trials <= HORIZON_RATIO
    assert plan.final_epochs > SATURATION_FRAMES_PER_PARAM * 1_000_000 / DEMO["train_frames"] - 1e-9
    assert plan.stage_end("screen") == pytest.approx(plan.prepare_s + plan.screen_s)
    assert plan.stage_end("final") == pytest.approx(1500 - fixed_reserve_seconds(1500, **_dev_test(), decode=True))
    assert plan.stage_end("outputs") == 1500
    assert plan.latest_screen_end() > plan.stage_end("screen")
    assert "screen" in dict(plan.describe()) and "about" in dict(plan.describe())["screen"]
    # Ten minutes of the same cap still need every minute for the model: no screen.
    assert _plan(600, CPU, DEMO, param_limit=1_000_000).direct


def _dev_test() -> dict:
    return dict(dev_frames=DEMO["dev_frames"], test_frames=DEMO["test_frames"])


def test_eighty_minutes_of_the_demo_study_train_the_largest_model_for_many_epochs_not_full_epochs():
    # Issue 34: the planner of e794209 gave this budget a final run of 3 epochs ([fidelity] full_epochs), an eighth
    # of what 60 minutes gave it. Now the final run's length grows with the budget.
    for speed in (CPU, SLOW_CPU):
        sixty = _plan(3600, speed, DEMO)
        eighty = _plan(4800, speed, DEMO)
        assert eighty.final_params >= sixty.final_params and eighty.final_seconds >= sixty.final_seconds
        assert eighty.final_epochs > 12, eighty


def test_the_shipped_studies_bounds_are_the_ones_these_plans_use():
    from phonetune.job.screen import warm_start_reach
    from phonetune.search.config import load_study_config
    from phonetune.search.space_sizes import largest_model_of_space

    demo = load_study_config(str(REPO / "studies" / "demo.toml"))
    default = load_study_config(str(REPO / "studies" / "default.toml"))
    assert (largest_model_of_space(demo), warm_start_reach(demo)) == (DEMO_SPACE_MAX, DEMO_REACH)
    assert (largest_model_of_space(default), warm_start_reach(default)) == (DEFAULT_SPACE_MAX, DEFAULT_REACH)


def test_a_direct_plan_past_what_its_warm_start_can_become_trains_that_model_for_longer():
    # The 40-minute cell of the 20M-rule budget curve (BENCHMARKS.md): the plan priced 4.9M parameters, but the expert,
    # kept at its three hidden layers, stops at 3.6M at the space's widest base_width, so the job trained a model
    # it had not priced. A plan prices what its warm start can become; past that, more budget is more epochs of it.
    for speed in (CPU, SLOW_CPU):
        for budget in (40 * 60, 80 * 60, 4 * 3600):
            free = _plan(budget, speed, DEMO, reachable_params=0)
            plan = _plan(budget, speed, DEMO)
            assert plan.direct and plan.final_params == min(free.final_params, DEMO_REACH), (speed, budget)
            if free.final_params > DEMO_REACH:
                assert plan.final_seconds > free.final_seconds and plan.final_epochs > free.final_epochs
                assert f"can become at most {DEMO_REACH:,} parameters" in plan.why and "that model trains" in plan.why
                assert plan.reserve_s < free.reserve_s  # a smaller model predicts faster
    # Four hours on this machine is past the reach: all of that time goes to the reachable model.
    assert _plan(4 * 3600, CPU, DEMO).final_params == DEMO_REACH
    assert _plan(4 * 3600, CPU, DEMO).final_epochs > 2 * _plan(2 * 3600, CPU, DEMO).final_epochs * 0.9


def test_the_documented_h200_preview_runs_from_a_checkout_and_plans_as_these_tests_do():
    # README and docs/gpu.md show `phonetune plan --speed studies/speeds/h200.json --frames hw1p2`; the file was
    # ignored by git (/studies/*/) and so missing from every clone.
    import json
    import subprocess
    import sys

    from phonetune.job.run import plan_sizes
    from phonetune.search.config import load_study_config

    tracked = subprocess.run(["git", "ls-files", "--error-unmatch", "studies/speeds/h200.json"], cwd=REPO,
                             capture_output=True, text=True, timeout=60)
    assert tracked.returncode == 0, tracked.stderr
    done = subprocess.run([sys.executable, "-m", "phonetune.cli", "plan", "--config", "studies/default.toml",
                           "--budget", "6h", "--speed", "studies/speeds/h200.json", "--frames", "hw1p2", "--json"],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "A new study created" not in done.stderr  # Optuna's own log lines are routed as in every command
    previewed = Plan.from_dict(json.loads(done.stdout), "phonetune plan --json")
    assert Speed(**previewed.speed) == H200
    config = load_study_config(str(REPO / "studies" / "default.toml"))
    sizes = plan_sizes(config, (previewed.train_frames, previewed.dev_frames, previewed.test_frames), 1)
    assert sizes["max_params"] == DEFAULT_SPACE_MAX and sizes["reachable_params"] == DEFAULT_REACH
    assert previewed == make_plan(6 * 3600, H200, elapsed_s=60.0, **sizes)
    assert not previewed.direct and previewed.final_params == 20_000_000 and previewed.trials > 20


def test_six_hours_on_an_h200_train_20m_for_a_decided_length_and_screen_hundreds_of_trials():
    # Issue 34: e794209's planner gave this job a 7.4-minute final run (25 epochs, [fidelity] full_epochs) whatever
    # the budget. Now the final run grows with the square root of the budget past saturation.
    six = _plan(6 * 3600, H200, HW1P2, max_params=DEFAULT_SPACE_MAX, batch_size=8192, workers=1, elapsed_s=120)
    three = _plan(3 * 3600, H200, HW1P2, max_params=DEFAULT_SPACE_MAX, batch_size=8192, workers=1, elapsed_s=120)
    assert six.final_params == 20_000_000 and not six.direct
    assert six.final_seconds > three.final_seconds > 15 * 60
    assert six.final_seconds == pytest.approx(three.final_seconds * math.sqrt(2), rel=0.02)
    assert 60 < six.final_epochs < 400
    assert six.trials > 50 and six.screen_s > 4 * 3600
    assert "square root" in six.why


def test_an_unmeetable_budget_is_one_named_error_with_the_budget_that_would_do():
    slow = Speed(fixed=1e-3, per_param=1e-9, device="cpu")  # 1,000 frames/s at best
    with pytest.raises(BudgetError, match=r"--budget 40 s cannot be met on this machine.*at least"):
        make_plan(40, slow, **DEMO, param_limit=20_000_000, batch_size=1024, workers=1, elapsed_s=20,
                  min_params=50_000)


def test_a_state_files_plan_with_wrong_types_is_a_named_error():
    plan = _plan(1500, CPU, DEMO, param_limit=1_000_000)
    assert Plan.from_dict(plan.to_dict(), "state.json") == plan
    for key, value in (("budget_s", "abc"), ("final_params", None), ("screen_s", -5), ("why", 3)):
        broken = {**plan.to_dict(), key: value}
        with pytest.raises(ConfigError, match=rf"state.json.*plan\.{key}"):
            Plan.from_dict(broken, "state.json")
    with pytest.raises(ConfigError, match="plan must be a table"):
        Plan.from_dict("x", "state.json")
    with pytest.raises(ConfigError, match=r"plan\.kind must be 'direct' or 'screened', but got 'both'"):
        Plan.from_dict({**plan.to_dict(), "kind": "both"}, "state.json")
    with pytest.raises(ConfigError, match=r"plan\.budget_s must be a number, but got True"):
        Plan.from_dict({**plan.to_dict(), "budget_s": True}, "state.json")


def test_the_decode_is_priced_only_when_it_runs():
    with_decode = _plan(1500, CPU, DEMO, param_limit=1_000_000)
    without = _plan(1500, CPU, DEMO, param_limit=1_000_000, decode=False)
    saved = decode_seconds(DEMO["dev_frames"], DEMO["test_frames"])
    assert with_decode.reserve_s - without.reserve_s == pytest.approx(saved)
    assert without.stage_end("final") - with_decode.stage_end("final") == pytest.approx(saved)


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


def test_a_stage_reads_its_own_limit_from_the_clock():
    clock = BudgetClock(600, spent_before=100.0)
    limit = TimeLimit("screen", 160.0, clock)
    assert 59.0 < limit.left <= 60.0
    assert limit.deadline == pytest.approx(clock.deadline_at(160.0))
    assert limit.moved_to(200.0).left > 99.0 and limit.moved_to(200.0).stage == "screen"
    saved = []
    with clock.saving(saved.append):
        pass
    assert len(saved) == 1 and 100.0 <= saved[0] < 101.0


def test_a_changed_budget_replans_what_is_left_keeping_the_trial_horizon_and_sizes():
    # Issue 36, item 5: a 6-hour job on an H200, interrupted in its screen after 40 minutes and continued under 3 h.
    six = _plan(6 * 3600, H200, HW1P2, max_params=DEFAULT_SPACE_MAX, batch_size=8192, workers=1, elapsed_s=120)
    assert not six.direct and six.screen_end > 40 * 60
    three = six.rebudgeted(3 * 3600, spent_s=40 * 60, screen_done=False)
    assert three.budget_s == 3 * 3600 and three.stage_end("outputs") == 3 * 3600
    # The trials already run stay comparable: the same horizon, the same sizes.
    assert (three.trial_seconds, three.final_params, three.size_cap, three.kind) == (
        six.trial_seconds, six.final_params, six.size_cap, six.kind)
    # Three hours less come out of the screen's remaining time; the final run keeps its length.
    shortfall = six.stage_end("final") - three.stage_end("final")
    assert three.screen_s == pytest.approx(six.screen_s - shortfall)
    assert three.final_seconds == pytest.approx(six.final_seconds)
    assert three.stage_end("screen") + three.final_seconds <= three.stage_end("final") + 1e-6
    assert three.trials == pytest.approx(six.trials * three.screen_s / six.screen_s)
    assert "--budget 6 h 00 min -> 3 h 00 min at 40 min 00 s spent" in three.why
    assert Plan.from_dict(three.to_dict(), "state") == three  # kept in the state file as any plan

    # With the screen done, less time comes from the final run; more time always goes to it.
    after_screen = six.rebudgeted(5.75 * 3600, spent_s=six.screen_end, screen_done=True)
    assert after_screen.screen_s == six.screen_s
    assert after_screen.final_seconds == pytest.approx(six.final_seconds - (six.stage_end("final")
                                                                            - after_screen.stage_end("final")))
    longer = six.rebudgeted(8 * 3600, spent_s=40 * 60, screen_done=False)
    assert longer.screen_s == six.screen_s and longer.final_seconds > six.final_seconds
    assert longer.final_epochs > six.final_epochs
    assert six.rebudgeted(six.budget_s, spent_s=40 * 60, screen_done=False) is six


def test_a_budget_too_small_for_what_was_spent_is_refused_naming_both_ways_on():
    # Issue 36's case: a --budget 6h job interrupted after a minute, then --budget 2m.
    six = _plan(6 * 3600, H200, HW1P2, max_params=DEFAULT_SPACE_MAX, batch_size=8192, workers=1, elapsed_s=120)
    with pytest.raises(BudgetError) as refused:
        six.rebudgeted(120, spent_s=150, screen_done=False)
    said = str(refused.value)
    assert "--budget 2 min 00 s cannot continue this job" in said and "planned for 6 h 00 min" in said
    assert "Continue it with --budget 6 h 00 min" in said and "--fresh" in said
    # The budget it names as the least does continue the job.
    least = parse_budget(said.split("(or at least ")[1].split(")")[0].replace(" h ", "h").replace(" min", "m")
                         .replace(" s", "s").replace(" ", ""))
    assert six.rebudgeted(least + 60, spent_s=150, screen_done=False).final_seconds > 0
    # A direct plan's shortfall comes from its final run (its screen is that run's first tenth).
    direct = _plan(1200, CPU, DEMO)
    assert direct.direct
    shorter = direct.rebudgeted(900, spent_s=60, screen_done=False)
    assert shorter.screen_s == direct.screen_s and shorter.trial_seconds == direct.trial_seconds
    assert shorter.final_seconds == pytest.approx(direct.final_seconds - (direct.stage_end("final")
                                                                          - shorter.stage_end("final")))


def test_a_direct_plan_says_what_budget_would_screen():
    # Issue 36, item 4: a job with no screen says why, and what budget would search.
    ten = _plan(600, CPU, DEMO, param_limit=1_000_000)
    assert ten.direct
    least = ten.budget_that_screens()
    assert least is not None and least > 600
    assert not _plan(least, CPU, DEMO, param_limit=1_000_000, max_params=0).direct
    assert _plan(0.97 * least, CPU, DEMO, param_limit=1_000_000, max_params=0).direct
    screen = dict(ten.describe())["screen"]
    assert screen == (f"none: the first warm start trains the whole time (a --budget of about "
                      f"{format_seconds(least)} would screen here)")
    screened = _plan(1500, CPU, DEMO, param_limit=1_000_000)
    assert not screened.direct and screened.budget_that_screens() == 1500


def test_a_job_short_of_time_for_its_final_model_goes_without_the_decode_beside_it():
    # The Ctrl-C matrix's last row: interrupted while making its final model, the rerun redid the decode and ended
    # at 1.2 x its budget. With too little time left the decode (labels beside the submission) is dropped.
    from phonetune.job.run import LATE_DECODE_SHARE, without_late_decode
    from phonetune.search.config import load_study_config

    config = load_study_config(str(REPO / "studies" / "demo.toml"))
    assert config.decode.mode == "argmax"
    plan = _plan(120, CPU, DEMO)
    needed = (decode_seconds(DEMO["dev_frames"], DEMO["test_frames"]) + outputs_seconds(120)
              + CPU.predict_seconds(plan.final_params, DEMO["dev_frames"] + DEMO["test_frames"]))
    assert without_late_decode(config, plan, needed) is config
    assert without_late_decode(config, plan, LATE_DECODE_SHARE * needed + 0.1) is config
    assert without_late_decode(config, plan, LATE_DECODE_SHARE * needed - 0.1).decode.mode == "off"
    # A start that redoes the step has paid its restart and is late by the step: it keeps the decode only where all of
    # it fits (the matrix's row again at 1.25 x with the half rule).
    assert without_late_decode(config, plan, needed, redone=True) is config
    assert without_late_decode(config, plan, needed - 0.1, redone=True).decode.mode == "off"
    # A submission that is the decode's own labels (viterbi) keeps it whatever the time.
    viterbi = load_study_config(str(REPO / "studies" / "demo.toml"), ['decode.mode="viterbi"'])
    assert without_late_decode(viterbi, plan, 0.0) is viterbi
