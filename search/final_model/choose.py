"""The final model: the best full-data run, or the promoted runs whose averaged probabilities do best on dev within
the parameter limit, with its submission, its labels and what it is.

``phonetune ensemble`` (and ``phonetune run``) takes every completed full-data run of the study, predicts dev with
each member's ``best.pt``, and picks members by greedy forward selection (``model.ensemble.select_ensemble``) while
their summed parameters fit the limit (the HW1P2 rule counts an ensemble's parameters together). The ensemble is
used only when it beats the best single run on dev; either way the chosen model(s) predict the test split into one
submission, scored when ``ROOT/<test_split>-labels`` exists (and then every run's own test accuracy too, for the
leaderboard), and the choice is recorded in the full-data study. Beside the submission: ``model_metadata.json`` and
the final model's per-phoneme accuracy and confusion matrix on dev (``metadata.py``). The selection is with
replacement: a member picked again weighs more in the average (``member_weights``), at no parameters more.

The submission holds the chosen model's own labels, each test frame's argmax, with the sequence decode's labels
beside it (``labels.py``); with test labels both are scored, so what the decode adds is on record.

Dev picks the members (and the decode), so the dev figures are optimistic by a little; the test accuracy is the
honest one.

Example::

    result = build_final_model(load_study_config("studies/demo.toml"), max_members=4)
    print(result.chosen, result.members, result.dev_accuracy, result.test_accuracy, result.submission)
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import optuna
from optuna.trial import TrialState

from phonetune.atomic import atomic_write_json
from phonetune.errors import ConfigError
from phonetune.model.params import DEFAULT_PARAM_LIMIT
from phonetune.model.ensemble import load_members, members_probabilities, select_ensemble
from phonetune.model.inference import load_checkpoint_split, write_submission
from phonetune.model.run_files import BEST_CHECKPOINT
from phonetune.model.scoring import labels_dir_of, read_true_labels, score_when_labelled
from phonetune.search import attributes as attrs
from phonetune.search.config import StudyConfig
from phonetune.search.final_model.labels import (
    ARGMAX_FILE,
    DECODED_FILE,
    SUBMISSION_FILE,
    decode_test_labels,
    labels_line,
)
from phonetune.search.final_model.metadata import METADATA_FILE, final_model_metadata, write_dev_diagnostics
from phonetune.search.final_model.record import FinalModel
from phonetune.search.storage import require_study
from phonetune.search.study import open_full_study, storage_for

logger = logging.getLogger(__name__)


def promoted_checkpoints(config: StudyConfig, full_study: optuna.Study) -> dict[int, Path]:
    """Search trial number -> ``best.pt`` of its completed full-data run, for every promoted run that has one."""
    found = {}
    for trial in full_study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        source = trial.user_attrs.get(attrs.SOURCE_TRIAL)
        checkpoint = config.paths.trial_dir(int(source), attrs.FULL_FIDELITY) / BEST_CHECKPOINT if source is not None else None
        if checkpoint is not None and checkpoint.is_file():
            found[int(source)] = checkpoint
    return found


def build_final_model(
    config: StudyConfig,
    *,
    max_members: int = 4,
    param_limit: int | None = None,
    out_dir: str | Path | None = None,
    progress: bool = False,
    storage: optuna.storages.BaseStorage | None = None,
) -> FinalModel:
    """Select, predict, score and record the study's ensemble (see the module docstring).

    ``param_limit`` defaults to the study's; members over it together are never selected. Raises ConfigError when
    no promoted run exists, ParamLimitError when no single run fits the limit.
    """
    if max_members < 1:
        raise ConfigError(f"--max-members must be at least 1, but got {max_members}")
    limit = config.param_limit if param_limit is None else param_limit
    storage = storage if storage is not None else storage_for(config, must_exist=True)
    # A mistyped study name lists the stored studies, as every other command says it.
    require_study(storage, config.study_name(), config.paths.storage_url, "run `phonetune search --config ...` first")
    full_study = open_full_study(config, storage)
    checkpoints = promoted_checkpoints(config, full_study) if full_study is not None else {}
    if not checkpoints:
        raise ConfigError(
            f"an ensemble needs promoted runs, but study {config.name!r} has no completed full-data run with a "
            f"{BEST_CHECKPOINT}; run `phonetune promote --config {config.source}` first"
        )
    data = config.data
    members = {number: load_members([path], limit)[0] for number, path in sorted(checkpoints.items())}
    any_member = next(iter(members.values()))
    dev = load_checkpoint_split(any_member.run_config, any_member.payload, data.root, data.dev_split, progress=progress)
    labels = np.asarray(dev.labels, dtype=np.int64)
    dev_probs = {
        number: members_probabilities([member], data.root, data.dev_split, progress=progress)
        for number, member in members.items()
    }
    member_dev = {number: float((probs.argmax(axis=1) == labels).mean()) for number, probs in dev_probs.items()}
    counts = {number: member.param_count for number, member in members.items()}
    selection = select_ensemble(dev_probs, labels, counts, limit, max_members)
    best_single = max(member_dev, key=lambda number: (member_dev[number], -number))
    # Dev chose the members, so demand a strict gain before trading one model for several.
    use_ensemble = len(selection.members) > 1 and selection.dev_accuracy > member_dev[best_single]
    chosen = list(selection.members) if use_ensemble else [best_single]
    weights = list(selection.weights) if use_ensemble else [1]

    out = Path(out_dir) if out_dir is not None else config.paths.artifacts_path / "ensemble"
    # With test labels every run predicts test alone (its own test accuracy, for the leaderboard); without them
    # only the chosen ones predict, as the submission needs.
    labelled = labels_dir_of(data).is_dir()
    test_probs_of = {number: members_probabilities([member], data.root, data.test_split, progress=progress)
                     for number, member in members.items() if labelled or number in chosen}
    test_probs = _mean([test_probs_of[number] for number in chosen], weights)
    dev_chosen = _mean([dev_probs[number] for number in chosen], weights)
    phonemes = np.asarray(any_member.run_config.data.phonemes)
    argmax_labels = test_probs.argmax(axis=1)
    decoder, decoded_labels = decode_test_labels(config, any_member, dev_chosen, labels, dev.offsets, test_probs,
                                                 progress)
    use_decoded = config.decode.mode == "viterbi" and decoder is not None and decoder.used
    main, beside = (decoded_labels, argmax_labels) if use_decoded else (argmax_labels, decoded_labels)
    submission = write_submission(out / SUBMISSION_FILE, phonemes[main])
    other = None
    if decoder is not None:
        other = write_submission(out / (ARGMAX_FILE if use_decoded else DECODED_FILE), phonemes[beside])
    result = FinalModel(
        chosen="ensemble" if use_ensemble else "single",
        members=chosen,
        member_weights=weights,
        param_count=sum(counts[number] for number in chosen),
        size_cap=limit,
        dev_accuracy=selection.dev_accuracy if use_ensemble else member_dev[best_single],
        single_dev_accuracy=member_dev[best_single],
        ensemble_dev_accuracy=selection.dev_accuracy,
        trail=list(selection.trail),
        submission=submission,
        test_frames=len(main),
        member_dev_accuracy=member_dev,
        decoder=decoder.to_dict() if decoder is not None else None,
        labels="decoded" if use_decoded else "argmax",
        other_submission=str(other) if other is not None else None,
    )
    result.test_accuracy = score_when_labelled(submission, data, out / "score")
    if result.test_accuracy is not None:
        truth = read_true_labels(labels_dir_of(data), any_member.run_config.data.phonemes)
        result.member_test_accuracy = {number: float((probs.argmax(axis=1) == truth).mean())
                                       for number, probs in test_probs_of.items()}
        result.test_argmax_accuracy = float((argmax_labels == truth).mean())
        if decoder is not None:
            result.test_decoded_accuracy = float((decoded_labels == truth).mean())
        result.test_score_dir = str(out / "score")
    dev_folder = write_dev_diagnostics(dev_chosen, labels,
                                       any_member.run_config.data.phonemes, chosen, data.dev_split, out)
    result.dev_score_dir = str(dev_folder)
    result.metadata = str(out / METADATA_FILE)
    atomic_write_json(out / METADATA_FILE, final_model_metadata(result, members, result.member_test_accuracy))
    atomic_write_json(out / "ensemble.json", result.to_dict())
    if full_study is not None:
        full_study.set_user_attr(attrs.ENSEMBLE_ATTR, result.to_dict())
    logger.debug(
        "ensemble: %s of trials %s (%s parameters), dev %.4f (best single %.4f)",
        result.chosen, chosen, f"{result.param_count:,}", result.dev_accuracy, result.single_dev_accuracy,
    )
    return result


def _mean(probabilities: list[np.ndarray], weights: list[int]) -> np.ndarray:
    """The members' probabilities averaged with ``weights`` (times each was added by the selection), in float64 as
    ``members_probabilities`` averages them."""
    total = np.zeros(probabilities[0].shape, dtype=np.float64)
    for part, weight in zip(probabilities, weights, strict=True):
        total += weight * part
    return (total / sum(weights)).astype(np.float32)


def _weights_said(result: FinalModel) -> str:
    weights = result.member_weights
    if not weights or all(weight == 1 for weight in weights):
        return ""
    return " weighted " + ":".join(str(weight) for weight in weights)


def format_final_model(result: FinalModel) -> str:
    """A few lines for the CLI: members, parameters, dev and test accuracy, single against ensemble."""
    test = "not scored (no test labels)" if result.test_accuracy is None else f"{result.test_accuracy:.4f}"
    limit = "HW1P2 limit" if result.size_cap == DEFAULT_PARAM_LIMIT else "size cap"
    lines = [
        f"chosen: {result.chosen} of search trials {result.members}{_weights_said(result)} ({result.param_count:,} "
        f"parameters; {limit} {result.size_cap:,})",
        f"dev diagnostics: {result.dev_score_dir} (per_phoneme.csv, confusion.html); metadata: {result.metadata}",
        f"dev accuracy: {result.dev_accuracy:.4f} (best single run {result.single_dev_accuracy:.4f}, best ensemble "
        f"{result.ensemble_dev_accuracy:.4f}; dev picked the members, so these are slightly optimistic)",
        f"test accuracy of the submission ({'decoded labels' if result.labels == 'decoded' else 'argmax'}): {test}",
        f"submission: {result.submission}",
    ]
    lines.insert(-1, labels_line(result.to_dict()))
    return "\n".join(lines)
