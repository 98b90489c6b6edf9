"""The pipeline's errors: transient ones are worth a retry, permanent ones are not."""

from __future__ import annotations

from roadmap_lab.errors import LabError


class DataPipelinesError(LabError):
    """Base of the project's errors; the CLI prints their message on one line."""


class TransientError(DataPipelinesError):
    """Worth retrying: HTTP 5xx, timeouts, connection resets, truncated or damaged transfers."""


class PermanentError(DataPipelinesError):
    """Retrying cannot help: HTTP 4xx, an unparseable payload, a schema violation."""


class QuarantinedError(PermanentError):
    """The slice failed validation and was quarantined (or still is)."""
