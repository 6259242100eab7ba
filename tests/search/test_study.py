"""Promises of the study settings, in real runs: ASHA and Hyperband prune real trials at their rungs, and a trial
whose workers keep dying is retried ``max_retry`` times, then left failed; one that dies twice at the same point is
not retried a third time, unless the user's Ctrl-C stopped it."""

from __future__ import annotations

import time

import pytest
from optuna.trial import TrialState
from search_study import write_study

from phonetune.search import attributes as attrs
from phonetune.search.config import load_study_config
from phonetune.search.storage import HEARTBEAT_ATTR, INTERRUPTED_ATTR, recover_stale_trials, retry_callback
from phonetune.search.study import open_study
from phonetune.search.worker import run_worker

TRIAL_EPOCHS = 3


@pytest.mark.parametrize(
    "pruner",
    [
        {"pruner.kind": "asha", "pruner.min_resource": 1, "pruner.reduction_factor": 2},
        {"pruner.kind": "hyperband", "pruner.min_resource": 1, "pruner.reduction_factor": 2},
    ],
    ids=["asha", "hyperband"],
)
def test_asha_and_hyperband_prune_real_trials_at_their_rungs(tmp_path, tiny_corpus, pruner):
    # A wide lr range makes the trials differ enough for the pruner to cut some after their first epoch.
    path = write_study(tmp_path, tiny_corpus.root, **{
        "study.n_trials": 8, "fidelity.trial_epochs": TRIAL_EPOCHS, "sampler.seed": 3,
        "space.lr": {"low": 1e-5, "high": 3e-2, "log": True}, **pruner,
    })
    config = load_study_config(path)
    summary = run_worker(config, create=True)
    trials = open_study(config).trials
    states = [trial.state for trial in trials]
    assert len(trials) == 8 and set(summary.trial_states.values()) <= {"COMPLETE", "PRUNED"}
    pruned = [trial for trial in trials if trial.state == TrialState.PRUNED]
    complete = [trial for trial in trials if trial.state == TrialState.COMPLETE]
    assert pruned and complete, states
    for trial in pruned:
        cut = trial.user_attrs[attrs.PRUNED_AT_EPOCH]
        assert 1 <= cut < TRIAL_EPOCHS and sorted(trial.intermediate_values) == list(range(1, cut + 1))
    for trial in complete:
        assert sorted(trial.intermediate_values) == list(range(1, TRIAL_EPOCHS + 1))


def test_a_trial_whose_workers_keep_dying_is_retried_max_retry_times_then_left_failed(tmp_path, tiny_corpus):
    path = write_study(tmp_path, tiny_corpus.root, **{
        "study.storage": f"journal:///{tmp_path / 'study.log'}", "study.max_retry": 2,
    })
    config = load_study_config(path)
    study = open_study(config, create=True)
    on_stale = retry_callback(config.study.max_retry)
    trial = study.ask()
    lr = trial.suggest_float("lr", 1e-4, 1e-2, log=True)
    first = trial.number
    for attempt in range(config.study.max_retry + 1):
        # This attempt trains one epoch further than the last, then its worker dies: its heartbeat stopped a
        # minute ago, and recovery fails the trial.
        for epoch in range(1, attempt + 2):
            trial.report(0.5 + 0.01 * epoch, step=epoch)
        study._storage.set_trial_system_attr(trial._trial_id, HEARTBEAT_ATTR, time.time() - 60)
        assert recover_stale_trials(study, config.study.grace_period, on_stale) == [trial.number]
        waiting = [item for item in study.get_trials(deepcopy=False) if item.state == TrialState.WAITING]
        if attempt < config.study.max_retry:
            assert len(waiting) == 1  # the retry, queued with the same parameters
            trial = study.ask()
            assert trial.number == waiting[0].number and trial.suggest_float("lr", 1e-4, 1e-2, log=True) == lr
        else:
            assert waiting == []  # max_retry retries spent: nothing more is queued
    trials = sorted(open_study(config).trials, key=lambda item: item.number)
    assert [item.state for item in trials] == [TrialState.FAIL] * (config.study.max_retry + 1)
    assert [item.system_attrs.get("failed_trial") for item in trials[1:]] == [first] * config.study.max_retry


