"""``Trainer``: one configuration trained end to end, ``setup()`` -> ``train()`` -> ``cleanup()``.

The loop is plain: per epoch, shuffle with a generator seeded by (seed, epoch), step through the batches, evaluate on
dev, step the schedule, write the checkpoint, call the callback. A run's length is ``epochs`` whole epochs, or
``total_steps`` optimizer steps (a run sized to a deadline ends mid-epoch); ``eval_every_steps`` adds evaluations
(each one a checkpoint and a callback) inside epochs, and ``pause_at_step`` ends a session early so that a later one
continues the same run (a search trial that ``phonetune run`` later trains to its end). With ``ema_decay`` the dev
figures and ``best.pt`` come from an exponential moving average of the weights (``model.ema``). Loss and correct-frame counts accumulate as device
tensors and are read once per epoch (the progress bar reads them every ``POSTFIX_EVERY_STEPS`` steps), so a CUDA
run never waits on the host per step. On CUDA the splits live on the GPU. The forward pass runs under bfloat16
autocast on CUDA, and on CPUs with bfloat16 instructions except for tiny models and small batches
(``model.device.bf16_pays``); elsewhere it is float32. On CPU a resumed run is bitwise identical to an
uninterrupted one either way.
What the checkpoints hold and when a resume is allowed: ``model.resume``; the end replanned to a deadline:
``model.deadline``; the training loss and the dev figures: ``model.loss``.

Example::

    trainer = Trainer(load_run_config("studies/mlp4.toml"), "runs/mlp4")
    trainer.setup()
    try:
        result = trainer.train()          # resumes from runs/mlp4/last.pt when it exists for the same config
    finally:
        trainer.cleanup()
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from pathlib import Path
from typing import Callable

import torch
from tqdm import tqdm

from phonetune import interrupts
from phonetune.data_pipeline.batches import ContextWindows
from phonetune.data_pipeline.load import TrainingData, load_training_data
from phonetune.errors import ConfigError
from phonetune.model.params import DEFAULT_PARAM_LIMIT, count_params, ensure_fits
from phonetune.model.checkpoint import read_checkpoint
from phonetune.model.deadline import Deadline, DeadlineKeeper
from phonetune.model.device import autocast_context, bf16_pays, resolve_device
from phonetune.model.ema import ModelEMA
from phonetune.model.loss import evaluate, training_loss
from phonetune.model.network import PhonemeMLP, build_model
from phonetune.model.optim import (
    HorizonSchedule,
    build_optimizer,
    build_scheduler,
    current_lr,
    step_epoch_schedule,
    steps_per_batch,
    total_steps,
)
from phonetune.model.resume import check_same_run, checkpoint_step, restore_training_state, save_run_checkpoints
from phonetune.model.run_files import (
    BEST_CHECKPOINT,
    CONFIG_FILE,
    LAST_CHECKPOINT,
    EpochMetrics,
    TrainResult,
    write_curves,
    write_metrics,
)
from phonetune.model.train_config import RunConfig, write_run_config

logger = logging.getLogger(__name__)

# Reading the running loss for the progress bar forces a device sync; this many steps apart it costs nothing.
POSTFIX_EVERY_STEPS = 50
# A run with a deadline replans its end this many steps apart between evaluations too: a load that comes and goes
# between two evaluations would otherwise set the end for the rest of the run (after the last evaluation, all of it).
REPLAN_EVERY_STEPS = 100

EpochCallback = Callable[[EpochMetrics], None]


def epoch_seed(seed: int, epoch: int) -> int:
    """Shuffle seed of ``epoch`` (1-based): depends only on (seed, epoch), so a resumed epoch repeats its order."""
    return (seed * 1_000_003 + epoch) % (1 << 63)


class Trainer:
    """Trains ``run_config`` into ``out_dir``; see the module docstring for the flow.

    ``data`` may be passed already loaded (the search loads it once per process for every trial); otherwise
    ``setup`` loads it with ``load_training_data(run_config.data)``. ``epoch_callback`` gets each epoch's ``EpochMetrics`` after the
    checkpoint is written; an exception it raises stops training and propagates. An ``out_dir`` whose ``last.pt``
    was made for another config raises CheckpointError unless ``overwrite=True``.
    """

    def __init__(
        self,
        run_config: RunConfig,
        out_dir: str | Path,
        *,
        data: TrainingData | None = None,
        epoch_callback: EpochCallback | None = None,
        progress: bool = True,
        overwrite: bool = False,
        param_limit: int = DEFAULT_PARAM_LIMIT,
        curves: bool = True,
        deadline: float | Deadline | None = None,
    ) -> None:
        self.run_config = run_config
        self.out_dir = Path(out_dir)
        self.epoch_callback = epoch_callback
        self.progress = progress
        self.overwrite = overwrite
        self.param_limit = param_limit
        self.curves = curves  # curves.html inlines plotly (~5 MB): a search of many trials may skip it
        # A time.monotonic() value the last step must end by: a horizon schedule's end is replanned at each
        # evaluation to the step the time left buys at the speed just measured (phonetune run's final run).
        self.deadline = deadline
        if isinstance(deadline, (int, float)):
            deadline = Deadline(at=float(deadline))
        self.deadline_keeper = None if deadline is None else DeadlineKeeper(deadline)
        self._evaluation_seconds = 0.0  # the last evaluation's wall time, which the steps left must leave room for
        self._given_data = data
        self.device: torch.device | None = None
        self.model: PhonemeMLP | None = None
        self.norm_stats = None  # the training statistics under normalization="global", stored in checkpoints
        self.result = TrainResult(out_dir=self.out_dir)

    # ---------------------------------------------------------------- setup
    def setup(self) -> None:
        config = self.run_config
        ensure_fits(config.model, config.io, self.param_limit)  # fail before loading data or allocating
        self.device = resolve_device(config.train.device)
        self.use_bf16 = config.train.bf16 and bf16_pays(
            self.device, count_params(config.model, config.io), config.train.batch_size)
        data = self._training_data()
        # Checkpoints carry the statistics so that predicting needs neither the training split nor a recomputation.
        self.norm_stats = data.stats
        self.train_windows = ContextWindows(data.train, config.data.context_frames, self.device)
        self.dev_windows = ContextWindows(data.dev, config.data.context_frames, self.device)
        self.augment = config.data.augment if config.data.augment.enabled else None

        torch.manual_seed(config.train.seed)
        self.model = build_model(config.model, config.io, self.param_limit).to(self.device)
        self.step_model = torch.compile(self.model) if config.train.compile else self.model
        self.steps_per_epoch = self.train_windows.num_batches(config.train.batch_size)
        self.total_steps = total_steps(config.train, self.steps_per_epoch)
        self.optimizer = build_optimizer(self.model, config.train, self.device)
        self.scheduler = build_scheduler(self.optimizer, config.train, self.steps_per_epoch)
        self.ema = ModelEMA(self.model, config.train.ema_decay) if config.train.ema_decay > 0 else None
        self.result = TrainResult(out_dir=self.out_dir, param_count=self.model.param_count())
        self.step = 0  # optimizer steps taken so far, over every session of this run
        self._epoch_batches = None  # the live iterator over the current epoch's remaining batches
        self._epoch_generator: torch.Generator | None = None
        self._resume_state: torch.Tensor | None = None  # the shuffle generator's state at a mid-epoch checkpoint
        self._resume_or_start()

    def _training_data(self) -> TrainingData:
        config = self.run_config.data
        data = self._given_data
        if data is None:
            return load_training_data(config, progress=self.progress)
        wanted = (config.train_fraction, config.subsample_seed, config.dev_fraction)
        if (data.train_fraction, data.subsample_seed, data.dev_fraction) != wanted:
            raise ConfigError(
                f"the training data given to the trainer must be the subsample its config asks for "
                f"(train_fraction={config.train_fraction}, subsample_seed={config.subsample_seed}, dev_fraction="
                f"{config.dev_fraction}), but it was loaded with train_fraction={data.train_fraction}, "
                f"subsample_seed={data.subsample_seed}, dev_fraction={data.dev_fraction}"
            )
        return data

    def _resume_or_start(self) -> None:
        last = self.out_dir / LAST_CHECKPOINT
        current = self.run_config.to_mapping()
        if last.exists() and not self.overwrite:
            payload = read_checkpoint(last, map_location=self.device)
            step = checkpoint_step(payload, self.steps_per_epoch)
            check_same_run(payload["run_config"], current, last, step=step, total_steps=self.total_steps,
                           steps_per_epoch=self.steps_per_epoch, train=self.run_config.train)
            restore_training_state(payload, last, model=self.model, optimizer=self.optimizer,
                                   scheduler=self.scheduler, ema=self.ema)
            schedule = self._horizon_schedule()
            if schedule is not None and schedule.anchor_step is not None:
                self.total_steps = schedule.total  # the end a replan moved it to, not the config's
            resumed = TrainResult.from_checkpoint(payload, self.out_dir)
            self.result = dataclasses.replace(resumed, param_count=self.result.param_count)
            self.step = step
            self._resume_state = payload.get("shuffle_state")
            stored_dev = payload["run_config"]["data"].get("dev_fraction", 1.0)
            if stored_dev != self.run_config.data.dev_fraction:
                # The earlier evaluations measured another share of dev: the next evaluation sets best.pt afresh.
                self.result.best_dev_acc, self.result.best_epoch = 0.0, 0
            logger.info("resuming %s after step %d (evaluation %d)", self.out_dir, self.step, payload["epoch"])
        else:
            for stale in (LAST_CHECKPOINT, BEST_CHECKPOINT):
                (self.out_dir / stale).unlink(missing_ok=True)
        write_run_config(
            self.out_dir / CONFIG_FILE, self.run_config,
            header=f"resolved run config of {self.out_dir}, written by the phonetune trainer",
        )

    # ---------------------------------------------------------------- train
    def train(self) -> TrainResult:
        if self.model is None:
            self.setup()
        config = self.run_config
        pause = config.train.pause_at_step
        stop = min(pause, self.total_steps) if pause else self.total_steps
        started = time.perf_counter()
        wall_before = self.result.wall_seconds
        try:
            while self.step < stop or (self.result.history and self.result.best_epoch == 0):
                round_started = time.perf_counter()
                if self.step < stop:
                    train_loss, train_acc, frames_per_s = self._train_until(self._next_evaluation(stop))
                else:
                    # Nothing left to train, but no evaluation of this run's dev share yet (a continued run that
                    # evaluates on all of dev): evaluate once, so that best.pt holds the model as it stands.
                    last = self.result.history[-1]
                    train_loss, train_acc, frames_per_s = last.train_loss, last.train_acc, 0.0
                evaluated_at = time.perf_counter()
                evaluated = self.ema.module if self.ema is not None else self.step_model
                dev_loss, dev_acc = evaluate(
                    evaluated, self.dev_windows, config.train.eval_batch_size, self.device, self.use_bf16
                )
                lr = current_lr(self.optimizer)
                if config.train.eval_every_steps == 0 or config.train.scheduler == "plateau":
                    # Epoch-end evaluations step a per-epoch schedule here (plateau watches the dev loss); with
                    # evaluations inside epochs the other per-epoch schedules step at each epoch end as it passes.
                    step_epoch_schedule(self.scheduler, config.train, dev_loss)
                metrics = EpochMetrics(
                    epoch=len(self.result.history) + 1, train_loss=train_loss, train_acc=train_acc,
                    dev_loss=dev_loss, dev_acc=dev_acc, lr=lr, frames_per_s=frames_per_s,
                    seconds=time.perf_counter() - round_started, step=self.step,
                    epochs_done=self.step / self.steps_per_epoch, total_steps=self.total_steps,
                )
                self.result.history.append(metrics)
                self.result.wall_seconds = wall_before + time.perf_counter() - started
                self._evaluation_seconds = time.perf_counter() - evaluated_at
                if self.deadline_keeper is not None and frames_per_s > 0:
                    self.deadline_keeper.observe(frames_per_s, config.train.batch_size)
                    self._replan()
                    metrics.total_steps = self.total_steps  # the end this evaluation just moved it to
                    stop = min(pause, self.total_steps) if pause else self.total_steps
                self._checkpoint(metrics)
                logger.info(
                    "step %d/%d (epoch %.2f): train loss %.4f acc %.4f | dev loss %.4f acc %.4f | lr %.2e | "
                    "%.0f frames/s", self.step, self.total_steps, metrics.epochs_done, train_loss, train_acc,
                    dev_loss, dev_acc, lr, frames_per_s,
                )
                if self.epoch_callback is not None:
                    self.epoch_callback(metrics)
        except BaseException:
            if self.curves:
                # The error that stopped training (often a full disk) must not be hidden by its plot failing too.
                with contextlib.suppress(OSError):
                    write_curves(self.result, title=f"{self.out_dir.name}: {self.result.param_count:,} parameters")
            raise
        if self.curves:
            write_curves(self.result, title=f"{self.out_dir.name}: {self.result.param_count:,} parameters")
        return self.result

    def _replan(self) -> None:
        self.total_steps = self.deadline_keeper.replan(
            self._horizon_schedule(), self.step, self.total_steps,
            self.run_config.train.eval_every_steps or self.steps_per_epoch, self._evaluation_seconds,
        )

    def _horizon_schedule(self) -> HorizonSchedule | None:
        lambdas = getattr(self.scheduler, "lr_lambdas", None)
        return lambdas[0] if lambdas and isinstance(lambdas[0], HorizonSchedule) else None

    def _next_evaluation(self, stop: int) -> int:
        """The step of the next evaluation: the next ``eval_every_steps`` multiple when set (however many epochs that
        spans: a small split must not evaluate every few steps), else the end of this epoch; never past ``stop``."""
        every = self.run_config.train.eval_every_steps or self.steps_per_epoch
        return min((self.step // every + 1) * every, stop)

    def _batches(self):
        """The current epoch's remaining batches: the live iterator, or a new one at an epoch start or after a
        resume inside an epoch (same order, the shuffle generator put back where the checkpoint saved it)."""
        if self._epoch_batches is None:
            config = self.run_config.train
            epoch = self.step // self.steps_per_epoch + 1
            self._epoch_generator = torch.Generator(device=self.device).manual_seed(epoch_seed(config.seed, epoch))
            start_batch = self.step % self.steps_per_epoch
            self._epoch_batches = iter(self.train_windows.train_batches(
                config.batch_size, self._epoch_generator, self.augment, recycle=True, start_batch=start_batch,
                resume_state=self._resume_state if start_batch else None,
            ))
            self._resume_state = None
        return self._epoch_batches

    def _train_until(self, end_step: int) -> tuple[float, float, float]:
        """Optimizer steps up to ``end_step``, across epoch ends; returns the train loss, accuracy and speed."""
        config = self.run_config.train
        self.model.train()
        loss_sum = torch.zeros((), dtype=torch.float64, device=self.device)
        correct = torch.zeros((), dtype=torch.int64, device=self.device)
        per_batch_schedule = self.scheduler is not None and steps_per_batch(config)
        epoch = self.step // self.steps_per_epoch + 1
        bar = tqdm(
            total=end_step - self.step, unit="step", leave=False, disable=not self.progress,
            desc=f"epoch {epoch} step {self.step}/{self.total_steps}",
        )
        frames = 0
        started = time.perf_counter()
        replanned_at, replanned_step = started, self.step
        batches = self._batches()
        while self.step < end_step:
            if interrupts.requested():
                raise KeyboardInterrupt  # a Ctrl-C whose first KeyboardInterrupt was swallowed (phonetune.interrupts)
            batch = next(batches, None)
            if batch is None:  # an epoch ended inside this round
                self._epoch_batches = None
                if config.eval_every_steps and config.scheduler != "plateau":
                    step_epoch_schedule(self.scheduler, config, 0.0)
                batches = self._batches()
                batch = next(batches)
            x, y = batch
            with autocast_context(self.device, self.use_bf16):
                loss, logits = training_loss(self.step_model, x, y, config)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), config.grad_clip)
            self.optimizer.step()
            if per_batch_schedule:
                self.scheduler.step()
            if self.ema is not None:
                self.ema.update(self.model)
            self.step += 1
            if self.deadline_keeper is not None and self.step - replanned_step >= REPLAN_EVERY_STEPS:
                now = time.perf_counter()
                self.deadline_keeper.observe_step_seconds((now - replanned_at) / (self.step - replanned_step))
                self._replan()
                end_step = min(end_step, self.total_steps)  # a shortened run ends, and evaluates, at its new end
                replanned_at, replanned_step = now, self.step
            loss_sum += loss.detach() * y.shape[0]
            correct += (logits.detach().argmax(dim=1) == y).sum()
            frames += y.shape[0]
            bar.update(1)
            if self.progress and bar.n % POSTFIX_EVERY_STEPS == 1:
                bar.set_postfix(loss=f"{loss_sum.item() / frames:.3f}", acc=f"{correct.item() / frames:.3f}")
        if self.step % self.steps_per_epoch == 0:
            self._epoch_batches = None  # the epoch is done; the next call draws the next epoch's order
            if config.eval_every_steps and config.scheduler != "plateau":
                step_epoch_schedule(self.scheduler, config, 0.0)
        train_loss = float(loss_sum.item()) / frames  # the one sync of the round
        train_acc = int(correct.item()) / frames
        frames_per_s = frames / (time.perf_counter() - started)
        bar.close()
        return train_loss, train_acc, frames_per_s

    def _checkpoint(self, metrics: EpochMetrics) -> None:
        inside_epoch = self.step % self.steps_per_epoch != 0
        save_run_checkpoints(
            self.out_dir, metrics, self.result, run_config=self.run_config, model=self.model, ema=self.ema,
            optimizer=self.optimizer, scheduler=self.scheduler, step=self.step,
            shuffle_state=self._shuffle_state() if inside_epoch else None, norm_stats=self.norm_stats,
        )
        write_metrics(self.result, self.run_config.data.trained_on)

    def _shuffle_state(self) -> torch.Tensor | None:
        """The shuffle generator's state at this step inside an epoch: the live one's, or, when this session has not
        stepped since resuming there (a run continued with nothing left to train), the state it resumed from."""
        if self._epoch_batches is not None and self._epoch_generator is not None:
            return self._epoch_generator.get_state()
        return self._resume_state

    # ---------------------------------------------------------------- cleanup
    def cleanup(self) -> None:
        """Drop the model, optimizer and device-resident data so the next trial in this process starts clean."""
        for name in ("train_windows", "dev_windows", "optimizer", "scheduler", "step_model"):
            if hasattr(self, name):
                delattr(self, name)
        self.model = None
        if self.device is not None and self.device.type == "cuda":
            torch.cuda.empty_cache()
