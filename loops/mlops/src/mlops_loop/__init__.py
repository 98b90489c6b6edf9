"""The MLOps loop: model-monitoring's alerts retrain, gate and ship data-pipelines' model."""

PROJECT = "mlops-loop"
