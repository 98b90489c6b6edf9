"""Typed settings. Environment variables with the prefix ``DATA_PIPELINES_`` override the
defaults; CLI flags override both. Airflow's own tasks read them too (in the task process), so
the same DAG file runs under the CLI's test runner, a LocalExecutor or Celery workers."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict
from roadmap_lab.gate import GatedSettings
from roadmap_lab.housing_model import REGISTERED_MODEL
from roadmap_lab.settings import env_prefix

from data_pipelines import PROJECT

# The first and last weekly logical dates the embedded data covers completely: a slice is the
# week that ends at its logical date (Sunday 00:00 UTC), [date - 7 days, date).
FIRST_SLICE_DATE = datetime(2020, 10, 11, tzinfo=UTC)
LAST_SLICE_DATE = datetime(2022, 5, 8, tzinfo=UTC)
SLICE_PERIOD = timedelta(days=7)


def store_url(location: str | Path) -> str:
    """An artefact root as a URL: a local folder becomes an absolute ``file://`` URL; a URL with
    a scheme (``s3://bucket/prefix``, ``memory://...``) is kept as it is."""
    text = str(location)
    if "://" in text:
        return text.rstrip("/")
    return Path(text).resolve().as_uri()


class ProjectSettings(GatedSettings):
    """Where the data comes from, where artefacts go, how hard the pipeline tries, and the
    registry every published model goes to (with the gate's ``GATE_*`` thresholds)."""

    model_config = SettingsConfigDict(env_prefix=env_prefix(PROJECT), extra="ignore")

    # An HTTP(S) source serving /slices/<YYYY-MM-DD>.csv; None: the CLI starts the embedded one.
    source_url: str | None = None
    # The artefact store (Airflow's ObjectStoragePath): a local folder or any fsspec URL, e.g.
    # s3://bucket/housing with the filesystem's package installed; output_conn_id names the
    # Airflow connection that holds its credentials.
    output_root: str = "runs/data-pipelines/output"
    output_conn_id: str | None = None
    # Each task's local scratch (a temp folder inside it, deleted when the task ends).
    scratch_dir: Path = Path("runs/data-pipelines/scratch")
    # The CLI's demo and benchmark folders.
    run_dir: Path = Path("runs/data-pipelines")
    # The CLI's local Airflow: metadata DB (sqlite) and logs.
    airflow_home: Path = Path("runs/data-pipelines/airflow")
    # The DAG's cron schedule; "none" for manual/API-triggered runs only.
    schedule: str = "0 0 * * 0"
    # The first week of the model history (the DAG's start_date): a date's window and its
    # previous week never reach before it, and every later week needs the week before it.
    start_date: date = FIRST_SLICE_DATE.date()
    # Celery queues: fetch + validate, and preprocess ... publish (+ the report).
    ingest_queue: str = "default"
    train_queue: str = "default"
    # The name a worker records in the task-instance rows (Airflow's hostname_callable).
    worker_hostname: str | None = None

    # A running Airflow (api-server URL): the CLI's backfill asks its scheduler to run it.
    airflow_api_url: str | None = None
    airflow_username: str = "admin"
    airflow_password: SecretStr | None = None
    api_timeout_s: float = Field(default=60.0, gt=0, description="per REST request")
    backfill_timeout_s: float = Field(default=3600.0, gt=0, description="the whole backfill")

    # The MLflow tracking server: when set, the DAG's register task registers every published
    # model there and moves the champion alias through the gate; None: models are published to
    # the store only. Only DATA_PIPELINES_TRACKING_URI sets it (not MLFLOW_TRACKING_URI, which
    # other tools' environments may carry): registering is a deliberate choice.
    tracking_uri: str | None = None
    registered_model: str = REGISTERED_MODEL
    experiment: str = "housing-pipeline"

    retries: int = Field(default=3, ge=0)
    retry_delay_s: float = Field(default=30.0, ge=0)
    retry_backoff: float = Field(default=2.0, ge=1.0, description="exponential backoff factor")
    max_retry_delay_s: float = Field(default=600.0, gt=0)
    task_timeout_s: float = Field(default=300.0, gt=0, description="execution_timeout per task")
    request_timeout_s: float = Field(default=10.0, gt=0, description="connect and each read")
    download_deadline_s: float = Field(default=60.0, gt=0, description="the whole body")
    max_payload_bytes: int = Field(default=20_000_000, gt=0)
    # None: failures are logged; a URL: the notifier also POSTs them there as JSON.
    alert_webhook_url: str | None = None

    window_slices: int = Field(default=4, ge=1, description="trailing slices the model trains on")
    gate_min_rows: int = Field(
        default=20, ge=2, description="held-out rows (both classes present) the gate needs"
    )
    min_rows: int = Field(default=100, ge=1)
    max_rows: int = Field(default=400, ge=1)
    # |median - previous slice's median| as a share of the feature's valid range. The embedded
    # data's largest week-to-week shift is 0.50 (Longitude): it moves from region to region.
    max_median_shift: float = Field(default=0.6, gt=0)

    @field_validator("source_url", "airflow_api_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError(f"expected an http(s) URL, got {value!r}")
        return value.rstrip("/") if value else value

    @property
    def registers(self) -> bool:
        return bool(self.tracking_uri)

    @property
    def output_url(self) -> str:
        return store_url(self.output_root)

    @property
    def start(self) -> datetime:
        return datetime.combine(self.start_date, time(), UTC)

    def schedule_or_none(self) -> str | None:
        return None if self.schedule.strip().lower() in {"", "none", "null"} else self.schedule