@pytest.mark.parametrize("interrupted_by_user", [False, True], ids=["died", "ctrl-c"])
def test_a_trial_that_dies_twice_at_the_same_epoch_is_not_retried_again(tmp_path, tiny_corpus,
                                                                          interrupted_by_user):
    """Issue 37, case 4: retries that make no progress eat the budget. A worker killed twice after the same epoch
    is given up after the second death (with max_retry 3 left unspent); a trial the user's Ctrl-C stopped is not the
    trial's fault and is re-queued as before."""
    path = write_study(tmp_path, tiny_corpus.root, **{
        "study.storage": f"journal:///{tmp_path / 'study.log'}", "study.max_retry": 3,
    })
    config = load_study_config(path)
    study = open_study(config, create=True)
    on_stale = retry_callback(config.study.max_retry, interrupted_by_user=interrupted_by_user)
    trial = study.ask()
    trial.suggest_float("lr", 1e-4, 1e-2, log=True)
    first = trial.number
    for attempt in range(2):
        for epoch in (1, 2):  # the retry re-reports its checkpoint's epochs, and dies where its predecessor did
            trial.report(0.5 + 0.01 * epoch, step=epoch)
        study._storage.set_trial_system_attr(trial._trial_id, HEARTBEAT_ATTR, time.time() - 60)
        assert recover_stale_trials(study, config.study.grace_period, on_stale) == [trial.number]
        waiting = [item for item in study.get_trials(deepcopy=False) if item.state == TrialState.WAITING]
        if attempt == 0 or interrupted_by_user:
            assert len(waiting) == 1 and waiting[0].system_attrs["failed_trial"] == first
            trial = study.ask()
        else:
            assert waiting == []  # two deaths after epoch 2: no third attempt
    trials = open_study(config).trials
    assert len(trials) == (3 if interrupted_by_user else 2)


def test_ctrl_c_attempts_do_not_count_against_max_retry(tmp_path, tiny_corpus):
    """Issue 37, case 4's other half: a student who stops and continues a job during one long trial more often than
    ``max_retry`` keeps the trial; the deaths that are the trial's own are still limited to ``max_retry``."""
    path = write_study(tmp_path, tiny_corpus.root, **{
        "study.storage": f"journal:///{tmp_path / 'study.log'}", "study.max_retry": 1,
    })
    config = load_study_config(path)
    study = open_study(config, create=True)
    trial = study.ask()
    trial.suggest_float("lr", 1e-4, 1e-2, log=True)
    first = trial.number

    def end_attempt(by_user: bool, epoch: int) -> list:
        trial.report(0.5 + 0.01 * epoch, step=epoch)
        study.tell(trial, state=TrialState.FAIL)
        frozen = next(item for item in study.get_trials(deepcopy=False) if item.number == trial.number)
        retry_callback(config.study.max_retry, interrupted_by_user=by_user)(study, frozen)
        return [item for item in study.get_trials(deepcopy=False) if item.state == TrialState.WAITING]

    for epoch in (1, 2, 3):  # three Ctrl-Cs, max_retry 1: each re-queued
        waiting = end_attempt(True, epoch)
        assert len(waiting) == 1 and waiting[0].system_attrs["failed_trial"] == first
        assert waiting[0].system_attrs[INTERRUPTED_ATTR] == epoch
        trial = study.ask()
    # The trial's own first death, where the Ctrl-C had stopped it: a first death, not a second at that epoch, so it
    # gets its one retry.
    waiting = end_attempt(False, 3)
    assert len(waiting) == 1
    trial = study.ask()
    assert end_attempt(False, 5) == []  # its second: max_retry spent
    trials = open_study(config).trials
    assert len(trials) == 5 and all(item.state == TrialState.FAIL for item in trials)
