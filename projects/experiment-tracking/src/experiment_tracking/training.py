"""The training loop: plain PyTorch driven by Hugging Face Accelerate.

The same code runs on CPU, on one GPU with mixed precision, and on several processes or machines
(``accelerate launch`` or ``torchrun``). Seeded; evaluates on the validation split, keeps the best
model, stops early, checkpoints (model, optimizer, scheduler, RNG states, loop position) and
resumes. SIGTERM/SIGINT save a checkpoint and stop, so preempted jobs continue where they were.

Shape: ``fit`` runs epochs of ``train_epoch``, which composes a ``FitSession``'s steps
(``train_step``, ``log_train_metrics``, ``eval_step``, ``save_checkpoint``) on a ``Cadence``;
``LoopState`` is where the loop stands, what a checkpoint saves and a resumed run restores.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import shutil
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
from roadmap_lab.results import atomic_write_json

from experiment_tracking.data import LABEL_TO_ID, LABELS, ReviewData
from experiment_tracking.errors import ExperimentTrackingError
from experiment_tracking.settings import TrainConfig
from experiment_tracking.tracking import Tracker

if TYPE_CHECKING:
    import torch
    from accelerate import Accelerator

logger = logging.getLogger(__name__)

STATE_FILE = "trainer_state.json"  # written last: a checkpoint folder without it is incomplete
# Settings that must not change between an interrupted run and its resumption.
RESUME_INVARIANTS = (
    "batch_size",
    "max_length",
    "learning_rate",
    "epochs",
    "max_steps",
    "train_subset",
    "seed",
    "warmup_ratio",
    "weight_decay",
)

EvaluateCallback = Callable[[int, dict[str, float]], None]


class TrainingError(ExperimentTrackingError):
    """Training cannot start or continue; the message says why."""


class TrainingInterrupted(KeyboardInterrupt):
    """A stop signal arrived; a checkpoint was saved at ``step`` (the CLI exits 130 with this
    message, as on Ctrl-C)."""

    def __init__(self, step: int, checkpoint: Path) -> None:
        super().__init__(
            f"training interrupted at step {step}; checkpoint saved in {checkpoint}. "
            "Run the same command with --resume to continue"
        )
        self.step = step
        self.checkpoint = checkpoint


@dataclass
class FitResult:
    model_dir: Path  # the best (or, without evaluation, the last) model as an HF folder
    global_step: int
    epochs_completed: float
    samples_seen: int
    train_seconds: float
    samples_per_second: float
    world_size: int
    distributed_type: str
    mixed_precision: str
    stopped_early: bool
    resumed_from_step: int | None
    best_step: int | None
    best_validation: dict[str, float]
    history: list[dict[str, float]] = field(default_factory=list)
    evaluations: list[dict[str, float]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(self).items()}


class _StopFlag:
    """Set by SIGTERM/SIGINT; the loop checks it between steps."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        logger.warning("received signal %d: saving a checkpoint, then stopping", signum)
        self.requested = True

    def install(self) -> None:
        for signum in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(ValueError):  # not the main thread: no handler
                self._previous[signum] = signal.signal(signum, self._handle)

    def restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()


def resolve_mixed_precision(value: str) -> str:
    """ "auto": bf16 on GPUs that support it, else fp16 on GPU, else no mixed precision."""
    if value != "auto":
        return value
    import torch

    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "no"


def make_accelerator(config: TrainConfig) -> Accelerator:
    import torch
    from accelerate import Accelerator, DataLoaderConfiguration

    # A seedable sampler makes the shuffle depend only on (seed, epoch): a resumption sees the
    # same order.
    # cpu=True without a GPU: Accelerate only then treats torchrun's processes as MULTI_CPU (gloo).
    return Accelerator(
        cpu=not torch.cuda.is_available(),
        mixed_precision=resolve_mixed_precision(config.mixed_precision),
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True),
    )


