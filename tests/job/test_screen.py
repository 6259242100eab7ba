"""The screen's winner when the deadline cut every trial: the furthest cut trial, and when none reported an
evaluation (a busy machine's workers spent the screen starting), the first trial that started, which the final run
then trains from its beginning instead of the job ending with nothing."""

from __future__ import annotations

import math

import optuna
from corpus import write_tiny_corpus
from search_study import write_study

from phonetune.job.screen import screen_standings, screen_winner
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
