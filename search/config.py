"""``StudyConfig``: everything one study does, loaded from a study TOML and validated before anything runs.

A study file has these tables (each optional except ``[study]`` with its ``name``):

- ``[study]``    name, storage URL, trial target (``n_trials`` / ``timeout_seconds``), ``param_limit``, heartbeats
- ``[data]``     a ``DataConfig`` without the keys the search owns (context and masking come from ``[space]``,
                 the training fraction from ``[fidelity]``)
- ``[train]``    fixed ``TrainConfig`` settings (device, bf16, seed, clipping...) without the searched keys
- ``[fidelity]`` training fraction and epochs of a search trial, and epochs of a full-data (promoted) run
- ``[timing]``   time-boxed trials instead of epochs (``phonetune run`` writes it into the study it resolves)
- ``[sampler]``, ``[pruner]``  which Optuna sampler and pruner, and their settings
- ``[decode]``   which labels the submission holds: ``mode = "argmax"`` (the default: each frame's own, the
                 sequence decode's written beside), ``"viterbi"`` (the likeliest phoneme sequence under the training
                 labels' durations and phoneme trigrams, when dev prefers it) or ``"off"`` (``model/decode.py``)
- ``[space]``    one entry per hyperparameter (see ``search/space_spec.py``); an omitted one stays fixed at the
                 run config default

``load_study_config(path, overrides)`` collects every problem (unknown keys, wrong types, values out of range) into
one ``ConfigError`` whose lines name the file and table, then checks that the space's smallest model fits the
parameter limit (``ParamLimitError`` otherwise).

Example::

    config = load_study_config("studies/demo.toml", ["study.n_trials=4", "space.context_frames.high=10"])
    config.name, config.paths.storage_url, config.paths.trial_dir(3)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence

from phonetune.configs import apply_overrides, collect_problems, did_you_mean, raise_problems, read_toml
from phonetune.data_pipeline.config import DataConfig
from phonetune.errors import ConfigError
from phonetune.model.params import DEFAULT_PARAM_LIMIT
from phonetune.model.speed import Speed
from phonetune.model.train_config import TrainConfig
from phonetune.search.attributes import FULL_FIDELITY, SEARCH_FIDELITY, check_fidelity
from phonetune.search.overrides import blame_overrides, override_problems
from phonetune.search.paths import StudyPaths
from phonetune.search.space_sizes import check_space_limit
from phonetune.search.space_spec import HYPERPARAMETERS, Choice, FloatRange, IntRange, ParamSpec
from phonetune.search.space_table import load_space, space_problems
from phonetune.search.warm_start import WarmStart, load_warm_starts

logger = logging.getLogger(__name__)


@dataclass
class StudySettings:
    """``[study]``: identity, storage, how many trials, the parameter limit and dead-worker detection."""

    name: str  # study name in the storage; also names studies/<name>.db and studies/<name>/trials/
    storage: str = ""  # "" = sqlite:///studies/<name>.db; any SQLAlchemy URL (postgresql://...) or journal:///file.log
    artifacts_dir: str = ""  # "" = studies/<name>; trial run folders go to <artifacts_dir>/trials/<number>/
    n_trials: int = 20  # finished (COMPLETE or PRUNED) trials the study aims for, over all workers and runs; 0 = no cap
    timeout_seconds: float = 0.0  # each worker stops starting trials after this long; 0 = no time limit
    param_limit: int = DEFAULT_PARAM_LIMIT  # no sampled model may exceed this; lower is fine, above 20M is refused
    heartbeat_interval: int = 10  # seconds between a running trial's heartbeats (integer, as Optuna requires)
    grace_period: int = 60  # a RUNNING trial silent this long is failed and retried; must exceed the interval
    max_retry: int = 3  # how often a trial whose worker died is re-queued before it is given up
    max_consecutive_failures: int = 3  # a worker stops after this many trials in a row raise an error

    def problems(self) -> list[str]:
        found = []
        if not self.name or any(char in self.name for char in "/\\ "):
            found.append(f"name must be a non-empty word without slashes or spaces, but got {self.name!r}")
        if self.n_trials < 0:
            found.append(f"n_trials must be 0 (no cap) or more, but got {self.n_trials}")
        if self.timeout_seconds < 0:
            found.append(f"timeout_seconds must be 0 (no limit) or more, but got {self.timeout_seconds}")
        if self.n_trials == 0 and self.timeout_seconds == 0:
            found.append("n_trials or timeout_seconds must be set, but both are 0 (the study would never stop)")
        if self.param_limit <= 0:
            found.append(f"param_limit must be a positive integer, but got {self.param_limit}")
        elif self.param_limit > DEFAULT_PARAM_LIMIT:
            found.append(
                f"param_limit must be at most {DEFAULT_PARAM_LIMIT:,} (the HW1P2 limit), but got "
                f"{self.param_limit:,}; lower it"
            )
        if self.heartbeat_interval < 1:
            found.append(f"heartbeat_interval must be at least 1 second, but got {self.heartbeat_interval}")
        if self.grace_period <= self.heartbeat_interval:
            found.append(
                f"grace_period must exceed heartbeat_interval={self.heartbeat_interval}, but got {self.grace_period}"
            )
        if self.max_retry < 0:
            found.append(f"max_retry must be 0 or more, but got {self.max_retry}")
        if self.max_consecutive_failures < 1:
            found.append(f"max_consecutive_failures must be at least 1, but got {self.max_consecutive_failures}")
        return found


@dataclass
class FidelityConfig:
    """``[fidelity]``: how cheap a search trial is, and how thorough a promoted full-data run is."""

    train_fraction: float = 0.1  # fraction of training utterances a search trial trains on
    trial_epochs: int = 5  # epochs of a search trial (the pruner's resource axis)
    subsample_seed: int = 0  # which utterances the fraction keeps; the same for every trial, so trials compare
    full_epochs: int = 20  # epochs of a promoted or retrained run on all the training data
    full_train_fraction: float = 1.0  # fraction of training utterances of a promoted run

    def problems(self) -> list[str]:
        found = []
        for name in ("train_fraction", "full_train_fraction"):
            value = getattr(self, name)
            if not 0.0 < value <= 1.0:
                found.append(f"{name} must be in (0, 1], but got {value}")
        for name in ("trial_epochs", "full_epochs"):
            if getattr(self, name) < 1:
                found.append(f"{name} must be at least 1, but got {getattr(self, name)}")
        return found


@dataclass
class TimingConfig:
    """``[timing]``: trials sized in wall time, which ``phonetune run`` writes into the study it resolves (a study
    file normally leaves this table out, and trials then train ``[fidelity]`` epochs).

    With ``trial_seconds`` > 0 a search trial is a whole run compressed to that horizon: priced in optimizer steps
    at the speed line measured on this machine (``[timing.speed]``, ``model.speed.Speed``), it warms up, then its
    learning rate falls linearly to zero at its last step (``search.timing``). Every trial gets the same wall time,
    whatever its size: the comparison a fixed deadline makes. A promoted run of such a study trains from scratch for
    ``final_seconds`` on the same schedule. With ``continues`` (``phonetune run``'s direct plan) a trial is instead
    the first ``trial_seconds`` of its final run, held at the full rate, and its promoted run continues it.
    """

    trial_seconds: float = 0.0  # 0 = trials train [fidelity] trial_epochs epochs; else a whole run of this long
    final_seconds: float = 0.0  # a promoted (final) run's horizon
    evaluations: int = 3  # dev evaluations per trial, evenly spaced; the last one, at the horizon, ranks it
    dev_fraction: float = 0.3  # share of dev utterances a trial evaluates on (a promoted run: all of them)
    speed: Speed | None = None  # the speed line the steps are priced at (required with trial_seconds)
    continues: bool = False  # a trial is the start of its final run, which continues its checkpoint

    @property
    def enabled(self) -> bool:
        return self.trial_seconds > 0

    def problems(self) -> list[str]:
        found = []
        for name in ("trial_seconds", "final_seconds"):
            if getattr(self, name) < 0:
                found.append(f"{name} must be 0 or more, but got {getattr(self, name)}")
        if self.evaluations < 1:
            found.append(f"evaluations must be at least 1, but got {self.evaluations}")
        if not 0.0 < self.dev_fraction <= 1.0:
            found.append(f"dev_fraction must be in (0, 1], but got {self.dev_fraction}")
        if self.enabled:
            if self.final_seconds < self.trial_seconds:
                found.append(f"final_seconds must be at least trial_seconds={self.trial_seconds:g} (a final run is "
                             f"no shorter than a trial), but got {self.final_seconds:g}")
            if self.speed is None or self.speed.seconds_per_frame(1) <= 0:
                found.append("[timing.speed] must give a positive speed line when trial_seconds is set (trials are "
                             "priced at that speed)")
        return found


@dataclass
class SamplerConfig:
    """``[sampler]``: which Optuna sampler proposes each trial's hyperparameters."""

    kind: Literal["tpe", "random", "gp", "cmaes", "prior"] = "tpe"  # prior: mutations of the best trial, then TPE
    prior_weight: float = 10.0  # prior: a trial mutates the best one with chance w / (w + finished trials)
    target_params: int = 0  # prior: every sampled trial's width gives this many parameters (phonetune run: its size)
    seed: int = 0  # worker i seeds its sampler with seed + i, so parallel workers draw different startup trials
    n_startup_trials: int = 10  # random trials before the model-based sampler takes over (tpe, gp)
    multivariate: bool = True  # tpe: model parameters jointly (better with interacting hyperparameters)
    group: bool = True  # tpe: split conditional parameters (momentum) into groups instead of sampling them blindly
    constant_liar: bool = True  # tpe: treat running trials as bad, so parallel workers do not propose the same point

    def problems(self) -> list[str]:
        found = []
        if self.n_startup_trials < 0:
            found.append(f"n_startup_trials must be 0 or more, but got {self.n_startup_trials}")
        if self.prior_weight < 0:
            found.append(f"prior_weight must be 0 or more, but got {self.prior_weight}")
        if self.target_params < 0:
            found.append(f"target_params must be 0 (keep the parent's size) or more, but got {self.target_params}")
        if self.group and not self.multivariate and self.kind == "tpe":
            found.append("group = true needs multivariate = true (Optuna's TPE rule)")
        return found


@dataclass
class PrunerConfig:
    """``[pruner]``: when a trial's dev accuracy after some epochs is bad enough to stop it early."""

    kind: Literal["median", "asha", "hyperband", "none"] = "median"  # asha = asynchronous successive halving
    n_startup_trials: int = 4  # median: trials that always run to the end before pruning starts
    n_warmup_steps: int = 1  # median: epochs a trial always runs before it may be pruned
    interval_steps: int = 1  # median: check every this many epochs
    min_resource: int = 1  # asha/hyperband: epochs before the first rung
    reduction_factor: int = 3  # asha/hyperband: keep the top 1/reduction_factor at each rung
    min_early_stopping_rate: int = 0  # asha: skip this many rungs at the bottom
    prune_warm_starts: bool = True  # false: [[warm_start]] trials always run to their end (phonetune run's screen)

    def problems(self) -> list[str]:
        found = []
        for name in ("n_startup_trials", "n_warmup_steps", "min_early_stopping_rate"):
            if getattr(self, name) < 0:
                found.append(f"{name} must be 0 or more, but got {getattr(self, name)}")
        for name in ("interval_steps", "min_resource"):
            if getattr(self, name) < 1:
                found.append(f"{name} must be at least 1, but got {getattr(self, name)}")
        if self.reduction_factor < 2:
            found.append(f"reduction_factor must be at least 2, but got {self.reduction_factor}")
        return found


@dataclass
class DecodeConfig:
    """``[decode]``: which labels the submission holds (``model/decode.py``). ``argmax`` (the default): each frame's
    argmax, the network's own labels, with the sequence decode's labels written beside them; ``viterbi``: the
    sequence decode's labels when they beat the argmax on dev, the argmax's beside them; ``off``: the argmax alone,
    and no time spent on the decode."""

    mode: Literal["argmax", "viterbi", "off"] = "argmax"


def search_owned_keys() -> tuple[dict[str, str], dict[str, str]]:
    """Keys of [data] and [train] that the search decides, each with where a study file sets it instead."""
    data_keys = {"train_fraction": "[fidelity] train_fraction", "subsample_seed": "[fidelity] subsample_seed",
                 "dev_fraction": "[timing] dev_fraction"}
    train_keys = {"epochs": "[fidelity] trial_epochs / full_epochs"}
    for key in ("total_steps", "hold_steps", "pause_at_step"):
        train_keys[key] = "[timing] trial_seconds / final_seconds (phonetune run sets them)"
    for name, hyper in HYPERPARAMETERS.items():
        if hyper.section == "data":
            data_keys[hyper.field] = f"[space.{name}]"
        elif hyper.section == "train":
            train_keys[hyper.field] = f"[space.{name}]"
    return data_keys, train_keys


SECTIONS = ("study", "data", "train", "fidelity", "timing", "sampler", "pruner", "decode", "space", "warm_start")


@dataclass
class StudyConfig:
    """A whole study file. Paths and URLs are as written; ``paths`` resolves them against the working folder."""

    study: StudySettings
    data: DataConfig  # the base data settings of every trial
    train: TrainConfig  # the base training settings of every trial
    fidelity: FidelityConfig = field(default_factory=FidelityConfig)
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    pruner: PrunerConfig = field(default_factory=PrunerConfig)
    space: dict[str, ParamSpec] = field(default_factory=dict)  # every hyperparameter in HYPERPARAMETERS
    warm_start: list[WarmStart] = field(default_factory=list)  # enqueued before any sampled trial, in this order
    timing: TimingConfig = field(default_factory=TimingConfig)  # time-boxed trials (phonetune run)
    decode: DecodeConfig = field(default_factory=DecodeConfig)  # the final model's labels from its posteriors
    source: str = "<memory>"  # the study file it was read from, for messages
    overrides: tuple[str, ...] = ()  # the --set overrides applied on top, for messages (workers load a resolved file)

    @property
    def name(self) -> str:
        return self.study.name

    @property
    def param_limit(self) -> int:
        return self.study.param_limit

    def study_name(self, fidelity: str = SEARCH_FIDELITY) -> str:
        """Name of the Optuna study of one fidelity: ``<name>`` for search trials, ``<name>-full`` for promoted runs."""
        return self.name if check_fidelity(fidelity) == SEARCH_FIDELITY else f"{self.name}-{FULL_FIDELITY}"

    @property
    def paths(self) -> StudyPaths:
        """Where the study's files live (storage URL, artifacts folder, run folders), resolved against the working
        folder now."""
        return StudyPaths.resolve(self.name, self.study.artifacts_dir, self.study.storage)

    def describe(self) -> str:
        return f"study {self.name!r} in {self.paths.storage_url} ({self.source})"


def load_study_config(path: str | Path, overrides: Sequence[str] = ()) -> StudyConfig:
    """Read, override and validate a study TOML; see the module docstring. Raises ConfigError or ParamLimitError.

    A problem an override brings is blamed on it: a ``--set`` naming no key of a study file is refused by name
    before the file is read (``override_problems``), and a value it sets that the file's checks refuse is marked
    ``(from --set ...)``.
    """
    owned = dict(zip(("data", "train"), search_owned_keys()))
    overrides = [_renamed_override(text) for text in overrides]
    raise_problems(override_problems(overrides, TABLE_CLASSES, owned), f"invalid --set for {path}")
    raw = apply_overrides(_renamed_keys(read_toml(path), str(path)), list(overrides))
    try:
        config = study_config_from_mapping(raw, source=str(path))
    except ConfigError as exc:
        raise ConfigError(blame_overrides(str(exc), overrides)) from exc
    config.overrides = tuple(overrides)
    return config


# Keys a study file may still carry under their old names: (table, old, new). Each loads under its new name, with
# one line saying so.
RENAMED_KEYS = (("study", "param_budget", "param_limit"),)


def _renamed_keys(raw: dict[str, Any], source: str) -> dict[str, Any]:
    """``raw`` with each old key of ``RENAMED_KEYS`` moved to its new name (a file that sets both is left for the
    unknown-key check to refuse)."""
    for table, old, new in RENAMED_KEYS:
        section = raw.get(table)
        if isinstance(section, dict) and old in section and new not in section:
            logger.warning("%s: [%s] %s is now called %s; it loads under the new name", source, table, old, new)
            section[new] = section.pop(old)
    return raw


def _renamed_override(text: str) -> str:
    """A ``--set`` of an old key (``study.param_budget=...``) as the new one, with one line saying so."""
    for table, old, new in RENAMED_KEYS:
        if text.strip().startswith(f"{table}.{old}="):
            logger.warning("--set %s.%s is now --set %s.%s", table, old, table, new)
            return text.replace(f"{table}.{old}=", f"{table}.{new}=", 1)
    return text


# The tables of a study file that hold one dataclass each; [space] and [[warm_start]] are checked on their own.
TABLE_CLASSES: dict[str, type] = {"study": StudySettings, "data": DataConfig, "train": TrainConfig,
                                  "fidelity": FidelityConfig, "timing": TimingConfig, "sampler": SamplerConfig,
                                  "pruner": PrunerConfig, "decode": DecodeConfig}


def study_config_from_mapping(raw: Mapping[str, Any], source: str = "<memory>") -> StudyConfig:
    """Build a StudyConfig from an already parsed mapping (a study TOML's contents)."""
    problems: list[str] = []
    for key in raw:
        if key not in SECTIONS:
            problems.append(f"{source}: unknown table [{key}];{did_you_mean(key, SECTIONS)} known tables are: "
                            f"{', '.join(SECTIONS)}")
    if "study" not in raw:
        problems.append(f"{source}: table [study] with at least name = \"...\" is required")

    data_table = dict(raw.get("data") or {})
    train_table = dict(raw.get("train") or {})
    data_owned, train_owned = search_owned_keys()
    for table, owned, section in ((data_table, data_owned, "data"), (train_table, train_owned, "train")):
        for key in sorted(set(table) & set(owned)):
            problems.append(f"{source} [{section}]: {key} is decided by the search; set it in {owned[key]} instead")
            del table[key]

    study = collect_problems(StudySettings, raw.get("study"), f"{source} [study]", problems) if "study" in raw else None
    data = collect_problems(DataConfig, data_table, f"{source} [data]", problems)
    train = collect_problems(TrainConfig, train_table, f"{source} [train]", problems)
    fidelity = collect_problems(FidelityConfig, raw.get("fidelity"), f"{source} [fidelity]", problems)
    sampler = collect_problems(SamplerConfig, raw.get("sampler"), f"{source} [sampler]", problems)
    pruner = collect_problems(PrunerConfig, raw.get("pruner"), f"{source} [pruner]", problems)
    timing = collect_problems(TimingConfig, raw.get("timing"), f"{source} [timing]", problems)
    decode = collect_problems(DecodeConfig, raw.get("decode"), f"{source} [decode]", problems)
    space = load_space(raw.get("space"), source, data, train, problems)

    if space is not None:
        problems.extend(space_problems(space, sampler.kind if sampler is not None else None, source))
    warm_start = load_warm_starts(raw.get("warm_start"), source, space, problems)
    raise_problems(problems, f"invalid study config {source}")

    config = StudyConfig(study, data, train, fidelity, sampler, pruner, space, warm_start, timing, decode,
                         source=source)
    check_space_limit(config)
    return config


__all__ = [
    "DecodeConfig",
    "FidelityConfig",
    "PrunerConfig",
    "SamplerConfig",
    "StudyConfig",
    "StudySettings",
    "WarmStart",
    "load_study_config",
    "study_config_from_mapping",
    "FloatRange",
    "IntRange",
    "Choice",
]
