"""The screen as a plan makes it (a direct plan's one trial, the start of its final run; a screened plan's whole runs
at the cap), and its winner when the deadline cut every trial: the furthest cut trial, and when none reported an
evaluation (a busy machine's workers spent the screen starting), the first trial that started, which the final run
then trains from its beginning instead of the job ending with nothing."""

from __future__ import annotations

import dataclasses
import math

import optuna
from optuna.storages import RetryHeartbeatStaleTrialCallback
from corpus import write_tiny_corpus
from search_study import write_study

import pytest

from phonetune.job.planner import make_plan
from phonetune.job.screen import (screen_progress, screen_standings, screen_study, screen_winner,
                                  screened_warm_starts)
from phonetune.model.params import count_params
from phonetune.model.speed import Speed
from phonetune.search.config import load_study_config
from phonetune.search.promote import promote_top_trials
from phonetune.search.space import suggest_run_config, warm_start_params
from phonetune.search.space_spec import Choice
from phonetune.search.study import open_study


def test_a_screen_cut_before_any_evaluation_hands_its_first_trial_to_the_final_run(tmp_path):
    corpus = write_tiny_corpus(tmp_path / "data", n_train=24, n_dev=6, n_test=4)
    # Priced so a trial is ~10 steps of 64 frames and its final run ~50: seconds of CPU.
    path = write_study(tmp_path, corpus.root, **{"timing.trial_seconds": 0.64, "timing.final_seconds": 3.2,
                                                 "timing.speed": {"fixed": 1e-3, "per_param": 0.0, "device": "cpu"},
                                                 "timing.continues": True, "timing.evaluations": 2,
                                                 "space.hidden_layers": 1, "space.batch_size": 64})
    config = load_study_config(path)
    study = open_study(config, create=True)
    for _ in range(2):  # two trials the deadline cut before their first evaluation
        trial = study.ask()
        suggest_run_config(trial, config)
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
    study.enqueue_trial({})  # and a re-queued retry that never ran
    winner = screen_winner(config)
    assert winner is not None and winner.number == 0 and not winner.intermediate_values
    standings = screen_standings(config, [])  # the summary of such a screen: no accuracy, and no error
    assert standings["winner"]["trial"] == 0 and standings["winner"]["screen_accuracy"] is None

    result = promote_top_trials(config, 1, source_numbers=[winner.number], progress=False)
    (promoted,) = result.promoted
    assert promoted.source_number == 0 and math.isnan(promoted.search_accuracy)
    assert 0.0 < promoted.full_accuracy <= 1.0 and (promoted.checkpoint_dir / "best.pt").is_file()


def test_screen_progress_counts_a_retrys_inherited_evaluations_once(tmp_path):
    """The screen's extensions are paid only for progress: evaluations a retry inherits from the attempt it
    continues are not new ones."""
    corpus = write_tiny_corpus(tmp_path / "data", n_train=8, n_dev=4, n_test=4)
    config = load_study_config(write_study(tmp_path, corpus.root))
    study = open_study(config, create=True)
    first = study.ask()
    first.report(0.4, 0)
    first.report(0.5, 1)
    study.tell(first, state=optuna.trial.TrialState.FAIL)
    assert screen_progress(config) == 2
    # What a worker's stale-trial handling does (search/storage/heartbeats.py): the failed attempt re-queued; the
    # retry resumes from its checkpoint and reports the evaluations it carries again.
    RetryHeartbeatStaleTrialCallback(inherit_intermediate_values=False)(study, study.trials[0])
    retry = study.ask()
    assert retry.study.trials[1].system_attrs["retry_history"] == [0]
    retry.report(0.4, 0)
    retry.report(0.5, 1)
    assert screen_progress(config) == 2  # the same evaluations again are no progress
    retry.report(0.6, 2)
    assert screen_progress(config) == 3
    other = study.ask()
    other.report(0.3, 0)
    assert screen_progress(config) == 4


CPU = Speed(fixed=0.0, per_param=3.3e-11, device="cpu", per_step=4.6e-3)
DEMO = dict(train_frames=977_855, dev_frames=146_806, test_frames=142_398)


def test_a_direct_plan_screens_the_first_warm_start_alone_at_the_planned_size_as_its_final_runs_start():
    config = load_study_config("studies/demo.toml", ["study.param_limit=20_000_000"])
    plan = make_plan(600, CPU, **DEMO, param_limit=20_000_000, batch_size=1024, workers=2, elapsed_s=20)
    assert plan.direct
    alone = screen_study(config, plan)
    (only,) = alone.warm_start  # the starter has no hidden layer: never screened
    assert only.name.startswith("expert@") and alone.study.n_trials == 1
    assert alone.sampler.target_params == plan.final_params and alone.timing.continues
    assert alone.timing.trial_seconds == pytest.approx(0.1 * plan.final_seconds)
    run_config = suggest_run_config(_enqueued(alone), alone)
    assert count_params(run_config.model, run_config.io) <= plan.final_params
    assert run_config.train.pause_at_step > 0 and run_config.train.hold_steps > 0  # held at its peak, to continue


