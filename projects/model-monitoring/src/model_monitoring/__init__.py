"""A monitored model service: drift detection, Prometheus metrics and alerts, replay and demo."""

PROJECT = "model-monitoring"
