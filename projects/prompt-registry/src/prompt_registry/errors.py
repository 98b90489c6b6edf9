"""The project's own error types: problems a user can fix (a bad prompt file, an unknown prompt,
an unreachable registry or endpoint). The CLI shows them as one ``error:`` line with exit status 2;
any other exception is a bug and keeps its traceback."""

from roadmap_lab.errors import LabError


class PromptRegistryError(LabError):
    """A problem the message explains, with what to do about it."""


class PromptFileError(PromptRegistryError):
    """A prompt folder is missing a file, or its template and declared variables disagree."""


class RegistryError(PromptRegistryError):
    """The MLflow prompt registry refused a request or lacks the prompt, version or alias."""


class ProviderError(PromptRegistryError):
    """A model provider failed (an endpoint that does not answer, a malformed response)."""


class GoldenSetError(PromptRegistryError):
    """A golden set is missing or malformed."""


class BenchmarkError(PromptRegistryError):
    """The benchmark cannot measure what it claims (non-default sizes under --publish, a cached
    side that called the model)."""
