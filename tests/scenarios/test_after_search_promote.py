"""Promotion to the full data and retraining the winner, on a small real study (tiny corpus, tiny models).

The study is searched once per module; each test works on its own copy (``optuna.copy_study`` into a fresh SQLite
file), so the tests do not depend on each other's order.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np
import optuna
import pytest
from corpus import write_tiny_corpus
from optuna.artifacts import FileSystemArtifactStore, get_all_artifact_meta
from optuna.trial import TrialState
from optuna_dashboard import get_note
from scipy.stats import spearmanr
from search_study import write_study

from phonetune.data_pipeline import concatenate_splits, load_split
from phonetune.errors import ConfigError, StorageError
from phonetune.model import score_submission
from phonetune.model.trainer import Trainer
from phonetune.search import attributes as attrs
from phonetune.cli.main import main
from phonetune.search.config import load_study_config
from phonetune.search.optuna_private import live_trial
from phonetune.search.promote import promote_top_trials, spearman_correlation, top_complete_trials
from phonetune.search.retrain import retrain_winner
from phonetune.search.space import suggest_run_config
from phonetune.search.study import open_study, storage_for
from phonetune.search.worker import run_worker

SETTINGS = {
    "study.n_trials": 4,
    "fidelity.train_fraction": 0.5,  # search trials see half the utterances, promoted ones all of them
    "fidelity.trial_epochs": 2,
    "fidelity.full_epochs": 2,
}


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("promote_source")
    corpus = write_tiny_corpus(tmp_path / "data")
    config = load_study_config(write_study(tmp_path, corpus.root, **SETTINGS))
    run_worker(config, create=True)
    assert sum(t.state == TrialState.COMPLETE for t in open_study(config).trials) == 4
    return corpus, config


@pytest.fixture
def study_copy(searched, tmp_path):
    """(study file, StudyConfig) of a private copy of the searched study, with its own artifacts folder."""
    corpus, source = searched
    path = write_study(tmp_path, corpus.root, **SETTINGS, **{"study.grace_period": 2})
    config = load_study_config(path)
    optuna.copy_study(
        from_study_name=source.name,
        from_storage=storage_for(source),
        to_storage=storage_for(config),
        to_study_name=config.name,
    )
    return path, config


def _full_trials(config, state=TrialState.COMPLETE):
    return open_study(config, "full").get_trials(states=(state,))


def test_promote_links_full_trials_reports_spearman_and_is_idempotent(study_copy, capsys):
    path, config = study_copy
    search = open_study(config)
    ranked = sorted(search.get_trials(states=(TrialState.COMPLETE,)), key=lambda t: -t.value)

    assert main(["promote", "--config", str(path), "--top", "2"]) == 0
    printed = capsys.readouterr().out
    assert "Spearman rank correlation" in printed

    full = _full_trials(config)
    assert sorted(t.user_attrs[attrs.SOURCE_TRIAL] for t in full) == sorted(t.number for t in ranked[:2])
    for trial in full:
        source = search.trials[trial.user_attrs[attrs.SOURCE_TRIAL]]
        assert trial.params == source.params
        assert trial.user_attrs[attrs.FIDELITY] == "full"
        assert trial.user_attrs[attrs.PARAM_COUNT] == source.user_attrs[attrs.PARAM_COUNT] <= config.param_budget
        curves = trial.system_attrs[attrs.CURVES]
        assert [point["epoch"] for point in curves] == [1, 2]
        assert trial.value == max(point["dev_accuracy"] for point in curves)
        assert sorted(trial.intermediate_values) == [1, 2]
        run_dir = config.paths.trial_dir(source.number, "full")
        assert trial.user_attrs[attrs.CHECKPOINT_DIR] == f"full/{source.number}"  # relative: the study can move
        assert config.paths.run_dir_of(trial.user_attrs[attrs.CHECKPOINT_DIR]) == run_dir
        assert (run_dir / "last.pt").is_file() and (run_dir / "best.pt").is_file()
        # The dashboard links the two trials both ways (notes) and lists the run's curves and metrics (artifacts).
        full_study = open_study(config, "full")
        assert f"trial **{source.number}** of study `{search.study_name}`" in get_note(live_trial(full_study, trial))
        assert f"trial **{trial.number}** of study `{full_study.study_name}`" in get_note(live_trial(search, source))
        artifacts = get_all_artifact_meta(trial, storage=storage_for(config))
        assert sorted(meta.filename for meta in artifacts) == ["curves.html", "metrics.json"]
        store = FileSystemArtifactStore(str(config.paths.artifact_store_path))
        for meta in artifacts:
            with store.open_reader(meta.artifact_id) as stored:
                assert stored.read() == (run_dir / meta.filename).read_bytes()

    pairs = [(search.trials[t.user_attrs[attrs.SOURCE_TRIAL]].value, t.value) for t in full]
    rho = open_study(config, "full").user_attrs["spearman_search_vs_full"]
    expected = spearmanr([p[0] for p in pairs], [p[1] for p in pairs]).statistic
    assert rho == pytest.approx(expected) if not np.isnan(expected) else rho is None
    assert f"{rho:.3f}" in printed if rho is not None else "undefined" in printed

    # Again: nothing retrained. Then one more: only the third best is trained.
    again = promote_top_trials(config, 2, progress=False)
    assert [item.retrained for item in again.promoted] == [False, False]
    assert len(open_study(config, "full").trials) == 2
    third = promote_top_trials(config, 3, progress=False)
    assert {item.source_number for item in third.promoted if item.retrained} == {ranked[2].number}
    assert len(_full_trials(config)) == 3

    # The sheet now holds both fidelities, the full rows pointing at their sources.
    sheet = path.parent / "sheet.csv"
    assert main(["export", "--config", str(path), "--out", str(sheet)]) == 0
    rows = sheet.read_text().splitlines()
    assert sum(",COMPLETE,all," in row for row in rows) == 3 and sum(",subsample,," in row for row in rows) == 4

    # The report's promoted section: the search-vs-full scatter of the 3 runs, their curves, the Spearman with its
    # sample size said to be too small.
    report = path.parent / "report.html"
    assert main(["report", "--config", str(path), "--out", str(report)]) == 0
    section = report.read_text().split('<section id="full">', 1)[1].split("</section>", 1)[0]
    assert section.count("Plotly.newPlot") == 2
    assert "over K=3 promoted trials (too few to mean much" in section
    for trial in _full_trials(config):
        assert f"trial {trial.user_attrs[attrs.SOURCE_TRIAL]}" in section

    # Retrain picks the best full-data trial, and reuses its promoted run: the same config, data and seed would
    # only repeat the same epochs.
    result = retrain_winner(config, progress=False)
    best_full = max(_full_trials(config), key=lambda t: t.value)
    assert result.winner.full_trial.number == best_full.number
    assert result.winner.search_trial.number == best_full.user_attrs[attrs.SOURCE_TRIAL]
    promoted_dir = config.paths.trial_dir(best_full.user_attrs[attrs.SOURCE_TRIAL], "full")
    assert result.checkpoint == promoted_dir / "best.pt" and result.dev_accuracy == best_full.value
    assert not (result.out_dir / "last.pt").exists()  # nothing was trained into the retrain folder
    summary = json.loads(result.summary_path.read_text())
    assert summary["reused_promoted_run"] == str(promoted_dir) and summary["test_accuracy"] is not None


def test_promote_resumes_an_interrupted_full_run(study_copy):
    path, config = study_copy
    (source,) = top_complete_trials(open_study(config), 1)
    full = open_study(config, "full", create=True)
    full.enqueue_trial(source.params, user_attrs={attrs.SOURCE_TRIAL: source.number, attrs.FIDELITY: "full"})
    trial = full.ask()
    run_config = suggest_run_config(trial, config, "full")

    class Killed(Exception):
        pass

    def die_after_first_epoch(metrics):
        raise Killed

    out_dir = config.paths.trial_dir(source.number, "full")
    trainer = Trainer(run_config, out_dir, epoch_callback=die_after_first_epoch, progress=False)
    trainer.setup()
    with pytest.raises(Killed):
        trainer.train()
    first_epoch = trainer.result.history[0]
    trainer.cleanup()
    storage = full._storage
    storage.record_heartbeat(trial._trial_id)  # the killed process had been beating; then it went silent
    # SQLite's CURRENT_TIMESTAMP, which Optuna's stale check compares against, has one-second resolution: wait a
    # whole second past the grace period so the heartbeat is stale whatever fraction of a second it was written in.
    time.sleep(config.study.grace_period + 1.5)

    result = promote_top_trials(config, 1, progress=False)
    assert storage.get_trial(trial._trial_id).state == TrialState.FAIL
    (promoted,) = result.promoted
    assert promoted.source_number == source.number and promoted.retrained
    (done,) = _full_trials(config)
    assert done.user_attrs[attrs.RESUMED_FROM_EPOCH] == 1
    curves = done.system_attrs[attrs.CURVES]
    assert [point["epoch"] for point in curves] == [1, 2]
    assert curves[0]["dev_accuracy"] == first_epoch.dev_acc  # epoch 1 comes from the interrupted run's checkpoint


def test_retrain_before_promotion_and_with_dev(study_copy, capsys):
    path, config = study_copy
    search = open_study(config)
    best = max(search.get_trials(states=(TrialState.COMPLETE,)), key=lambda t: t.value)

    assert main(["retrain", "--config", str(path), "--trial", "best"]) == 0
    printed = capsys.readouterr().out
    summary = json.loads((config.paths.artifacts_path / "retrain" / f"trial-{best.number}" / "summary.json").read_text())
    assert summary["search_trial"] == best.number and summary["full_trial"] is None
    assert summary["params"] == best.params
    assert summary["param_count"] == best.user_attrs[attrs.PARAM_COUNT]
    assert summary["run_config"]["data"]["train_fraction"] == 1.0
    labels = config.data.root + "/test-clean-labels"
    rescored = score_submission(summary["submission"], labels, config.data.phonemes).accuracy
    assert summary["test_accuracy"] == pytest.approx(rescored)
    assert f"test accuracy: {rescored:.4f}" in printed
    submission_rows = len(open(summary["submission"]).read().splitlines()) - 1
    test_split = load_split(config.data, "test-clean", progress=False)
    assert submission_rows == summary["test_frames"] == test_split.num_frames

    other = min(search.get_trials(states=(TrialState.COMPLETE,)), key=lambda t: t.value)
    out = path.parent / "final"
    assert main(["retrain", "--config", str(path), "--trial", str(other.number), "--with-dev", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["search_trial"] == other.number and summary["with_dev"] is True
    assert summary["checkpoint"].endswith("last.pt")

    with pytest.raises(ConfigError, match="usable trials"):
        retrain_winner(config, trial_number=999, progress=False)


def test_concatenate_splits_keeps_every_utterance_in_order(searched):
    _, config = searched
    train = load_split(config.data, config.data.train_split, progress=False)
    dev = load_split(config.data, config.data.dev_split, progress=False)
    both = concatenate_splits(train, dev, "train+dev")
    assert both.num_frames == train.num_frames + dev.num_frames
    assert both.num_utterances == train.num_utterances + dev.num_utterances
    assert both.utterance_names == train.utterance_names + dev.utterance_names
    for index in (0, train.num_utterances - 1):
        np.testing.assert_array_equal(both.utterance(index)[0], train.utterance(index)[0])
    last_features, last_labels = both.utterance(both.num_utterances - 1)
    np.testing.assert_array_equal(last_features, dev.utterance(dev.num_utterances - 1)[0])
    np.testing.assert_array_equal(last_labels, dev.utterance(dev.num_utterances - 1)[1])


@pytest.mark.parametrize("command", ["promote", "export", "report", "retrain"])
def test_unknown_study_is_a_storage_error_listing_the_stored_ones(study_copy, command, capsys):
    path, config = study_copy
    before = len(open_study(config).trials)
    assert main([command, "--config", str(path), "--set", "study.name=nosuch"]) == 1
    error = capsys.readouterr().err
    assert "'nosuch'" in error and "tiny" in error and "must exist" in error
    assert len(open_study(config).trials) == before
    names = optuna.get_all_study_names(storage_for(config))
    assert "nosuch" not in names and "nosuch-full" not in names


def test_spearman_matches_scipy_with_ties():
    rng = np.random.default_rng(0)
    for size in (2, 3, 7, 20):
        first = rng.integers(0, 5, size).astype(float)  # ties on purpose
        second = first + rng.normal(size=size)
        expected = spearmanr(first, second).statistic
        got = spearman_correlation(list(first), list(second))
        assert (got is None) if np.isnan(expected) else got == pytest.approx(expected)
    assert spearman_correlation([0.5], [0.7]) is None
    assert spearman_correlation([0.5, 0.5], [0.1, 0.9]) is None


def test_promote_without_complete_trials_is_a_named_error(tmp_path):
    corpus = write_tiny_corpus(tmp_path / "data")
    config = load_study_config(write_study(tmp_path, corpus.root))
    open_study(config, create=True)
    with pytest.raises(ConfigError, match="at least one COMPLETE search trial"):
        promote_top_trials(config, 2, progress=False)
    with pytest.raises(StorageError, match="'tiny-full'"):
        open_study(config, "full")  # nothing was created on the way to the error


def test_two_promotes_at_once_train_each_source_once(study_copy):
    """Two `phonetune promote --top 3` processes started together split the work: three runs in all, one folder each."""
    path, config = study_copy
    command = [sys.executable, "-m", "phonetune.cli", "promote", "--config", str(path), "--top", "3"]
    first, second = (subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                     for _ in range(2))
    for process in (first, second):
        _out, err = process.communicate(timeout=300)
        assert process.returncode == 0, err[-2000:]
    trials = _full_trials(config)
    sources = [trial.user_attrs[attrs.SOURCE_TRIAL] for trial in trials]
    assert len(trials) == 3 and len(set(sources)) == 3  # each source trained once, nothing duplicated
    assert all(trial.state == TrialState.COMPLETE for trial in open_study(config, "full").trials)
    for trial in trials:
        assert trial.user_attrs[attrs.RESUMED_FROM_EPOCH] == 0  # nobody "resumed" another's half-written run
        source = trial.user_attrs[attrs.SOURCE_TRIAL]
        assert config.paths.run_dir_of(trial.user_attrs[attrs.CHECKPOINT_DIR]) == config.paths.trial_dir(source, "full")
