"""Promotion to the full data and retraining the winner, on a small real study (tiny corpus, tiny models).

The study is searched once per module; each test works on its own copy (``optuna.copy_study`` into a fresh SQLite
file), so the tests do not depend on each other's order.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import subprocess
import sys
import time
from pathlib import Path

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
from phonetune.model import load_run_config, score_submission
from phonetune.model.ensemble import ensemble_probabilities
from phonetune.model.inference import load_checkpoint, load_checkpoint_split, predict_split
from phonetune.model.scoring import read_true_labels
from phonetune.model.trainer import Trainer
from phonetune.search import attributes as attrs
from phonetune.cli.main import main
from phonetune.search.config import DecodeConfig, load_study_config
from phonetune.search.final_model import build_final_model
from phonetune.search.optuna_private import live_trial
from phonetune.search.promote import promote_top_trials, spearman_correlation, top_complete_trials
from phonetune.search.retrain import retrain_winner
from phonetune.search.space import suggest_run_config
from phonetune.search.study import enqueue_warm_starts, open_study, storage_for
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


# A promote that dies is noticed after this many silent seconds. Long: on a loaded machine a live promote may miss a
# few one-second beats, and another promote must never take its run for a dead one's; the test of a dead promote sets
# its own short grace and waits it out.
GRACE_PERIOD_S = 60


def _copy_of(searched, tmp_path, grace_period: int = GRACE_PERIOD_S):
    """(study file, StudyConfig) of a private copy of the searched study, with its own artifacts folder."""
    corpus, source = searched
    path = write_study(tmp_path, corpus.root, **SETTINGS, **{"study.grace_period": grace_period})
    config = load_study_config(path)
    optuna.copy_study(
        from_study_name=source.name,
        from_storage=storage_for(source),
        to_storage=storage_for(config),
        to_study_name=config.name,
    )
    return path, config


@pytest.fixture
def study_copy(searched, tmp_path):
    return _copy_of(searched, tmp_path)


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
        assert trial.user_attrs[attrs.PARAM_COUNT] == source.user_attrs[attrs.PARAM_COUNT] <= config.param_limit
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


def test_promote_resumes_an_interrupted_full_run(searched, tmp_path):
    path, config = _copy_of(searched, tmp_path, grace_period=2)  # the killed run's heartbeat goes stale in seconds
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
    # Nothing was created on the way to the error: the full-data twin is missing, and says what to run.
    with pytest.raises(StorageError, match=r"study 'tiny-full' must exist in sqlite:///.*study.db, but it holds "
                                           r"these studies: tiny; run `phonetune promote` first"):
        open_study(config, "full")


def test_two_promotes_at_once_train_each_source_once(study_copy):
    """Two `phonetune promote --top 3` processes started together split the work: three runs in all, one folder each.
    Neither can take the other's live run for a dead one: the grace period (60 s) is far above any stall of a loaded
    machine."""
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


# --- Warm starts, promoted and ensembled: a study of two [[warm_start]] configurations and nothing else ---

# Two models chosen to be about as good as each other and to err differently (one hidden tanh layer over 5 frames, a
# linear layer over 7), so that averaging them beats either on dev (by 6 of 300 dev frames on this corpus): the study
# ensemble is then really chosen. Values off the space's first choices and range ends, so a default cannot pass
# for them.
WIDE = {"name": "wide", "hidden_layers": 1, "base_width": 40, "activation": "tanh", "context_frames": 2, "lr": 0.008,
        "batch_size": 64}
LINEAR = {"name": "linear", "hidden_layers": 0, "context_frames": 3, "lr": 0.009, "batch_size": 128}
WARM_SETTINGS = {"fidelity.trial_epochs": 2, "fidelity.full_epochs": 2}


@pytest.fixture(scope="module")
def warm_started(tmp_path_factory):
    """(study file, StudyConfig) of a study whose two trials are its warm starts, searched by `phonetune search`."""
    tmp_path = tmp_path_factory.mktemp("warm_started")
    corpus = write_tiny_corpus(tmp_path / "data")
    path = write_study(tmp_path, corpus.root, warm_starts=[WIDE, LINEAR], **WARM_SETTINGS, **{"study.n_trials": 2})
    assert main(["search", "--config", str(path), "--workers", "1", "--quiet"]) == 0
    return path, load_study_config(path)


def test_warm_starts_train_the_values_written_in_the_study_file(warm_started):
    path, config = warm_started
    trials = {trial.user_attrs[attrs.WARM_START]: trial for trial in open_study(config).trials}
    assert sorted(trials) == ["linear", "wide"] and sorted(trial.number for trial in trials.values()) == [0, 1]
    for written in (WIDE, LINEAR):
        trial = trials[written["name"]]
        assert trial.state == TrialState.COMPLETE
        run_dir = config.paths.run_dir_of(trial.user_attrs[attrs.CHECKPOINT_DIR])
        # What the trainer trained: the run config it wrote beside its checkpoints, and the one inside best.pt.
        _model, in_checkpoint, payload = load_checkpoint(run_dir / "best.pt", device="cpu")
        for trained in (load_run_config(run_dir / "config.toml"), in_checkpoint):
            where = f"{run_dir} ({written['name']})"
            assert trained.model.hidden_layers == written["hidden_layers"], where
            assert trained.data.context_frames == written["context_frames"], where
            assert trained.train.lr == written["lr"] and trained.train.batch_size == written["batch_size"], where
            if "base_width" in written:
                assert trained.model.base_width == written["base_width"], where
                assert trained.model.activation == written["activation"], where
        # ...and the weights have the shapes those values make: (2 * context + 1) frames of 28 features in.
        first_layer = payload["model"]["layers.0.weight"]
        width = written.get("base_width", len(in_checkpoint.data.phonemes))
        assert tuple(first_layer.shape) == (width, (2 * written["context_frames"] + 1) * 28)
        if "base_width" in written:
            assert trial.user_attrs[attrs.BASE_WIDTH] == written["base_width"]


def _ensemble_row(sheet) -> dict[str, str]:
    with open(sheet, newline="") as handle:
        (row,) = [row for row in csv.DictReader(handle) if row["state"] == "FINAL"]
    return row


def test_study_ensemble_of_promoted_runs_sums_their_parameters_and_beats_the_best_single_run(warm_started, capsys):
    path, config = warm_started
    assert main(["promote", "--config", str(path), "--top", "2"]) == 0
    full = {trial.user_attrs[attrs.SOURCE_TRIAL]: trial for trial in _full_trials(config)}
    assert sorted(full) == [0, 1]
    counts = {source: trial.user_attrs[attrs.PARAM_COUNT] for source, trial in full.items()}
    best = max(full, key=lambda source: (full[source].value, -source))
    other = 1 - best
    # Both members' dev probabilities averaged, computed here from their best.pt files.
    checkpoints = [config.paths.trial_dir(source, "full") / "best.pt" for source in (best, other)]
    averaged = ensemble_probabilities(checkpoints, config.data.root, config.data.dev_split, device="cpu")
    labels = np.asarray(load_split(config.data, config.data.dev_split, progress=False).labels)
    together = float((averaged.argmax(axis=1) == labels).mean())
    assert together > full[best].value, "the warm starts no longer make an ensemble that beats its best member"

    capsys.readouterr()
    assert main(["ensemble", "--config", str(path)]) == 0
    printed = capsys.readouterr().out
    chosen = open_study(config, "full").user_attrs[attrs.ENSEMBLE_ATTR]
    assert chosen["chosen"] == "ensemble" and chosen["members"] == [best, other]
    assert chosen["param_count"] == counts[best] + counts[other] <= config.param_limit
    # The selection adds with replacement: a member added again weighs more (best first, each at least once).
    weights = chosen["member_weights"]
    assert len(weights) == 2 and min(weights) >= 1
    if weights != [1, 1]:
        averaged = ensemble_probabilities(checkpoints, config.data.root, config.data.dev_split, device="cpu",
                                          weights=weights)
        together = float((averaged.argmax(axis=1) == labels).mean())
    # The submission's labels: the sequence decode when dev prefers it, else the argmax; the argmax is scored too.
    decoder = chosen["decoder"]
    assert sorted(decoder["grid"]) == ["1.5/0.5", "1.5/0.75", "1/0.5", "1/0.75"]
    # A small dev (under FIT_MAX_FRAMES) is scored whole.
    assert decoder["dev_argmax_accuracy"] == pytest.approx(together)
    assert decoder["used"] == (max(decoder["grid"].values()) > together)
    on_test = ensemble_probabilities(checkpoints, config.data.root, config.data.test_split, device="cpu",
                                     weights=weights)
    truth = read_true_labels(config.data.root + "/test-clean-labels", config.data.phonemes)
    assert chosen["test_argmax_accuracy"] == pytest.approx(float((on_test.argmax(axis=1) == truth).mean()))
    if not decoder["used"]:
        assert chosen["test_accuracy"] == pytest.approx(chosen["test_argmax_accuracy"])
    assert chosen["dev_accuracy"] == pytest.approx(together) and together > chosen["single_dev_accuracy"]
    assert chosen["single_dev_accuracy"] == pytest.approx(full[best].value)
    rescored = score_submission(chosen["submission"], config.data.root + "/test-clean-labels", config.data.phonemes)
    assert chosen["test_accuracy"] == pytest.approx(rescored.accuracy)
    said_weights = "" if weights == [1, 1] else " weighted " + ":".join(str(weight) for weight in weights)
    assert (f"chosen: ensemble of search trials [{best}, {other}]{said_weights} ({chosen['param_count']:,} parameters"
            in printed)

    sheet = path.parent / "sheet.csv"
    assert main(["export", "--config", str(path), "--out", str(sheet)]) == 0
    row = _ensemble_row(sheet)
    assert row["promoted_from"] == f"{best}+{other}" and row["trained_on"] == "all"
    assert int(row["param_count"]) == counts[best] + counts[other]
    assert float(row["dev_accuracy"]) == pytest.approx(together, abs=5e-4)
    assert row["layer_widths"] == "ensemble of 2"
    assert float(row["test_accuracy"]) == pytest.approx(rescored.accuracy, abs=5e-4)

    # A budget with room for either run but not both: the best single run is the final model, and the sheet says so.
    tight = max(counts.values())
    assert counts[best] + counts[other] > tight
    assert main(["ensemble", "--config", str(path), "--param-limit", str(tight)]) == 0
    chosen = open_study(config, "full").user_attrs[attrs.ENSEMBLE_ATTR]
    assert chosen["chosen"] == "single" and chosen["members"] == [best] and chosen["param_count"] == counts[best]
    assert chosen["dev_accuracy"] == pytest.approx(full[best].value)
    assert main(["export", "--config", str(path), "--out", str(sheet)]) == 0
    row = _ensemble_row(sheet)
    assert row["promoted_from"] == str(best) and int(row["param_count"]) == counts[best]
    with open(sheet, newline="") as handle:
        (promoted,) = [item for item in csv.DictReader(handle) if item["state"] == "COMPLETE"
                       and item["trained_on"] == "all" and item["promoted_from"] == str(best)]
    assert row["layer_widths"] == promoted["layer_widths"] and row["lr"] == promoted["lr"]


def test_an_ensemble_no_better_than_its_best_member_is_not_chosen(tmp_path, capsys, single_torch_thread):
    """Two warm starts with the same values train the same model twice: averaging them gains nothing, so the single
    run is kept (an ensemble only when strictly better on dev)."""
    corpus = write_tiny_corpus(tmp_path / "data")
    twin = {**WIDE, "name": "wide-again"}
    path = write_study(tmp_path, corpus.root, warm_starts=[WIDE, twin], **WARM_SETTINGS, **{"study.n_trials": 2})
    config = load_study_config(path)
    enqueue_warm_starts(open_study(config, create=True), config)
    run_worker(config)
    assert main(["promote", "--config", str(path), "--top", "2"]) == 0
    full = {trial.user_attrs[attrs.SOURCE_TRIAL]: trial for trial in _full_trials(config)}
    assert sorted(full) == [0, 1] and full[0].value == full[1].value
    assert main(["ensemble", "--config", str(path)]) == 0
    chosen = open_study(config, "full").user_attrs[attrs.ENSEMBLE_ATTR]
    assert chosen["chosen"] == "single" and chosen["members"] == [0]  # ties go to the lower trial number
    assert chosen["ensemble_dev_accuracy"] == chosen["single_dev_accuracy"] == pytest.approx(full[0].value)
    # [decode] mode = "argmax" (the default): the network's own per-frame choice is the submission, and the
    # sequence decode's labels are written beside it, each scored; "viterbi" swaps them only when dev prefers the
    # decode; "off" writes the argmax alone and records no decode.
    model, run_config, payload = load_checkpoint(config.paths.trial_dir(0, "full") / "best.pt", "cpu")
    split = load_checkpoint_split(run_config, payload, config.data.root, config.data.test_split, progress=False)
    argmax = list(np.asarray(run_config.data.phonemes)[predict_split(model, run_config, split, "cpu")])

    def labels_of(path) -> list[str]:
        return [line.split(",")[1] for line in Path(path).read_text().splitlines()[1:]]

    plain = build_final_model(dataclasses.replace(config, decode=DecodeConfig(mode="argmax")))
    assert plain.labels == "argmax" and plain.members == [0] and labels_of(plain.submission) == argmax
    assert plain.test_accuracy == pytest.approx(plain.test_argmax_accuracy)
    assert Path(plain.other_submission).name == "submission-decoded.csv" and plain.decoder is not None
    truth = read_true_labels(Path(config.data.root) / f"{config.data.test_split}-labels", config.data.phonemes)
    decoded = np.asarray([run_config.data.phonemes.index(label) for label in labels_of(plain.other_submission)])
    assert plain.test_decoded_accuracy == pytest.approx(float((decoded == truth).mean()))
    viterbi = build_final_model(dataclasses.replace(config, decode=DecodeConfig(mode="viterbi")))
    if viterbi.decoder["used"]:
        assert viterbi.labels == "decoded" and Path(viterbi.other_submission).name == "submission-argmax.csv"
        assert labels_of(viterbi.other_submission) == argmax
        assert viterbi.test_accuracy == pytest.approx(viterbi.test_decoded_accuracy)
    else:
        assert viterbi.labels == "argmax" and labels_of(viterbi.submission) == argmax
    off = build_final_model(dataclasses.replace(config, decode=DecodeConfig(mode="off")))
    assert off.decoder is None and off.other_submission is None and labels_of(off.submission) == argmax
    sheet = tmp_path / "sheet.csv"
    assert main(["export", "--config", str(path), "--out", str(sheet)]) == 0
    assert _ensemble_row(sheet)["promoted_from"] == "0"
