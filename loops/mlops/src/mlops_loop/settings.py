"""Typed settings of the loop: the alert receiver, the Airflow it triggers, and the loop's
timings. Environment variables with the prefix ``MLOPS_LOOP_`` override the defaults; CLI flags
override both.

Timings are production seconds; the loop divides each by ``clock`` (30: thirty times faster), so
a demo on an accelerated clock keeps the production ratios. The Alertmanager timings default to
the committed alertmanager.yml's values (None here)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict
from roadmap_lab.settings import LabSettings, env_prefix

from mlops_loop import PROJECT
from mlops_loop.errors import MlopsLoopError

ENV_PREFIX = env_prefix(PROJECT)
# model-monitoring's alerts (its monitoring/rules/) that mean "the model no longer fits".
RETRAIN_ALERTS = ("ModelFeatureDrift", "ModelAccuracyDegradation")


class LoopSettings(LabSettings):
    """The receiver, Airflow and the timings. Prefix ``MLOPS_LOOP_``."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    run_dir: Path = Path("runs/mlops-loop")

    # The receiver. Alertmanager sends this token as a bearer token (http_config.authorization
    # reads the same file); without one the receiver does not start.
    host: str = "127.0.0.1"
    port: int = Field(default=9097, ge=1, le=65535)
    webhook_token_file: Path | None = None
    # None: http://<host>:<port>, what the Alertmanager config points at.
    receiver_url: str | None = None
    # Only these alert names trigger the DAG, whatever the route sends.
    retrain_alerts: tuple[str, ...] = RETRAIN_ALERTS

    # Airflow's api-server and the DAG to trigger (data-pipelines' pipeline by default).
    airflow_url: str = "http://127.0.0.1:8080"
    airflow_username: str = "admin"
    airflow_password: SecretStr | None = None
    dag_id: str = "housing_pipeline"
    # Below Alertmanager's own deadline for one notification (its group_interval, at least 10 s).
    airflow_timeout_s: float = Field(default=8.0, gt=0)

    # Timings (production seconds, divided by clock).
    clock: float = Field(default=1.0, ge=1)
    # After a group's run finished, its alerts trigger nothing for this long.
    cooldown_s: float = Field(default=1800.0, ge=0)
    group_wait_s: float | None = Field(default=None, gt=0)
    group_interval_s: float | None = Field(default=None, gt=0)
    repeat_interval_s: float | None = Field(default=None, gt=0)

    # The loop's stack (demo, benchmark): the two projects' PEXes, built by
    # `./pants package projects/data-pipelines:cli projects/model-monitoring:cli`.
    data_pipelines_pex: Path = Path("dist/projects.data-pipelines/cli.pex")
    model_monitoring_pex: Path = Path("dist/projects.model-monitoring/cli.pex")
    # The history's first week: the bootstrap run trains the first champion on it; the drift
    # starts with the week after it (the source serves it, and every later week, inverted).
    # Weeks of one region with both classes well represented (the data moves region by region,
    # and some weeks hold one class only).
    start_week: str = Field(default="2020-11-22", pattern=r"^\d{4}-\d{2}-\d{2}$")
    # The benchmark's repeats: one start week each.
    benchmark_start_weeks: tuple[str, ...] = ("2020-11-22", "2020-12-13", "2021-02-14")
    # The gate's margin for the deployed pipeline (DATA_PIPELINES_GATE_MARGIN).
    gate_margin: float = Field(default=0.01, ge=-1, le=1)
    # Labelled traffic in production rows per second (the service, its drift job and
    # Prometheus run on the clock; Airflow, training and the registry at real speed).
    rows_per_second: float = Field(default=10.0, gt=0)
    # Production minutes of traffic from the champion's own window before the drift; after the
    # alert resolved, of the drifted week (the "after" accuracy); then of the week after it,
    # which no model trained on (the "a week later" accuracy; 0: none).
    before_minutes: float = Field(default=15.0, gt=0)
    after_minutes: float = Field(default=10.0, gt=0)
    forward_minutes: float = Field(default=10.0, ge=0)
    # Real seconds the loop may take from the drift onset to the alert resolved.
    loop_timeout_s: float = Field(default=240.0, gt=0)

    def wall_seconds(self, production_s: float) -> float:
        return production_s / self.clock

    def resolved_receiver_url(self) -> str:
        return (self.receiver_url or f"http://{self.host}:{self.port}").rstrip("/")

    def webhook_token(self) -> str:
        """The token the webhook must carry; an error when none is configured."""
        path = self.webhook_token_file
        if path is None:
            raise MlopsLoopError(
                f"no webhook token: set {ENV_PREFIX}WEBHOOK_TOKEN_FILE to a file holding the "
                "token Alertmanager sends (http_config.authorization.credentials_file)"
            )
        try:
            token = path.read_text(encoding="utf-8").strip()
        except OSError as error:
            raise MlopsLoopError(f"cannot read the webhook token file {path}: {error}") from None
        if len(token) < 16:
            raise MlopsLoopError(f"the webhook token in {path} is empty or under 16 characters")
        return token

    def airflow_secret(self) -> str:
        if self.airflow_password is None:
            raise MlopsLoopError(
                f"no Airflow password: set {ENV_PREFIX}AIRFLOW_PASSWORD (the password of "
                f"{self.airflow_username!r} on {self.airflow_url})"
            )
        return self.airflow_password.get_secret_value()
