"""An Airflow 3 pipeline that fetches weekly slices of California-housing data over HTTP,
validates them (pandera), preprocesses, trains and evaluates a scikit-learn model, and publishes
versioned, byte-reproducible artefacts; it retries what is transient and stops on what is not."""

__version__ = "0.1.0"
PROJECT = "data-pipelines"
