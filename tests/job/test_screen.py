"""The screen's winner when the deadline cut every trial: the furthest cut trial, and when none reported an
evaluation (a busy machine's workers spent the screen starting), the first trial that started, which the final run
then trains from its beginning instead of the job ending with nothing."""

from __future__ import annotations

import dataclasses
import math

import optuna
from corpus import write_tiny_corpus
from search_study import write_study

from phonetune.job.planner import make_plan
from phonetune.job.screen import (RESIZE_FACTOR, recipe_sizes, screen_recipes, screen_standings, screen_study,
                                  screen_winner)
from phonetune.model.speed import Speed
from phonetune.search.config import load_study_config
from phonetune.search.promote import promote_top_trials
from phonetune.search.space import suggest_run_config
from phonetune.search.study import open_study


def test_a_screen_cut_before_any_evaluation_hands_its_first_trial_to_the_final_run(tmp_path):
    corpus = write_tiny_corpus(tmp_path / "data", n_train=24, n_dev=6, n_test=4)
    # Priced so a trial is ~10 steps of 64 frames and its final run ~50: seconds of CPU.
    path = write_study(tmp_path, corpus.root, **{"timing.trial_seconds": 0.64, "timing.final_seconds": 3.2,
                                                 "timing.seconds_per_frame": 1e-3, "timing.evaluations": 2,
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


def test_a_direct_plan_screens_the_first_recipe_alone_at_the_planned_size():
    config = load_study_config("studies/demo.toml")
    cpu = Speed(fixed=5e-7, per_param=7.5e-11, device="cpu")
    sizes = dict(train_frames=977_855, dev_frames=146_806, test_frames=142_398, param_limit=20_000_000,
                 max_epochs=25, batch_size=1024, workers=2, elapsed_s=20)
    screened = make_plan(600, cpu, **sizes)
    full = screen_study(config, screened)
    # The expert as written and resized to the plan; the starter (no hidden layer) is not screened.
    assert [entry.name for entry in full.warm_start][1:] == ["expert"] and full.study.n_trials == 0
    assert screen_recipes(config, screened) == 2
    direct = make_plan(600, cpu, **sizes, recipes=screen_recipes(config, screened))
    assert direct.direct
    alone = screen_study(config, direct)
    (only,) = alone.warm_start
    assert only.name.startswith("expert@") and alone.study.n_trials == 1
    assert alone.sampler.target_params == direct.final_params


def test_a_recipe_is_screened_resized_only_when_the_planned_size_is_far_from_its_own():
    config = load_study_config("studies/demo.toml")
    cpu = Speed(fixed=5e-7, per_param=7.5e-11, device="cpu")
    plan = make_plan(600, cpu, train_frames=977_855, dev_frames=146_806, test_frames=142_398,
                     param_limit=20_000_000, max_epochs=25, batch_size=1024, workers=2, elapsed_s=20)
    (own,) = [size for entry, size in zip(config.warm_start, recipe_sizes(config)) if entry.name == "expert"]

    def screened(final_params: int, direct: bool = False) -> list[str]:
        sized = dataclasses.replace(plan, final_params=final_params, direct=direct)
        return [entry.name for entry in screen_study(config, sized).warm_start]

    near = int(own * 1.2)  # within RESIZE_FACTOR either way: the recipe as written, never a copy of nearly its size
    assert screened(near) == ["expert"] and screened(near, direct=True) == ["expert"]
    assert screened(int(own / 1.2)) == ["expert"]
    # Far larger: the expert's width is already the space's bound, so it cannot grow and is screened as written
    # (it once vanished from the screen: neither resized nor as written).
    far = int(own * RESIZE_FACTOR * 1.1)
    assert config.space["base_width"].bounds()[1] == 1024 and screened(far) == ["expert"]
    assert screened(far, direct=True) == ["expert"]
    # With room to grow, the copy at the planned size stands in for it (a short trial would favour the smaller).
    wider = dict(config.space, base_width=dataclasses.replace(config.space["base_width"], high=4096))
    config = dataclasses.replace(config, space=wider)
    larger = screened(far)
    assert len(larger) == 1 and larger[0].startswith("expert@")
    smaller = screened(int(own / RESIZE_FACTOR / 1.1))  # far smaller: resized down, and as written beside it
    assert len(smaller) == 2 and smaller[0].startswith("expert@") and smaller[1] == "expert"
    assert screened(int(own / RESIZE_FACTOR / 1.1), direct=True) == smaller[:1]