def test_a_direct_plan_trains_the_size_it_priced_growing_the_warm_start_in_depth_past_its_widest():
    # The 20M-rule budget curve at 40 minutes planned 4.9M parameters and trained the expert at 3.6M, its size at the
    # space's widest base_width (1024) with its three hidden layers. The warm start now grows a layer at a time
    # within hidden_layers, and the plan prices no more than it can become.
    from phonetune.job.run import plan_sizes
    from phonetune.job.screen import likeliest_final_run, warm_start_reach

    config = load_study_config("studies/demo.toml")
    sizes = plan_sizes(config, (DEMO["train_frames"], DEMO["dev_frames"], DEMO["test_frames"]), 2)
    reach = sizes["reachable_params"]
    assert reach == warm_start_reach(config) > 4_000_000
    depths = []
    for minutes in (10, 20, 40, 60, 80, 160, 480):
        plan = make_plan(minutes * 60, CPU, **sizes, elapsed_s=30)
        assert plan.direct
        run_config = likeliest_final_run(config, plan)
        trained = count_params(run_config.model, run_config.io)
        # Widths are multiples of 8: the model is within a few percent under the priced size, never over it.
        assert 0.97 * plan.final_params <= trained <= plan.final_params, (minutes, trained, plan.final_params)
        assert run_config.model.width_shape == "cylinder" and run_config.model.activation == "gelu"
        depths.append((run_config.model.hidden_layers, run_config.model.base_width))
    assert depths == sorted(depths) and depths[0] == (3, depths[0][1]) and depths[-1] == (4, 1024)
    # The space's depth bounds it: a space of at most three hidden layers keeps the expert at its widest.
    shallow = load_study_config("studies/demo.toml", ["space.hidden_layers.high=3"])
    plan = make_plan(480 * 60, CPU, **plan_sizes(shallow, tuple(DEMO.values()), 2), elapsed_s=30)
    run_config = likeliest_final_run(shallow, plan)
    assert (run_config.model.hidden_layers, run_config.model.base_width) == (3, 1024)
    assert count_params(run_config.model, run_config.io) == plan.final_params


def test_a_screened_plan_trains_whole_runs_at_the_cap_with_the_horizon_schedules():
    config = load_study_config("studies/demo.toml", ["study.param_limit=1_000_000"])
    plan = make_plan(1800, CPU, **DEMO, param_limit=1_000_000, batch_size=1024, workers=2, elapsed_s=20)
    assert not plan.direct and plan.final_params == 1_000_000
    screen = screen_study(config, plan)
    assert screened_warm_starts(config) == 1
    (expert,) = screen.warm_start
    assert expert.name == "expert@985k" and expert.values["scheduler"] == "onecycle"
    assert screen.space["scheduler"].options() == ["linear", "cosine", "onecycle"]
    assert screen.pruner.kind == "none" and not screen.timing.continues and screen.study.param_limit == 1_000_000
    assert screen.sampler.kind == "prior" and screen.sampler.target_params == 1_000_000
    run_config = suggest_run_config(_enqueued(screen), screen)
    train = run_config.train
    steps = CPU.steps_in(plan.trial_seconds, count_params(run_config.model, run_config.io), train.batch_size)
    assert train.total_steps == steps and train.pause_at_step == 0 and train.hold_steps == 0
    assert train.scheduler == "onecycle" and train.warmup_steps == round(0.3 * steps)
    assert train.eval_every_steps * screen.timing.evaluations >= steps
    # Its promoted (final) run is a whole run too, of the final horizon.
    final = suggest_run_config(_enqueued(screen), screen, "full")
    assert final.train.total_steps == CPU.steps_in(plan.final_seconds, count_params(final.model, final.io),
                                                   final.train.batch_size)
    # A study that fixes a horizon schedule keeps it, for its warm starts too.
    fixed = dataclasses.replace(config, space={**config.space, "scheduler": Choice(value="cosine")})
    fixed_screen = screen_study(fixed, plan)
    assert fixed_screen.space["scheduler"].options() == ["cosine"]
    assert fixed_screen.warm_start[0].values["scheduler"] == "cosine"


def _enqueued(config) -> optuna.Trial:
    study = optuna.create_study(direction="maximize")
    study.enqueue_trial(warm_start_params(config, config.warm_start[0]))
    return study.ask()


def test_a_screen_stops_paying_when_its_searched_trials_beat_no_warm_start():
    from optuna.trial import TrialState, create_trial

    from phonetune.job.screen import MIN_SEARCH_GAIN, SEARCHED_BEFORE_JUDGING, search_not_paying
    from phonetune.search import attributes as attrs

    def trial(value, warm=None, state=TrialState.COMPLETE):
        return create_trial(state=state, value=value if state == TrialState.COMPLETE else None,
                            user_attrs={attrs.WARM_START: warm} if warm else {})

    warm = [trial(0.80, "expert@985k")]
    losers = [trial(0.80 + MIN_SEARCH_GAIN / 2) for _ in range(SEARCHED_BEFORE_JUDGING)]
    assert search_not_paying(warm + losers[:-1]) is None  # not yet its chance
    assert search_not_paying(warm + losers[:-1] + [trial(None, state=TrialState.RUNNING)]) is None
    reason = search_not_paying(warm + losers)
    assert reason and f"{SEARCHED_BEFORE_JUDGING} searched trials found nothing better" in reason
    assert search_not_paying(warm + losers + [trial(0.80 + MIN_SEARCH_GAIN)]) is None  # one gain is enough
    assert search_not_paying(losers + losers) is None  # no warm start completed: nothing to judge against
