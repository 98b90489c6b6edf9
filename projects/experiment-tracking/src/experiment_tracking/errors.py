"""The base of the project's own error types: problems a user can fix (bad data, settings or
files, an unreachable server, a missing model). The CLI shows them as one ``error:`` line with
exit status 2 (``roadmap_lab.cli.cli_errors``); any other exception is a bug and keeps its
traceback."""

from roadmap_lab.errors import LabError


class ExperimentTrackingError(LabError):
    """A problem the message explains, with what to do about it."""


class ConfigError(ExperimentTrackingError):
    """A settings file cannot be read or holds no mapping of settings."""
