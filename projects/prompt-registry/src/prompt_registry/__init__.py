"""Versioned prompts in MLflow's prompt registry, and golden-answer evals that gate changes."""

PROJECT = "prompt-registry"
