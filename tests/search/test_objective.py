"""The objective on a real tiny corpus: trials train, report each epoch, get pruned, and record their attributes."""

from __future__ import annotations

from optuna.trial import TrialState
from search_study import write_study

from phonetune.model import count_params
from phonetune.search import attributes as attrs
from phonetune.search.attributes import SEARCH_FIDELITY
from phonetune.search.config import load_study_config
from phonetune.search.runner import load_fidelity_data
from phonetune.search.space import run_config_from_params
from phonetune.search.study import open_study
from phonetune.search.worker import run_worker

FIXED_MODEL = {
    "space.hidden_layers": 1,
    "space.base_width": 32,
    "space.context_frames": 2,
    "space.activation": "relu",
    "space.batch_size": 64,
    "space.lr": {"low": 1e-5, "high": 1e-1, "log": True},
}


def test_pruner_prunes_the_bad_trial_and_records_attributes(tmp_path, tiny_corpus):
    path = write_study(
        tmp_path, tiny_corpus.root, **FIXED_MODEL,
        **{"study.n_trials": 3, "pruner.kind": "median", "pruner.n_startup_trials": 1, "pruner.n_warmup_steps": 0},
    )
    config = load_study_config(path)
    study = open_study(config, create=True)
    # A fixed sequence: a good learning rate, one too small to learn anything in an epoch, the good one
    # again (same seed, so the same curve: above the median of the first two, never pruned).
    for lr in (3e-2, 1e-5, 3e-2):
        study.enqueue_trial({"lr": lr})
    summary = run_worker(config, data=load_fidelity_data(config, SEARCH_FIDELITY))

    trials = sorted(open_study(config).trials, key=lambda trial: trial.number)
    assert [trial.state for trial in trials] == [TrialState.COMPLETE, TrialState.PRUNED, TrialState.COMPLETE]
    assert summary.trial_states == {0: "COMPLETE", 1: "PRUNED", 2: "COMPLETE"}

    pruned = trials[1]
    assert pruned.user_attrs[attrs.PRUNED_AT_EPOCH] == 1
    assert pruned.user_attrs[attrs.EPOCHS_RUN] == 1
    assert [point["epoch"] for point in pruned.system_attrs[attrs.CURVES]] == [1]
    assert list(pruned.intermediate_values) == [1]
    assert pruned.intermediate_values[1] < trials[0].intermediate_values[1]

    for trial in (trials[0], trials[2]):
        curves = trial.system_attrs[attrs.CURVES]
        assert [point["epoch"] for point in curves] == [1, 2]
        assert set(curves[0]) == set(attrs.CURVE_KEYS)
        assert trial.value == max(point["dev_accuracy"] for point in curves)
        assert trial.value > 0.3  # the learnable corpus is learned well above chance (1/40)
        assert trial.user_attrs[attrs.EPOCHS_RUN] == 2
        assert attrs.PRUNED_AT_EPOCH not in trial.user_attrs
        assert trial.user_attrs[attrs.FRAMES_PER_S] > 0 and trial.user_attrs[attrs.WALL_SECONDS] > 0
        run_config = run_config_from_params(config, trial.params, fidelity="search")
        assert trial.user_attrs[attrs.PARAM_COUNT] == count_params(run_config.model, run_config.io)
        assert trial.user_attrs[attrs.CHECKPOINT_DIR] == f"trials/{trial.number}"  # relative to the study folder
        folder = config.paths.run_dir_of(trial.user_attrs[attrs.CHECKPOINT_DIR])
        assert folder == config.paths.trial_dir(trial.number)
        assert {"last.pt", "best.pt", "metrics.json", "config.toml"} <= {item.name for item in folder.iterdir()}
