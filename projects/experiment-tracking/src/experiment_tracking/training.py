"""The training loop: plain PyTorch driven by Hugging Face Accelerate.

The same code runs on CPU, on one GPU with mixed precision, and on several processes or machines
(``accelerate launch`` or ``torchrun``). Seeded; evaluates on the validation split, keeps the best
model, stops early, checkpoints (model, optimizer, scheduler, RNG states, loop position) and
resumes.
SIGTERM/SIGINT save a checkpoint and stop, so preempted jobs continue where they were.
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


class TrainingInterrupted(TrainingError):
    """A stop signal arrived; a checkpoint was saved at ``step``."""

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


def _write_json_atomic(path: Path, payload: dict[str, Any]) -> None:
    from roadmap_lab.results import atomic_write_json

    atomic_write_json(path, payload)


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
    import torch
    from accelerate.utils import set_seed
    from transformers import get_linear_schedule_with_warmup

    accelerator = accelerator or make_accelerator(config)
    tracker = tracker if (tracker is not None and accelerator.is_main_process) else Tracker()
    output_dir = Path(output_dir)
    checkpoints_dir = output_dir / "checkpoints"
    best_dir = output_dir / "best-model"

    resume_from = latest_checkpoint(output_dir) if resume else None
    if resume and resume_from is None:
        logger.warning("no checkpoint in %s: starting from scratch", checkpoints_dir)
    if accelerator.is_main_process:
        restore_folder(best_dir)
        if resume_from is None:
            shutil.rmtree(checkpoints_dir, ignore_errors=True)
    accelerator.wait_for_everyone()

    set_seed(config.seed)
    tokenizer, model = load_classifier(model_dir)
    model.to(accelerator.device)
    train_loader, validation_loader, _ = make_loaders(data, tokenizer, config)
    optimizer = build_optimizer(model, config)
    model, optimizer, train_loader, validation_loader = accelerator.prepare(
        model, optimizer, train_loader, validation_loader
    )
    steps_per_epoch = len(train_loader)
    total_steps = steps_per_epoch * config.epochs
    if config.max_steps is not None:
        total_steps = min(total_steps, config.max_steps)
    # Not prepared: stepped once per optimizer step, from the per-process step count.
    scheduler = get_linear_schedule_with_warmup(
        optimizer, math.ceil(config.warmup_ratio * total_steps), total_steps
    )
    accelerator.register_for_checkpointing(scheduler)
    eval_every = config.eval_every_steps or steps_per_epoch
    checkpoint_every = config.checkpoint_every_steps or eval_every

    state: dict[str, Any] = {
        "global_step": 0,
        "epoch": 0,
        "batches_in_epoch": 0,
        "samples_seen": 0,
        "train_seconds": 0.0,
        "best_metric": None,
        "best_step": None,
        "best_validation": {},
        "evals_without_improvement": 0,
        "stopped_early": False,
        "history": [],
        "evaluations": [],
        "window_loss_sum": 0.0,  # the loss average being accumulated for the next log line
        "window_steps": 0,
    }
    if resume_from is not None:
        saved = read_checkpoint_state(resume_from)
        changed = [k for k in RESUME_INVARIANTS if saved["config"].get(k) != getattr(config, k)]
        if changed:
            raise TrainingError(
                f"cannot resume from {resume_from}: {', '.join(changed)} changed since it was saved"
            )
        if saved["dataset_sha256"] != data.sha256:
            raise TrainingError(f"cannot resume from {resume_from}: the data set changed")
        accelerator.load_state(str(resume_from))
        state.update(saved["loop"])
        logger.info("resumed from %s (step %d)", resume_from, state["global_step"])
    resumed_from_step = state["global_step"] if resume_from is not None else None

    world_size = accelerator.num_processes
    stop = _StopFlag()
    stop.install()

    def save_checkpoint() -> Path:
        target = checkpoints_dir / f"step-{state['global_step']:06d}"
        state["window_loss_sum"], state["window_steps"] = float(running_loss.item()), running_count
        accelerator.save_state(str(target))
        if accelerator.is_main_process:
            _write_json_atomic(
                target / STATE_FILE,
                {
                    "config": config.model_dump(),
                    "dataset_sha256": data.sha256,
                    "tracking_ids": tracking_ids or {},
                    "loop": state,
                },
            )
            complete = sorted(
                p for p in checkpoints_dir.glob("step-*") if (p / STATE_FILE).is_file()
            )
            for old in complete[: -config.keep_checkpoints]:
                shutil.rmtree(old, ignore_errors=True)
        accelerator.wait_for_everyone()
        return target

    def stop_requested() -> bool:
        if world_size == 1:
            return stop.requested
        flag = torch.tensor([1.0 if stop.requested else 0.0], device=accelerator.device)
        return bool(accelerator.reduce(flag, reduction="sum").item() > 0)

    def run_evaluation() -> bool:
        """Evaluate, keep the best model; True when early stopping says stop."""
        metrics = evaluate_loader(accelerator, model, validation_loader)
        step = state["global_step"]
        entry = {"step": step, "epoch": step / steps_per_epoch, **metrics}
        state["evaluations"].append(entry)
        tracker.log_metrics({f"validation/{k}": v for k, v in metrics.items()}, step)
        improved = (
            state["best_metric"] is None
            or metrics["macro_f1"] > state["best_metric"] + config.min_delta
        )
        if improved:
            state.update(
                best_metric=metrics["macro_f1"],
                best_step=step,
                best_validation=metrics,
                evals_without_improvement=0,
            )
            _save_model_folder(accelerator, model, tokenizer, best_dir, config)
        else:
            state["evals_without_improvement"] += 1
        if on_evaluate is not None:
            on_evaluate(step, metrics)
        return state["evals_without_improvement"] >= config.patience

    progress_bar = None
    if progress and accelerator.is_main_process:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        progress_bar = Progress(
            TextColumn("[bold]training"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[status]}"),
            TimeRemainingColumn(),
            transient=False,
        )
        progress_bar.start()
        task = progress_bar.add_task(
            "train", total=total_steps, completed=state["global_step"], status=""
        )

    model.train()
    running_loss = torch.full((), state["window_loss_sum"], device=accelerator.device)
    running_count = state["window_steps"]
    done = state["global_step"] >= total_steps or state["stopped_early"]
    saved_at = state["global_step"] if resume_from is not None else -1
    try:
        while not done and state["epoch"] < config.epochs:
            train_loader.set_epoch(state["epoch"])
            loader = train_loader
            if state["batches_in_epoch"]:
                loader = accelerator.skip_first_batches(train_loader, state["batches_in_epoch"])
                loader.set_epoch(state["epoch"])  # a fresh loader would restart at epoch 0's order
            started = time.perf_counter()
            for batch in rng_neutral(loader):
                loss = model(**batch).loss
                accelerator.backward(loss)
                if config.max_grad_norm > 0:
                    grad_norm = accelerator.clip_grad_norm_(
                        model.parameters(), config.max_grad_norm
                    )
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                state["global_step"] += 1
                state["batches_in_epoch"] += 1
                state["samples_seen"] += batch["labels"].shape[0] * world_size
                running_loss += loss.detach()
                running_count += 1
                step = state["global_step"]
                if progress_bar is not None:
                    progress_bar.update(task, completed=step, status=f"epoch {state['epoch'] + 1}")

                pause = (
                    step % config.log_every_steps == 0
                    or (evaluate and step % eval_every == 0)
                    or (checkpoint and step % checkpoint_every == 0)
                    or step >= total_steps
                )
                if not pause and world_size == 1 and not stop.requested:
                    continue
                if step % config.log_every_steps == 0:
                    # Every process joins the reduce; only the main one has a tracker.
                    mean_loss = accelerator.reduce(
                        running_loss / running_count, reduction="mean"
                    ).item()
                    entry = {
                        "step": step,
                        "epoch": step / steps_per_epoch,
                        "loss": mean_loss,
                        "learning_rate": scheduler.get_last_lr()[0],
                        "grad_norm": float(grad_norm) if config.max_grad_norm > 0 else 0.0,
                    }
                    state["history"].append(entry)
                    tracker.log_metrics(
                        {f"train/{k}": v for k, v in entry.items() if k != "step"}, step
                    )
                    running_loss.zero_()
                    running_count = 0
                # Logging counts as training time (it is what tracking costs); evaluation and
                # checkpoints do not.
                state["train_seconds"] += time.perf_counter() - started
                stop_now = False
                if evaluate and step % eval_every == 0:
                    stop_now = run_evaluation()
                    state["stopped_early"] = stop_now
                if checkpoint and (step % checkpoint_every == 0 or stop_now):
                    save_checkpoint()
                    saved_at = step
                if stop_requested():
                    raise TrainingInterrupted(step, save_checkpoint())
                if stop_now or step >= total_steps:
                    done = True
                    break
                started = time.perf_counter()
            else:
                state["train_seconds"] += time.perf_counter() - started
                state["epoch"] += 1
                state["batches_in_epoch"] = 0
                if evaluate and state["global_step"] % eval_every != 0:
                    state["stopped_early"] = run_evaluation()
                    done = state["stopped_early"]
                if checkpoint and saved_at != state["global_step"]:
                    save_checkpoint()
                continue
            state["epoch"] += state["batches_in_epoch"] == steps_per_epoch
    finally:
        stop.restore()
        if progress_bar is not None:
            progress_bar.stop()

    evaluations = state["evaluations"]
    if evaluate and (not evaluations or evaluations[-1]["step"] != state["global_step"]):
        run_evaluation()  # the last steps (max_steps mid-epoch) are evaluated too
    if not evaluate or not best_dir.is_dir():
        _save_model_folder(accelerator, model, tokenizer, best_dir, config)
    accelerator.wait_for_everyone()
    seconds = state["train_seconds"]
    return FitResult(
        model_dir=best_dir,
        global_step=state["global_step"],
        epochs_completed=state["global_step"] / steps_per_epoch,
        samples_seen=state["samples_seen"],
        train_seconds=seconds,
        samples_per_second=state["samples_seen"] / seconds if seconds > 0 else 0.0,
        world_size=world_size,
        distributed_type=str(accelerator.distributed_type.value),
        mixed_precision=str(accelerator.mixed_precision),
        stopped_early=state["stopped_early"],
        resumed_from_step=resumed_from_step,
        best_step=state["best_step"],
        best_validation=state["best_validation"],
        history=state["history"],
        evaluations=state["evaluations"],
    )
