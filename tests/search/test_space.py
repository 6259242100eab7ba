"""The budget-aware space: thousands of sampled configurations (1000 per budget, two budgets), every one under the budget, every choice seen."""

from __future__ import annotations

import collections
import warnings

import optuna
import pytest
from shared import REPO

from phonetune.model import count_params
from phonetune.model.config import ModelConfig
from phonetune.search.config import load_study_config
from phonetune.search.space import run_config_from_params, suggest_run_config, warm_start_params, width_from_fraction
from phonetune.search.space_spec import unused_params


def sample(config, sampler, count):
    """(run configs, trials) drawn through study.ask() on an in-memory study, without training."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    drawn = []
    for _ in range(count):
        trial = study.ask()
        run_config = suggest_run_config(trial, config)
        # Any deterministic score lets TPE model something; bigger models scoring higher pushes it to the bound.
        study.tell(trial, count_params(run_config.model, run_config.io) / config.param_limit)
        drawn.append((run_config, trial))
    return drawn, study


@pytest.mark.parametrize("budget", [20_000_000, 2_000_000])
def test_thousands_of_random_samples_fit_the_budget_and_cover_the_space(budget):
    config = load_study_config(REPO / "studies" / "default.toml", [f"study.param_limit={budget}"])
    drawn, study = sample(config, optuna.samplers.RandomSampler(seed=budget), 1000)
    counts = [count_params(run.model, run.io) for run, _ in drawn]
    assert max(counts) <= budget
    assert all(run.io.input_dim == (2 * run.data.context_frames + 1) * 28 for run, _ in drawn)
    for (run, _), frozen in zip(drawn, study.trials):
        assert frozen.user_attrs["param_count"] == count_params(run.model, run.io)
        assert frozen.user_attrs["base_width"] == run.model.base_width
    seen = collections.defaultdict(set)
    for run, _ in drawn:
        for section in (run.data, run.model, run.train):
            for name, value in vars(section).items():
                if isinstance(value, (str, int, bool)):
                    seen[name].add(value)
    for name, spec in config.space.items():
        if hasattr(spec, "choices") and not spec.is_fixed():
            assert seen[name] == set(spec.choices), name
    low, high = config.space["hidden_layers"].bounds()
    assert seen["hidden_layers"] == set(range(low, high + 1))
    assert {0, 50} <= seen["context_frames"]
    # The budget binds: some models come within 10% of it (the width bound is used, not just the requested range).
    assert max(counts) > 0.9 * budget or budget == 20_000_000 and max(counts) > 0.5 * budget


def test_tpe_with_constant_liar_stays_under_the_budget():
    config = load_study_config(REPO / "studies" / "demo.toml")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        sampler = optuna.samplers.TPESampler(seed=0, multivariate=True, group=True, constant_liar=True,
                                             n_startup_trials=10)
    drawn, study = sample(config, sampler, 120)
    assert max(count_params(run.model, run.io) for run, _ in drawn) <= config.param_limit
    # The space is conditional: momentum is drawn exactly for the optimizers that use it, and no trial holds a
    # parameter its model ignores (so Optuna, the dashboard, the report and the sheet show the same ones).
    for frozen in study.trials:
        assert ("momentum" in frozen.params) == (frozen.params["optimizer"] in ("sgd_nesterov", "rmsprop"))
        assert not unused_params(frozen.params), frozen.params
    depths = collections.Counter(frozen.params["hidden_layers"] for frozen in study.trials)
    assert depths[0] and depths[1], "the sample must hold models without and with one hidden layer"
    for frozen in study.trials:
        if frozen.params["hidden_layers"] == 0:
            assert not {"activation", "batchnorm", "dropout", "width_shape", "width_fraction"} & set(frozen.params)
        if frozen.params["hidden_layers"] == 1:
            assert "width_shape" not in frozen.params and "activation" in frozen.params


def test_a_warm_start_without_hidden_layers_draws_nothing_its_model_ignores_and_old_trials_still_replay():
    config = load_study_config(REPO / "studies" / "demo.toml")
    (starter,) = [entry for entry in config.warm_start if entry.name == "starter"]
    # demo.toml's starter sets batch norm and dropout for a model that has no layer to put them on.
    assert starter.values["hidden_layers"] == 0 and {"batchnorm", "dropout"} <= set(starter.values)
    params = warm_start_params(config, starter)
    assert not {"batchnorm", "dropout", "activation", "width_shape"} & set(params)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
    study.enqueue_trial(params)
    trial = study.ask()
    run = suggest_run_config(trial, config)
    assert trial.params == params  # nothing else was drawn: every other hyperparameter the starter ignores
    assert run.model == ModelConfig(hidden_layers=0, base_width=run.model.base_width, init="default")
    assert run.data.context_frames == 20 and run.train.optimizer == "adam" and run.train.lr == 1e-3

    # A trial of an older study drew an activation and batch norm for its starter; it replays as it trained.
    old = {**params, "activation": "tanh", "batchnorm": "after", "batchnorm_layers": "alternate",
           "width_shape": "pyramid", "init": "kaiming_normal"}
    replayed = run_config_from_params(config, old, fidelity="search")
    assert (replayed.model.activation, replayed.model.batchnorm, replayed.model.width_shape) == (
        "tanh", "after", "pyramid")
    assert replayed.model.init == "kaiming_normal" and replayed.model.hidden_layers == 0


def test_a_finished_trial_replays_to_the_same_run_config():
    config = load_study_config(REPO / "studies" / "demo.toml")
    drawn, study = sample(config, optuna.samplers.RandomSampler(seed=3), 40)
    for (run, _), frozen in zip(drawn, study.trials):
        replayed = run_config_from_params(config, frozen.params, fidelity="search")
        assert replayed == run
    full = run_config_from_params(config, study.trials[0].params, fidelity="full")
    assert full.train.epochs == config.fidelity.full_epochs and full.data.train_fraction == 1.0
    assert full.model == drawn[0][0].model


def test_width_fraction_maps_onto_multiples_of_eight_within_bounds():
    assert width_from_fraction(0.0, 64, 1024, log=True) == 64
    assert width_from_fraction(1.0, 64, 1024, log=True) == 1024
    assert width_from_fraction(0.5, 64, 1024, log=True) == 256  # geometric middle
    assert width_from_fraction(0.5, 64, 1024, log=False) == 544
    assert width_from_fraction(0.7, 64, 56, log=True) == 56  # bound below the requested low: the bound wins
