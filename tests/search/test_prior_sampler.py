"""The prior sampler on the shipped demo study's space: mutations of the incumbent at a fixed parameter count first,
the base sampler's exploration as evidence accumulates, warm starts untouched."""

from __future__ import annotations

import optuna
import pytest
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


def test_without_prior_weight_the_base_sampler_proposes_every_trial_at_the_target_size():
    study, config = _study(prior_weight=0.0)
    trials = _run(study, config, 8, lambda run_config, trial: 0.5)
    assert not any(attrs.MUTATED_FROM in trial.user_attrs for trial in trials)
    structures = {(t.params.get("hidden_layers"), t.params.get("context_frames")) for t in trials[2:]}
    assert len(structures) > 3  # TPE's random start draws structures all over the space...
    for trial in trials[2:]:  # ...each at the width that gives it the target size, unless the space's widest
        if trial.params.get("hidden_layers", 0) > 0:  # width (1024) is smaller (one without hidden layers has none)
            count, width = trial.user_attrs[attrs.PARAM_COUNT], trial.user_attrs[attrs.BASE_WIDTH]
            assert 0.85 * TARGET <= count <= TARGET or (width == 1024 and count <= TARGET), trial.params
    # Without a target, the width is the base sampler's too.
    study, config = _study(prior_weight=0.0, target=0)
    trials = _run(study, config, 8, lambda run_config, trial: 0.5)
    sizes = {trial.user_attrs[attrs.PARAM_COUNT] for trial in trials[2:] if trial.params.get("hidden_layers", 0)}
    assert max(sizes) > 2 * min(sizes)


def test_moves_step_from_the_incumbent_repeat_a_winning_move_and_only_raise_regularization():
    study, config = _study(prior_weight=1e9)
    expert = "expert"

    def value(run_config, trial) -> float:
        # The expert scores 0.80; doubling its learning rate wins once (0.82), doubling it again loses.
        if trial.user_attrs.get(attrs.WARM_START) == expert:
            return 0.80
        return 0.82 if trial.number == 2 else 0.5

    trials = _run(study, config, 12, value)
    by_number = {trial.number: trial for trial in trials}
    expert_trial = next(trial for trial in trials if trial.user_attrs.get(attrs.WARM_START) == expert)
    moves = [(trial.user_attrs.get(attrs.MUTATED_FROM), trial.user_attrs.get(attrs.MOVE)) for trial in trials[2:]]
    # The starter (trial 0) scored 0.5 as everything else; the expert leads, and its first move doubles the rate.
    assert moves[0] == (expert_trial.number, "lr up")
    first = by_number[2]
    assert first.params["lr"] == pytest.approx(2 * expert_trial.params["lr"])
    assert {name for name in first.params if first.params[name] != expert_trial.params.get(name)} <= {"lr", "width_fraction"}
    # Trial 2 won: it is the incumbent now, the move that made it is taken again first, and its reverse never.
    assert moves[1] == (2, "lr up") and (2, "lr down") not in moves
    assert by_number[3].params["lr"] == pytest.approx(min(4 * expert_trial.params["lr"], 1e-2))
    # Then the other moves of trial 2, in order; regularizers only ever move up, and every model is at the target.
    names = [move for parent, move in moves[2:] if parent == 2]
    assert names[:2] == ["context_frames up", "context_frames down"] and "dropout up" in names
    assert not any(move.endswith("down") and move.split()[0] in ("dropout", "label_smoothing", "weight_decay")
                   for _parent, move in moves)
    for trial in trials[2:]:
        if trial.params.get("hidden_layers", 0) > 0:
            assert 0.85 * TARGET <= trial.user_attrs[attrs.PARAM_COUNT] <= TARGET


def test_a_second_worker_moves_the_warm_start_before_it_has_been_set_up():
    """Two workers: the second asks while the first has taken the warm start but not yet sampled it. Its trial is
    a move of that warm start, not a random draw."""
    study, config = _study(prior_weight=1e9)
    starter = study.ask()  # the starter warm start, asked and not yet sampled
    expert = study.ask()  # the expert warm start, likewise
    second = study.ask()
    suggest_run_config(second, config)
    frozen = study.trials[second.number]
    assert frozen.user_attrs[attrs.MUTATED_FROM] == starter.number and frozen.user_attrs[attrs.MOVE] == "lr up"
    assert frozen.params["lr"] == pytest.approx(2 * 1e-3)  # the starter's 1e-3, doubled
    for trial in (starter, expert):
        suggest_run_config(trial, config)
