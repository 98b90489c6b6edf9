"""The CLI on any CSV by configuration: train a bundle (numeric and categorical features),
rebaseline it, and one-line errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from model_monitoring.bundle import load_bundle
from model_monitoring.cli import app
from model_monitoring.drift import ReferenceFeature
from typer.testing import CliRunner

runner = CliRunner()


@pytest.fixture
def churn_csv(tmp_path: Path) -> Path:
    """A small tabular data set that is not the default: two numeric features, a text and a
    boolean column (categorical), a numeric-coded region, a string target and a timestamp; the
    second half drifts in `tenure`."""
    rng = np.random.default_rng(0)
    rows = 800
    tenure = np.concatenate([rng.normal(24, 6, rows // 2), rng.normal(40, 6, rows // 2)])
    spend = rng.gamma(2.0, 30.0, rows)
    churned = np.where(rng.random(rows) < 1 / (1 + np.exp((tenure - 24) / 6)), "yes", "no")
    frame = pd.DataFrame(
        {
            "signup": pd.date_range("2024-01-01", periods=rows, freq="h").astype(str),
            "tenure": tenure.round(),
            "spend": spend,
            "plan": rng.choice(["basic", "plus", "family"], rows),
            "autopay": rng.random(rows) < 0.6,
            "region": rng.integers(1, 4, rows),
            "churned": churned,
        }
    )
    path = tmp_path / "churn.csv"
    frame.to_csv(path, index=False)
    return path


def test_train_any_csv_by_configuration_then_rebaseline(churn_csv: Path, tmp_path: Path) -> None:
    bundle_dir = tmp_path / "bundle"
    result = runner.invoke(
        app,
        ["train", "--data", str(churn_csv), "--target", "churned", "--timestamp", "signup",
         "--categorical", "region", "--end", "2024-01-17 16:00", "--output", str(bundle_dir)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "(3 categorical)" in result.output
    bundle = load_bundle(bundle_dir)
    assert bundle.feature_names == ["tenure", "spend", "plan", "autopay", "region"]
    assert [(f.name, f.type, f.categories) for f in bundle.features] == [
        ("tenure", "int", None), ("spend", "float", None),
        ("plan", "category", ["basic", "family", "plus"]),
        ("autopay", "category", ["False", "True"]), ("region", "category", ["1", "2", "3"]),
    ]  # fmt: skip
    assert bundle.reference["plan"].proportions == pytest.approx([1 / 3] * 3, abs=0.06)
    assert bundle.classes == ["no", "yes"]
    assert bundle.reference_window["rows"] == 400
    tenure = bundle.reference["tenure"]
    assert isinstance(tenure, ReferenceFeature)
    low, high = bundle.features[0].min, bundle.features[0].max
    assert low is not None and high is not None and low < 24 < high
    result = runner.invoke(
        app,
        ["rebaseline", "--data", str(churn_csv), "--timestamp", "signup",
         "--start", "2024-01-17 16:00", "--bundle-dir", str(bundle_dir)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    rebased = load_bundle(bundle_dir)
    rebased_tenure = rebased.reference["tenure"]
    assert isinstance(rebased_tenure, ReferenceFeature)
    assert rebased_tenure.mean > tenure.mean + 10  # the new window's distribution
    assert rebased.version == bundle.version  # same model
    assert rebased.rebaselined_at is not None


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--target", "nope"], "no target column 'nope'"),
        (["--target", "spend"], "exactly 2 classes"),
        (["--target", "churned", "--feature", "colour"], "not in the data: colour"),
        (["--target", "churned", "--timestamp", "signup", "--start", "2030-01-01"], "no rows"),
        (["--target", "churned", "--dataset", "car-loan"], "not both"),
        # Without --timestamp the timestamp is one more text column: too many categories.
        (["--target", "churned"], "'signup' has 800 categories"),
    ],
)
def test_bad_configuration_is_one_line_and_exit_2(
    churn_csv: Path, tmp_path: Path, extra: list[str], message: str
) -> None:
    result = runner.invoke(
        app, ["train", "--data", str(churn_csv), "--output", str(tmp_path / "b"), *extra]
    )
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "b" / "bundle.json").exists()


def test_missing_data_file_and_missing_bundle(tmp_path: Path) -> None:
    result = runner.invoke(app, ["train", "--data", str(tmp_path / "x.csv"), "--target", "y"])
    assert result.exit_code == 2 and "no such data file" in result.output
    result = runner.invoke(app, ["rebaseline", "--bundle-dir", str(tmp_path / "none")])
    assert result.exit_code == 2 and "run `train` first" in result.output


def test_scaled_config_writes_files_promtool_accepts(tmp_path: Path) -> None:
    import subprocess

    result = runner.invoke(app, ["scaled-config", "--clock", "60", "--output", str(tmp_path)])
    assert result.exit_code == 0, result.output
    check = subprocess.run(
        ["promtool", "check", "config", str(tmp_path / "prometheus.yml")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr
    assert "scrape_interval: 250ms" in (tmp_path / "prometheus.yml").read_text()


def test_serving_a_registry_model_without_a_reachable_registry_is_one_line(
    tmp_path: Path, free_tcp_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MODEL_MONITORING_TRACKING_URI", f"http://127.0.0.1:{free_tcp_port}")
    result = runner.invoke(
        app, ["serve", "--registered-model", "housing-classifier", "--run-dir", str(tmp_path)]
    )
    assert result.exit_code == 2
    said = " ".join(result.output.split())  # rich wraps the line at the terminal's width
    assert f"registry at http://127.0.0.1:{free_tcp_port} failed" in said
    assert "Traceback" not in said and not (tmp_path / "bundle").exists()
