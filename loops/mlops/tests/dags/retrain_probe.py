"""A stand-in for the retraining DAG in the loop's tests: one task that holds its run until the
test releases it (a file named after the run id appears in RETRAIN_PROBE_RELEASE_DIR), so a run
stays in flight as long as a test needs, and returns the conf's group key. A held task whose
supervisor is gone (the stack stopped while a run was held) exits: task processes run in their
own process group, which stopping the scheduler's group does not reach."""

from __future__ import annotations

import os
import time
from datetime import timedelta
from pathlib import Path

from airflow.sdk import dag, get_current_context, task


@dag(dag_id="retrain_probe", schedule=None, catchup=False, tags=["mlops-loop-test"])
def retrain_probe() -> None:
    @task(execution_timeout=timedelta(minutes=5))
    def hold() -> str:
        context = get_current_context()
        release = Path(os.environ["RETRAIN_PROBE_RELEASE_DIR"]) / context["run_id"]
        supervisor = os.getppid()
        while not release.exists():
            if os.getppid() != supervisor:
                raise SystemExit("the task's supervisor is gone")
            time.sleep(0.2)
        return str(context["dag_run"].conf.get("group_key"))

    hold()


retrain_probe()
