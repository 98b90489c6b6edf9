"""MLflow tracking for the trainers: a callback that logs every metric TRL reports (loss,
rewards/chosen, rewards/rejected, rewards/accuracies, rewards/margins, ...), peak memory while
training, and registering a saved LoRA adapter as an MLflow model version."""

from __future__ import annotations

import os
import threading
import time
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
