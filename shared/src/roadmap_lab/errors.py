"""The base of every error a user can fix: the CLIs print it as one line and exit 2."""

from __future__ import annotations


class LabError(Exception):
    """A problem the user can fix (bad input, a missing asset, a busy machine, a registry that
    refused); the message says what is wrong and what to do."""
