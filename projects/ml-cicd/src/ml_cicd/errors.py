"""The project's errors: each message says what is wrong and how to fix it. The CLI prints them
as one line and exits with status 2 (``roadmap_lab.cli.cli_errors``)."""

from __future__ import annotations

from roadmap_lab.errors import LabError


class MlCicdError(LabError):
    """A problem the user can fix; the message says how."""


class DataError(MlCicdError):
    """The data folder or a slice cannot be read."""


class ModelLoadError(MlCicdError):
    """A model URI or folder that does not load, or fails its smoke prediction."""


class RegistryError(MlCicdError):
    """The registry cannot do what was asked."""


class BenchmarkError(MlCicdError):
    """The benchmark cannot run, a server failed under load, or the results cannot be written;
    the message says why."""
