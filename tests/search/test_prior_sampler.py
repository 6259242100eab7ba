"""The prior sampler on the shipped demo study's space: mutations of the incumbent at a fixed parameter count first,
the base sampler's exploration as evidence accumulates, warm starts untouched."""

from __future__ import annotations

import optuna
from shared import REPO

from phonetune.model.params import count_params
from phonetune.search import attributes as attrs
from phonetune.search.config import load_study_config
from phonetune.search.space import suggest_run_config
from phonetune.search.study import create_sampler, enqueue_warm_starts

TARGET = 1_200_000


def _study(prior_weight: float, target: int = TARGET) -> tuple[optuna.Study, object]:
    config = load_study_config(REPO / "studies" / "demo.toml", [
        'sampler.kind="prior"', f"sampler.prior_weight={prior_weight}", f"sampler.target_params={target}",
        "study.param_limit=4000000",
    ])
    study = optuna.create_study(direction="maximize", sampler=create_sampler(config))
    enqueue_warm_starts(study, config)
    return study, config


def _run(study, config, trials: int, value) -> list[optuna.trial.FrozenTrial]:
    for _ in range(trials):
        trial = study.ask()
        run_config = suggest_run_config(trial, config)
        study.tell(trial, value(run_config, trial))
    return study.get_trials(deepcopy=False)


def test_trials_mutate_the_incumbent_in_a_few_parameters_at_the_target_size():
    study, config = _study(prior_weight=1e9)
    # The expert warm start scores best, so every sampled trial mutates it (prior weight so large the base never runs).
    trials = _run(study, config, 12, lambda run_config, trial: 0.8 if trial.user_attrs.get(attrs.WARM_START) == "expert"
                  else 0.5)
    expert = next(trial for trial in trials if trial.user_attrs.get(attrs.WARM_START) == "expert")
    assert expert.user_attrs[attrs.BASE_WIDTH] == 1024  # the warm start keeps its own size
    sampled = [trial for trial in trials if attrs.WARM_START not in trial.user_attrs]
    assert len(sampled) == 10
    for trial in sampled:
        assert trial.user_attrs[attrs.MUTATED_FROM] == expert.number
        # A parameter the expert's model ignores (a mask width at mask probability 0) is not among its params; one
        # that a mutation makes apply is drawn fresh, which is no mutation of the expert's.
        changed = {name for name in trial.params if name != "width_fraction" and name in expert.params
                   and trial.params[name] != expert.params[name]}
        assert 1 <= len(changed) <= 4, changed
        for name in changed & {"lr", "dropout", "label_smoothing", "context_frames"}:
            before, after = expert.params[name], trial.params[name]
            low, high = config.space[name].bounds()
            # A move large enough to matter: a factor of 1.28 on a log scale, a tenth of the range otherwise.
            if name == "lr":
                assert max(after / before, before / after) > 1.27 or after in (low, high), (name, before, after)
            else:
                assert abs(after - before) >= 0.1 * (high - low) - 1e-9 or after in (low, high), (name, before, after)
        if trial.params.get("hidden_layers", 0) > 0:
            params = trial.user_attrs[attrs.PARAM_COUNT]
            # The largest width (a multiple of 8) within the target: a step of 8 more would pass it.
            assert 0.85 * TARGET <= params <= TARGET, params


def test_mutations_grow_bolder_while_the_incumbent_holds():
    study, config = _study(prior_weight=1e9, target=0)
    trials = _run(study, config, 16, lambda run_config, trial: 0.9 if trial.number == 0 else 0.1)
    parent = trials[0]
    changes = [sum(1 for name in trial.params if trial.params[name] != parent.params.get(name))
               for trial in trials[2:]]
    assert max(changes[-4:]) > max(changes[:3])  # more parameters move once several trials failed to improve


def test_without_prior_weight_the_base_sampler_proposes_every_trial():
    study, config = _study(prior_weight=0.0)
    trials = _run(study, config, 8, lambda run_config, trial: 0.5)
    assert not any(attrs.MUTATED_FROM in trial.user_attrs for trial in trials)
    sizes = {count_params(suggest_run_config(optuna.trial.FixedTrial(t.params), config).model,
                          suggest_run_config(optuna.trial.FixedTrial(t.params), config).io) for t in trials[2:]}
    assert len(sizes) > 3  # TPE's random start draws widths all over the range, not one target size
