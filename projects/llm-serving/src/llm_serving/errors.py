"""The errors of llm-serving that a user can fix: the CLI prints each as one line (exit 2)."""

from __future__ import annotations

from roadmap_lab.errors import LabError
from roadmap_lab.services import ServiceError


class LlmServingError(LabError):
    """The base of the project's errors; the message says what is wrong and what to do."""


class ModelNotFoundError(LlmServingError):
    """The model is neither a known name with a built folder nor a model folder."""


class BenchmarkSizeError(LlmServingError, ValueError):
    """Benchmark sizes that do not fit together, or that the data cannot serve."""


class EngineError(LlmServingError):
    """A child process of the benchmark failed or did not finish in time."""


class ServerError(LlmServingError, ServiceError):
    """The server did not start or stopped unexpectedly; the message carries its log tail."""


class LoraError(LlmServingError):
    """An adapter to serve that is not there, is not a LoRA adapter vLLM loads, or whose model
    version the registry does not give (registry errors fail closed)."""


class ExposureError(LlmServingError):
    """A server bound beyond loopback without an API key (and not explicitly allowed)."""
