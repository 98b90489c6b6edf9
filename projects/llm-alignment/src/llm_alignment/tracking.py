"""MLflow tracking for the trainers: a callback that logs every metric TRL reports (loss,
rewards/chosen, rewards/rejected, rewards/accuracies, rewards/margins, ...), peak memory while
training, and registering a saved LoRA adapter as an MLflow model version. Under several
processes (torchrun) only the main one opens the run, logs and saves; a callback records what
every process ended with."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import mlflow
from mlflow.pyfunc import PythonModel, PythonModelContext
from transformers import TrainerCallback

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


class MetricsCallback(TrainerCallback):
    """Keeps the trainer's log history and logs it to the active MLflow run, if any."""

    def __init__(self) -> None:
        self.history: list[dict[str, float]] = []

    def on_log(
        self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any
    ) -> None:
        numeric = {k: float(v) for k, v in (logs or {}).items() if isinstance(v, int | float)}
        if not numeric:
            return
        self.history.append({"step": float(state.global_step), **numeric})
        if mlflow.active_run() is not None:
            mlflow.log_metrics(numeric, step=int(state.global_step))


def adapter_fingerprint(model: Any) -> str:
    """sha256 of a PEFT model's adapter weights (names and exact bytes, in name order): equal
    fingerprints mean equal tensors, bit for bit."""
    from peft import get_peft_model_state_dict

    digest = hashlib.sha256()
    for name, tensor in sorted(get_peft_model_state_dict(model).items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


class ProcessRecord(TrainerCallback):
    """At the end of training, every process reports its rank, the world size torch.distributed
    gives it and the fingerprint of the adapter weights it ended with; ``processes`` holds all of
    them (gathered to every process), so a run shows how many processes trained and that they
    ended in agreement."""

    def __init__(self) -> None:
        self.processes: list[dict[str, Any]] = []

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        import torch.distributed as dist

        distributed = dist.is_available() and dist.is_initialized()
        world_size = dist.get_world_size() if distributed else 1
        mine = {
            "rank": dist.get_rank() if distributed else 0,
            "world_size": world_size,
            "backend": str(dist.get_backend()) if distributed else None,
            "adapter_sha256": adapter_fingerprint(kwargs["model"]),
        }
        gathered: list[Any] = [mine]
        if distributed:
            gathered = [None] * world_size
            dist.all_gather_object(gathered, mine)
        self.processes = sorted(gathered, key=lambda record: record["rank"])


@contextmanager
def main_process_run(
    is_main: bool,
    tracking_uri: str | None,
    experiment: str,
    artifacts_dir: Path | None,
    run_name: str,
) -> Iterator[Any]:
    """The MLflow run on the main process; None on the others, which neither create the
    experiment (two processes creating it in one store race) nor log."""
    if not is_main:
        yield None
        return
    use_experiment(tracking_uri, experiment, artifacts_dir)
    with mlflow.start_run(run_name=run_name) as run:
        yield run


def save_adapter(model: Any, tokenizer: Any, adapter_dir: Path) -> Path:
    """Save the adapter and tokenizer to a staging folder beside ``adapter_dir``, then rename it
    into place: a crash mid-save leaves the previous adapter, never a partial one."""
    from roadmap_lab.assets import replace_dir

    adapter_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=adapter_dir.parent, prefix=f".{adapter_dir.name}-"))
    try:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        replace_dir(staging, adapter_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return adapter_dir


class PeakMemory:
    """Peak resident memory (MB) above the level at start, sampled every 50 ms; on a GPU the
    CUDA allocator's peak instead."""

    def __init__(self) -> None:
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._start_mb = 0.0
        self.device = "cpu"

    @staticmethod
    def _rss_mb() -> float:
        with open("/proc/self/statm", encoding="ascii") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak_mb = max(self.peak_mb, self._rss_mb() - self._start_mb)
            time.sleep(0.05)

    def __enter__(self) -> PeakMemory:
        import torch

        if torch.cuda.is_available():
            self.device = "cuda"
            torch.cuda.reset_peak_memory_stats()
            self._start_mb = torch.cuda.memory_allocated() / 2**20
        else:
            self._start_mb = self._rss_mb()
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        import torch

        if self.device == "cuda":
            self.peak_mb = torch.cuda.max_memory_allocated() / 2**20 - self._start_mb
        else:
            self._stop.set()
            self._thread.join()


class AdapterPolicy(PythonModel):
    """A registered policy: base model + LoRA adapter; predict() answers a list of prompts."""

    def load_context(self, context: PythonModelContext) -> None:
        from llm_alignment.generation import load_policy

        base = Path(
            os.environ.get("LLM_ALIGNMENT_MODEL_DIR") or context.model_config["base_model_dir"]
        )
        self.model, self.tokenizer = load_policy(base, Path(context.artifacts["adapter"]))

    def predict(
        self,
        context: PythonModelContext,
        model_input: list[str],
        params: dict[str, Any] | None = None,
    ) -> list[str]:
        from llm_alignment.generation import generate

        prompts = [str(prompt) for prompt in model_input]
        conversations = [[{"role": "user", "content": str(prompt)}] for prompt in prompts]
        max_new_tokens = int((params or {}).get("max_new_tokens", 64))
        return [
            r[0]
            for r in generate(
                self.model, self.tokenizer, conversations, max_new_tokens=max_new_tokens
            )
        ]


def use_experiment(tracking_uri: str | None, experiment: str, artifacts_dir: Path | None) -> None:
    """Point MLflow at ``tracking_uri`` and ``experiment``, creating it with its artifacts under
    ``artifacts_dir`` (a sqlite store would otherwise put them under the working directory)."""
    if tracking_uri:
        mlflow.set_tracking_uri(tracking_uri)
    if artifacts_dir is not None and mlflow.get_experiment_by_name(experiment) is None:
        mlflow.create_experiment(experiment, artifact_location=artifacts_dir.resolve().as_uri())
    mlflow.set_experiment(experiment)


def register_adapter(adapter_dir: Path, base_model_dir: Path, name: str) -> str:
    """Log the adapter folder as a pyfunc model in the active run and register it; returns the
    new version number."""
    info = mlflow.pyfunc.log_model(
        name="policy",
        python_model=AdapterPolicy(),
        artifacts={"adapter": str(adapter_dir)},
        model_config={"base_model_dir": str(base_model_dir)},
        registered_model_name=name,
        # Inferring requirements imports and times every package; the adapter needs these.
        pip_requirements=["torch", "transformers", "peft", "mlflow"],
    )
    return str(info.registered_model_version)
