"""Names of the attributes every trial records: the one place the writers and the readers (``records.py``, the
sheet and report in ``phonetune.results``, promote, retrain, the job) take them from.

User attributes (``trial.user_attrs[...]``). ``space.py`` writes ``base_width`` and ``param_count`` as it samples;
``runner.train_trial`` writes ``fidelity``, ``checkpoint_dir``, ``worker`` and ``wall_seconds``; its
``records.EpochRecorder`` writes the per-epoch ones (``best_dev_accuracy``, ``epochs_run``, ``pruned_at_epoch``,
``frames_per_s``, ``resumed_from_epoch``); ``objective.py`` writes ``retried_from``; ``source_trial`` and
``warm_start`` are set when ``promote.py`` and ``study.enqueue_warm_starts`` queue a trial:

=====================  ==========================================================================================
``base_width``         int: the width the space derived under the parameter limit from ``width_fraction`` (not an Optuna param)
``param_count``        int: trainable parameters of the trial's model (always <= the study's ``param_limit``)
``best_dev_accuracy``  float: best dev accuracy so far (equals the objective value of a COMPLETE trial)
``epochs_run``         int: epochs finished, counting epochs a retried trial inherited from its dead predecessor
``pruned_at_epoch``    int: the epoch after which the pruner stopped the trial (only on PRUNED trials)
``frames_per_s``       float: mean training throughput over the epochs this attempt ran
``wall_seconds``       float: wall time spent on this trial, summed over the attempts of a retried trial
``checkpoint_dir``     str: the run folder (config.toml, last.pt, best.pt, metrics.json), relative to the study's
                       artifacts_dir so a moved study still finds it (older studies: absolute)
``retried_from``       int: number of the original trial when this one re-runs a trial whose worker died
``resumed_from_epoch`` int: epochs already in the checkpoint this attempt resumed from (0 for a fresh start)
``fidelity``           str: "search" (subsampled, short) or "full" (promoted to the full training data)
``source_trial``       int: on a full-fidelity trial, the number of the search trial it retrains
``worker``             str: ``host:pid`` of the worker process that ran (last attempted) the trial
``warm_start``         str: on a trial enqueued from a ``[[warm_start]]`` table, that table's name
``mutated_from``       int: on a trial the prior sampler made by mutating an earlier one, that trial's number
``move``               str: on a trial the prior sampler made by one move of that trial, which (``lr up``,
                       ``context_frames down``, ``scheduler other``: ``prior_sampler.MOVES``)
=====================  ==========================================================================================

Trial system attribute ``curves`` (written and read by ``records.py``; a user attribute in older studies): a list of
dicts, one per finished epoch, oldest first: ``epoch`` (1-based), ``train_loss``, ``train_accuracy``, ``dev_loss``,
``dev_accuracy``, ``lr``, ``seconds``, ``frames_per_s``, ``epochs_done`` (passes over the training split so far,
fractional inside an epoch; absent in older studies) (a value may be None when the trainer did not measure it).
A system attribute because optuna-dashboard lists every user attribute on the trial page, where a 600-character
JSON list pushes the page off screen; the dashboard plots the dev accuracy per epoch from the reported values.

Optuna parameters are the sampled hyperparameters under their ``[space]`` names, plus ``width_fraction`` (the
position of ``base_width`` between its low end and the parameter limit's bound) and ``<name>_on`` switches of ranges with
``zero = true``. System attributes ``failed_trial``/``retry_history`` are Optuna's retry bookkeeping
(``RetryHeartbeatStaleTrialCallback``), ``phonetune:interrupted_attempts`` counts the attempts of a retried trial that
the user's Ctrl-C ended (not counted against ``max_retry``), and ``phonetune:heartbeat`` is the journal-storage
heartbeat.
"""

from phonetune.data_pipeline.config import TRAINED_ON_ALL, TRAINED_ON_SUBSAMPLE
from phonetune.errors import ConfigError

# The two fidelities a trial is trained at: its own Optuna study each (``<name>`` and ``<name>-full``).
SEARCH_FIDELITY = "search"  # a subsample of the training utterances, a few epochs, pruned
FULL_FIDELITY = "full"  # a promoted search trial retrained on all the training data
FIDELITIES = (SEARCH_FIDELITY, FULL_FIDELITY)

# Study user attributes of the full-data study.
SPEARMAN_ATTR = "spearman_search_vs_full"  # rank correlation of search and full-data accuracy (None if undefined)
SPEARMAN_COUNT_ATTR = "spearman_trials"  # how many promoted trials it was computed over
PROMOTED_SOURCES_ATTR = "promoted_sources"  # search trial numbers that have a completed full-data run
SOURCE_STUDY_ATTR = "source_study"  # name of the search study the full-data trials came from
SETTINGS_ATTR = "settings"  # search study: fidelity, data, parameter limit and space it was created with
ENSEMBLE_ATTR = "ensemble"  # the final model last chosen (single or ensemble): members, parameters, accuracies
# Search study user attribute of a `phonetune run`: what ran, in the plan's labelled lines (budget, speed, screen,
# final run, why) and the final model's one line; the report's and the dashboard's first words on the study.
JOB_ATTR = "phonetune_run"
# Study user attributes of both studies, recorded when a study is created.
TRAINING_DATA_ATTR = "training_data"  # {"normalization", "train_fraction"}: what the study's trials trained on
# The three sizes a study's models answer to, named the same way everywhere (sheet, report, dashboard, terminal):
HW1P2_LIMIT_ATTR = "hw1p2_limit"  # the HW1P2 rule: at most 20M parameters, ensembles summed (DEFAULT_PARAM_LIMIT)
SIZE_CAP_ATTR = "size_cap"  # the largest model this study may sample ([study] param_limit; `run` lowers it)
PLANNED_SIZE_ATTR = "planned_size"  # `phonetune run`: the final run's size the plan chose (its final_params)

# What each fidelity trained on, as the ablation sheet and metrics.json say it.
TRAINED_ON = {SEARCH_FIDELITY: TRAINED_ON_SUBSAMPLE, FULL_FIDELITY: TRAINED_ON_ALL}


def check_fidelity(fidelity: str) -> str:
    if fidelity not in FIDELITIES:
        raise ConfigError(f"fidelity must be one of {list(FIDELITIES)}, but got {fidelity!r}")
    return fidelity


BASE_WIDTH = "base_width"
PARAM_COUNT = "param_count"
CURVES = "curves"
BEST_DEV_ACCURACY = "best_dev_accuracy"
EPOCHS_RUN = "epochs_run"
PRUNED_AT_EPOCH = "pruned_at_epoch"
FRAMES_PER_S = "frames_per_s"
WALL_SECONDS = "wall_seconds"
CHECKPOINT_DIR = "checkpoint_dir"
ARTIFACT_FOLDER = "optuna-artifacts"  # under artifacts_dir: Optuna's FileSystemArtifactStore (curves of full-data runs)
RETRIED_FROM = "retried_from"
RESUMED_FROM_EPOCH = "resumed_from_epoch"
FIDELITY = "fidelity"
SOURCE_TRIAL = "source_trial"
WORKER = "worker"
WARM_START = "warm_start"
MUTATED_FROM = "mutated_from"
MOVE = "move"

# Keys of each entry of the ``curves`` list.
CURVE_KEYS = (
    "epoch",
    "train_loss",
    "train_accuracy",
    "dev_loss",
    "dev_accuracy",
    "lr",
    "seconds",
    "frames_per_s",
    "epochs_done",
)