class EncodedReviews:
    """Tokenized once up front; items are dicts the padding collator understands."""

    def __init__(self, frame: pd.DataFrame, tokenizer: Any, max_length: int) -> None:
        self.encoded = tokenizer(frame["text"].tolist(), truncation=True, max_length=max_length)
        self.labels = [LABEL_TO_ID[label] for label in frame["label"]]
        self.keys = list(self.encoded.keys())

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = {key: self.encoded[key][index] for key in self.keys}
        item["labels"] = self.labels[index]
        return item


def load_classifier(model_dir: Path) -> tuple[Any, Any]:
    """Tokenizer and a sequence classifier with a fresh 2-class head on the given encoder."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging as hf_logging

    if not Path(model_dir).is_dir():
        raise TrainingError(f"model folder {model_dir} does not exist")
    hf_logging.disable_progress_bar()
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # "newly initialized head" is expected here
    try:
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        model = AutoModelForSequenceClassification.from_pretrained(
            model_dir,
            num_labels=len(LABELS),
            id2label=dict(enumerate(LABELS)),
            label2id=LABEL_TO_ID,
        )
    finally:
        hf_logging.set_verbosity(verbosity)
    return tokenizer, model


def build_optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """AdamW (fused where supported, like Trainer's default); no decay on biases and norms."""
    import torch

    decay: list[torch.nn.Parameter] = []
    no_decay: list[torch.nn.Parameter] = []
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            is_norm_or_bias = parameter.ndim < 2 or "LayerNorm" in name or name.endswith(".bias")
            (no_decay if is_norm_or_bias else decay).append(parameter)
    groups = [
        {"params": decay, "weight_decay": config.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    device = next(model.parameters()).device.type
    fused = device in ("cpu", "cuda")
    return torch.optim.AdamW(groups, lr=config.learning_rate, fused=fused)


def make_loaders(data: ReviewData, tokenizer: Any, config: TrainConfig) -> tuple[Any, Any, Any]:
    from torch.utils.data import DataLoader
    from transformers import DataCollatorWithPadding

    collator = DataCollatorWithPadding(tokenizer)
    train = DataLoader(
        EncodedReviews(data.train, tokenizer, config.max_length),
        batch_size=config.batch_size,
        shuffle=True,
        collate_fn=collator,
        drop_last=False,
    )
    validation = DataLoader(
        EncodedReviews(data.validation, tokenizer, config.max_length),
        batch_size=config.eval_batch_size,
        collate_fn=collator,
    )
    return train, validation, collator


def evaluate_loader(accelerator: Accelerator, model: Any, loader: Any) -> dict[str, float]:
    """Loss, macro-F1 and accuracy over a (possibly sharded) loader, gathered across processes."""
    import torch
    from sklearn.metrics import accuracy_score, f1_score

    model.eval()
    predictions, references, losses = [], [], []
    with torch.no_grad():
        for batch in rng_neutral(loader):
            outputs = model(**batch)
            logits = outputs.logits.float()
            loss = torch.nn.functional.cross_entropy(logits, batch["labels"], reduction="none")
            gathered = accelerator.gather_for_metrics((logits.argmax(-1), batch["labels"], loss))
            predictions.append(gathered[0].cpu())
            references.append(gathered[1].cpu())
            losses.append(gathered[2].cpu())
    model.train()
    y_pred = torch.cat(predictions).numpy()
    y_true = torch.cat(references).numpy()
    return {
        "loss": float(torch.cat(losses).mean()),
        "macro_f1": float(
            f1_score(y_true, y_pred, average="macro", labels=[0, 1], zero_division=0)
        ),
        "accuracy": float(accuracy_score(y_true, y_pred)),
    }


def rng_neutral(loader: Any) -> Iterator[Any]:
    """Iterate ``loader`` without moving the global torch RNG.

    Starting a DataLoader iterator draws a seed from the global RNG; without this, a resumed run
    (which starts a fresh iterator mid-epoch) or an extra evaluation would shift every later
    dropout mask, and resumption would not reproduce the uninterrupted run.
    """
    import torch

    state = torch.random.get_rng_state()
    iterator = iter(loader)
    try:
        first = next(iterator)
    except StopIteration:
        return
    finally:
        torch.random.set_rng_state(state)
    yield first
    yield from iterator


def latest_checkpoint(output_dir: Path) -> Path | None:
    """The newest complete checkpoint under ``output_dir/checkpoints``."""
    folder = Path(output_dir) / "checkpoints"
    if not folder.is_dir():
        return None
    complete = sorted(
        (p for p in folder.glob("step-*") if (p / STATE_FILE).is_file()),
        key=lambda p: int(p.name.split("-")[1]),
    )
    return complete[-1] if complete else None


def read_checkpoint_state(checkpoint: Path) -> dict[str, Any]:
    return json.loads((checkpoint / STATE_FILE).read_text())


def restore_folder(dest: Path) -> None:
    """Put back the folder ``replace_folder`` set aside when it was stopped between its renames."""
    previous = dest.with_name(f".{dest.name}.previous")
    if previous.is_dir() and not dest.exists():
        os.replace(previous, dest)


def replace_folder(complete: Path, dest: Path) -> None:
    """Move the finished folder ``complete`` to ``dest``. The old ``dest`` is only set aside
    (``.<name>.previous``) until the new one is in place, then deleted: at every moment one
    complete copy exists, and ``restore_folder`` recovers the old one after a crash in between."""
    restore_folder(dest)
    previous = dest.with_name(f".{dest.name}.previous")
    shutil.rmtree(previous, ignore_errors=True)
    if dest.exists():
        os.replace(dest, previous)
    os.replace(complete, dest)
    shutil.rmtree(previous, ignore_errors=True)


def _save_model_folder(
    accelerator: Accelerator, model: Any, tokenizer: Any, dest: Path, config: TrainConfig
) -> None:
    """Save an HF folder (weights, config, tokenizer, max_length), main process only; the old
    folder stays until the new one is complete."""
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        staging = dest.with_name(f".{dest.name}.staging")
        shutil.rmtree(staging, ignore_errors=True)  # an interrupted save: never the live copy
        accelerator.unwrap_model(model).save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)
        (staging / "inference.json").write_text(json.dumps({"max_length": config.max_length}))
        replace_folder(staging, dest)
    accelerator.wait_for_everyone()


def prepare_output_dir(accelerator: Accelerator, output_dir: Path, resume: bool) -> Path | None:
    """The checkpoint to resume from (None: start afresh, old checkpoints removed); puts back a
    best-model folder that an interrupted save set aside."""
    resume_from = latest_checkpoint(output_dir) if resume else None
    if resume and resume_from is None:
        logger.warning("no checkpoint in %s: starting from scratch", output_dir / "checkpoints")
    if accelerator.is_main_process:
        restore_folder(output_dir / "best-model")
        if resume_from is None:
            shutil.rmtree(output_dir / "checkpoints", ignore_errors=True)
    accelerator.wait_for_everyone()
    return resume_from


@dataclass
class LoopState:
    """Where the loop stands: saved in every checkpoint (as ``loop``), restored on resume."""

    global_step: int = 0
    epoch: int = 0
    batches_in_epoch: int = 0
    samples_seen: int = 0
    train_seconds: float = 0.0
    best_metric: float | None = None
    best_step: int | None = None
    best_validation: dict[str, float] = field(default_factory=dict)
    evals_without_improvement: int = 0
    stopped_early: bool = False
    history: list[dict[str, float]] = field(default_factory=list)
    evaluations: list[dict[str, float]] = field(default_factory=list)
    # The training loss summed since the last log line, and its steps. The sum lives on the
    # device while training (no sync per step); it is copied here only when a checkpoint is saved.
    window_loss_sum: float = 0.0
    window_steps: int = 0

    def count_step(self, samples: int) -> None:
        self.global_step += 1
        self.batches_in_epoch += 1
        self.samples_seen += samples
        self.window_steps += 1

    def record_evaluation(self, metrics: dict[str, float], epoch: float, min_delta: float) -> bool:
        """Add an evaluation; True when it is the new best macro-F1 (early stopping counts the
        others)."""
        self.evaluations.append({"step": self.global_step, "epoch": epoch, **metrics})
        improved = self.best_metric is None or metrics["macro_f1"] > self.best_metric + min_delta
        if improved:
            self.best_metric = metrics["macro_f1"]
            self.best_step = self.global_step
            self.best_validation = metrics
            self.evals_without_improvement = 0
        else:
            self.evals_without_improvement += 1
        return improved


@dataclass(frozen=True)
class Cadence:
    """When the loop pauses between steps: to log, evaluate, checkpoint, or at the last step."""

    steps_per_epoch: int
    total_steps: int
    log_every: int
    eval_every: int | None  # None: no evaluation
    checkpoint_every: int | None  # None: no checkpoints

    @classmethod
    def of(
        cls, config: TrainConfig, steps_per_epoch: int, evaluate: bool, checkpoint: bool
    ) -> Cadence:
        total_steps = steps_per_epoch * config.epochs
        if config.max_steps is not None:
            total_steps = min(total_steps, config.max_steps)
        eval_every = config.eval_every_steps or steps_per_epoch
        return cls(
            steps_per_epoch=steps_per_epoch,
            total_steps=total_steps,
            log_every=config.log_every_steps,
            eval_every=eval_every if evaluate else None,
            checkpoint_every=(config.checkpoint_every_steps or eval_every) if checkpoint else None,
        )

    @property
    def evaluates(self) -> bool:
        return self.eval_every is not None

    @property
    def checkpoints(self) -> bool:
        return self.checkpoint_every is not None

    def logs_at(self, step: int) -> bool:
        return step % self.log_every == 0

    def evaluates_at(self, step: int) -> bool:
        return self.eval_every is not None and step % self.eval_every == 0

    def checkpoints_at(self, step: int) -> bool:
        return self.checkpoint_every is not None and step % self.checkpoint_every == 0

    def pauses_at(self, step: int) -> bool:
        return (
            self.logs_at(step)
            or self.evaluates_at(step)
            or self.checkpoints_at(step)
            or step >= self.total_steps
        )


class _ProgressBar:
    """The training progress bar (rich), on the main process."""

    def __init__(self, total_steps: int, completed: int) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        self.progress = Progress(
            TextColumn("[bold]training"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[status]}"),
            TimeRemainingColumn(),
            transient=False,
        )
        self.progress.start()
        self.task = self.progress.add_task(
            "train", total=total_steps, completed=completed, status=""
        )

    def update(self, step: int, epoch: int) -> None:
        self.progress.update(self.task, completed=step, status=f"epoch {epoch + 1}")

    def stop(self) -> None:
        self.progress.stop()


@dataclass
class FitSession:
    """One fit: what Accelerate prepared, where it reports, and the steps ``fit`` composes."""

    config: TrainConfig
    accelerator: Accelerator
    tracker: Tracker
    tokenizer: Any
    model: Any
    optimizer: torch.optim.Optimizer
    scheduler: Any
    train_loader: Any
    validation_loader: Any
    cadence: Cadence
    output_dir: Path
    dataset_sha256: str
    tracking_ids: dict[str, str]
    on_evaluate: EvaluateCallback | None
    window_loss: torch.Tensor  # LoopState.window_loss_sum, kept on the device
    state: LoopState = field(default_factory=LoopState)
    grad_norm: Any = 0.0  # of the last step (clipping on)
    checkpointed_at: int = -1  # the step of the last checkpoint
    resumed_from_step: int | None = None
    stop: _StopFlag = field(default_factory=_StopFlag)
    progress_bar: _ProgressBar | None = None

    @property
    def best_dir(self) -> Path:
        return self.output_dir / "best-model"

    @property
    def checkpoints_dir(self) -> Path:
        return self.output_dir / "checkpoints"

    @property
    def world_size(self) -> int:
        return self.accelerator.num_processes

    def resume(self, checkpoint: Path) -> None:
        """Continue from ``checkpoint``: model, optimizer, scheduler, RNG states and loop state;
        refused when the settings or the data changed since it was saved."""
        saved = read_checkpoint_state(checkpoint)
        changed = [
            k for k in RESUME_INVARIANTS if saved["config"].get(k) != getattr(self.config, k)
        ]
        if changed:
            raise TrainingError(
                f"cannot resume from {checkpoint}: {', '.join(changed)} changed since it was saved"
            )
        if saved["dataset_sha256"] != self.dataset_sha256:
            raise TrainingError(f"cannot resume from {checkpoint}: the data set changed")
        self.accelerator.load_state(str(checkpoint))
        self.state = LoopState(**saved["loop"])
        self.window_loss.fill_(self.state.window_loss_sum)
        self.checkpointed_at = self.resumed_from_step = self.state.global_step
        logger.info("resumed from %s (step %d)", checkpoint, self.state.global_step)

    def epoch_batches(self) -> Any:
        """This epoch's batches in its seeded order, less those a resumed run already trained."""
        epoch, skip = self.state.epoch, self.state.batches_in_epoch
        self.train_loader.set_epoch(epoch)
        if not skip:
            return self.train_loader
        loader = self.accelerator.skip_first_batches(self.train_loader, skip)
        loader.set_epoch(epoch)  # a fresh loader would restart at epoch 0's order
        return loader

    def train_step(self, batch: Any) -> torch.Tensor:
        """One optimizer step on ``batch``; returns its loss (on the device: no sync)."""
        loss = self.model(**batch).loss
        self.accelerator.backward(loss)
        if self.config.max_grad_norm > 0:
            self.grad_norm = self.accelerator.clip_grad_norm_(
                self.model.parameters(), self.config.max_grad_norm
            )
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return loss

    def log_train_metrics(self) -> None:
        """The loss averaged since the last log line (over processes), the learning rate and the
        gradient norm: kept in the history and sent to the trackers."""
        state, step = self.state, self.state.global_step
        # Every process joins the reduce; only the main one has a tracker.
        mean_loss = self.accelerator.reduce(
            self.window_loss / state.window_steps, reduction="mean"
        ).item()
        entry = {
            "step": step,
            "epoch": step / self.cadence.steps_per_epoch,
            "loss": mean_loss,
            "learning_rate": self.scheduler.get_last_lr()[0],
            "grad_norm": float(self.grad_norm) if self.config.max_grad_norm > 0 else 0.0,
        }
        state.history.append(entry)
        self.tracker.log_metrics({f"train/{k}": v for k, v in entry.items() if k != "step"}, step)
        self.window_loss.zero_()
        state.window_steps = 0

    def eval_step(self) -> bool:
        """Evaluate on the validation split, track it, keep the best model; True when early
        stopping says stop."""
        metrics = evaluate_loader(self.accelerator, self.model, self.validation_loader)
        step = self.state.global_step
        epoch = step / self.cadence.steps_per_epoch
        improved = self.state.record_evaluation(metrics, epoch, self.config.min_delta)
        self.tracker.log_metrics({f"validation/{k}": v for k, v in metrics.items()}, step)
        if improved:
            _save_model_folder(
                self.accelerator, self.model, self.tokenizer, self.best_dir, self.config
            )
        if self.on_evaluate is not None:
            self.on_evaluate(step, metrics)
        return self.state.evals_without_improvement >= self.config.patience

    def save_checkpoint(self) -> Path:
        """Model, optimizer, scheduler, RNG states and the loop state at this step; only the
        newest ``keep_checkpoints`` complete ones stay."""
        state = self.state
        target = self.checkpoints_dir / f"step-{state.global_step:06d}"
        state.window_loss_sum = float(self.window_loss.item())
        self.accelerator.save_state(str(target))
        if self.accelerator.is_main_process:
            atomic_write_json(
                target / STATE_FILE,
                {
                    "config": self.config.model_dump(),
                    "dataset_sha256": self.dataset_sha256,
                    "tracking_ids": self.tracking_ids,
                    "loop": asdict(state),
                },
            )
            complete = sorted(
                p for p in self.checkpoints_dir.glob("step-*") if (p / STATE_FILE).is_file()
            )
            for old in complete[: -self.config.keep_checkpoints]:
                shutil.rmtree(old, ignore_errors=True)
        self.accelerator.wait_for_everyone()
        self.checkpointed_at = state.global_step
        return target

    def stop_requested(self) -> bool:
        """A stop signal reached any process (all of them stop at the same step)."""
        if self.world_size == 1:
            return self.stop.requested
        import torch

        flag = torch.tensor([1.0 if self.stop.requested else 0.0], device=self.accelerator.device)
        return bool(self.accelerator.reduce(flag, reduction="sum").item() > 0)

    def result(self) -> FitResult:
        state, seconds = self.state, self.state.train_seconds
        return FitResult(
            model_dir=self.best_dir,
            global_step=state.global_step,
            epochs_completed=state.global_step / self.cadence.steps_per_epoch,
            samples_seen=state.samples_seen,
            train_seconds=seconds,
            samples_per_second=state.samples_seen / seconds if seconds > 0 else 0.0,
            world_size=self.world_size,
            distributed_type=str(self.accelerator.distributed_type.value),
            mixed_precision=str(self.accelerator.mixed_precision),
            stopped_early=state.stopped_early,
            resumed_from_step=self.resumed_from_step,
            best_step=state.best_step,
            best_validation=state.best_validation,
            history=state.history,
            evaluations=state.evaluations,
        )


def start_session(
    config: TrainConfig,
    data: ReviewData,
    model_dir: Path,
    output_dir: Path,
    accelerator: Accelerator,
    tracker: Tracker,
    *,
    evaluate: bool,
    checkpoint: bool,
    tracking_ids: dict[str, str],
    on_evaluate: EvaluateCallback | None,
) -> FitSession:
    """Seed, load the classifier, build loaders, optimizer and schedule, prepare them."""
    import torch
    from accelerate.utils import set_seed
    from transformers import get_linear_schedule_with_warmup

    set_seed(config.seed)
    tokenizer, model = load_classifier(model_dir)
    model.to(accelerator.device)
    train_loader, validation_loader, _ = make_loaders(data, tokenizer, config)
    optimizer = build_optimizer(model, config)
    model, optimizer, train_loader, validation_loader = accelerator.prepare(
        model, optimizer, train_loader, validation_loader
    )
    cadence = Cadence.of(config, len(train_loader), evaluate, checkpoint)
    # Not prepared: stepped once per optimizer step, from the per-process step count.
    scheduler = get_linear_schedule_with_warmup(
        optimizer, math.ceil(config.warmup_ratio * cadence.total_steps), cadence.total_steps
    )
    accelerator.register_for_checkpointing(scheduler)
    return FitSession(
        config=config,
        accelerator=accelerator,
        tracker=tracker,
        tokenizer=tokenizer,
        model=model,
        optimizer=optimizer,
        scheduler=scheduler,
        train_loader=train_loader,
        validation_loader=validation_loader,
        cadence=cadence,
        output_dir=output_dir,
        dataset_sha256=data.sha256,
        tracking_ids=tracking_ids,
        on_evaluate=on_evaluate,
        window_loss=torch.zeros((), device=accelerator.device),
    )


def train_epoch(session: FitSession) -> bool:
    """Train to the end of the epoch, pausing between steps to log, evaluate and checkpoint on
    the cadence; True when training is done (last step, or early stopping)."""
    state, cadence, world_size = session.state, session.cadence, session.world_size
    batches = session.epoch_batches()
    started = time.perf_counter()
    for batch in rng_neutral(batches):
        loss = session.train_step(batch)
        state.count_step(batch["labels"].shape[0] * world_size)
        session.window_loss += loss.detach()
        step = state.global_step
        if session.progress_bar is not None:
            session.progress_bar.update(step, state.epoch)
        # Several processes check for a stop signal together at every step.
        if not cadence.pauses_at(step) and world_size == 1 and not session.stop.requested:
            continue
        if cadence.logs_at(step):
            session.log_train_metrics()
        # Logging counts as training time (it is what tracking costs); evaluation and
        # checkpoints do not.
        state.train_seconds += time.perf_counter() - started
        stop_now = False
        if cadence.evaluates_at(step):
            stop_now = state.stopped_early = session.eval_step()
        if cadence.checkpoints and (cadence.checkpoints_at(step) or stop_now):
            session.save_checkpoint()
        if session.stop_requested():
            raise TrainingInterrupted(step, session.save_checkpoint())
        if stop_now or step >= cadence.total_steps:
            state.epoch += state.batches_in_epoch == cadence.steps_per_epoch
            return True
        started = time.perf_counter()
    state.train_seconds += time.perf_counter() - started
    state.epoch += 1
    state.batches_in_epoch = 0
    done = False
    if cadence.evaluates and not cadence.evaluates_at(state.global_step):
        done = state.stopped_early = session.eval_step()
    if cadence.checkpoints and session.checkpointed_at != state.global_step:
        session.save_checkpoint()
    return done


def fit(
    config: TrainConfig,
    data: ReviewData,
    model_dir: Path,
    output_dir: Path,
    *,
    accelerator: Accelerator | None = None,
    tracker: Tracker | None = None,
    tracking_ids: dict[str, str] | None = None,
    resume: bool = False,
    evaluate: bool = True,
    checkpoint: bool = True,
    on_evaluate: EvaluateCallback | None = None,
    progress: bool = True,
) -> FitResult:
    """Fine-tune ``model_dir`` on ``data.train``; returns where the chosen model was saved.

    ``evaluate=False`` trains for the full schedule without validation (throughput runs);
    ``tracking_ids`` are stored in checkpoints so a resumed run logs into the same tracked runs.
    """
    accelerator = accelerator or make_accelerator(config)
    output_dir = Path(output_dir)
    resume_from = prepare_output_dir(accelerator, output_dir, resume)
    session = start_session(
        config,
        data,
        model_dir,
        output_dir,
        accelerator,
        tracker if (tracker is not None and accelerator.is_main_process) else Tracker(),
        evaluate=evaluate,
        checkpoint=checkpoint,
        tracking_ids=tracking_ids or {},
        on_evaluate=on_evaluate,
    )
    if resume_from is not None:
        session.resume(resume_from)
    state = session.state
    session.stop.install()
    if progress and accelerator.is_main_process:
        session.progress_bar = _ProgressBar(session.cadence.total_steps, state.global_step)
    session.model.train()
    try:
        done = state.global_step >= session.cadence.total_steps or state.stopped_early
        while not done and state.epoch < config.epochs:
            done = train_epoch(session)
    finally:
        session.stop.restore()
        if session.progress_bar is not None:
            session.progress_bar.stop()

    if evaluate and (not state.evaluations or state.evaluations[-1]["step"] != state.global_step):
        session.eval_step()  # the last steps (max_steps mid-epoch) are evaluated too
    if not evaluate or not session.best_dir.is_dir():
        _save_model_folder(accelerator, session.model, session.tokenizer, session.best_dir, config)
    accelerator.wait_for_everyone()
    return session.result()
