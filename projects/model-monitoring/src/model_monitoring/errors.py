"""The project's own errors: a CLI prints them as one line and exits with status 2."""


class MonitoringError(RuntimeError):
    """Bad input or configuration; the message says what is wrong and how to fix it."""
