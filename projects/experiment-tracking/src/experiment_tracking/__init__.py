"""Tracked fine-tuning of a review classifier: Accelerate training loop, MLflow + W&B tracking,
Optuna sweeps, the MLflow model registry and a champion/challenger promotion gate."""

PROJECT = "experiment-tracking"
