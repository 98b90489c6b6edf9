from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError
from pydantic_settings import SettingsConfigDict
from roadmap_lab.settings import LabSettings, TrackedSettings, cache_dir, env_prefix


class DemoSettings(LabSettings):
    model_config = SettingsConfigDict(env_prefix="DEMO_PROJECT_")
    epochs: int = 3


def test_cache_dir_defaults_to_home_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("ROADMAP_LAB_CACHE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert cache_dir() == tmp_path / ".cache" / "roadmap-lab"


def test_cache_dir_follows_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ROADMAP_LAB_CACHE", str(tmp_path / "c"))
    assert cache_dir() == tmp_path / "c"
    assert LabSettings().cache_dir == tmp_path / "c"


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DEMO_PROJECT_SEED", "DEMO_PROJECT_DIST_DIR", "DEMO_PROJECT_LOG_LEVEL"):
        monkeypatch.delenv(name, raising=False)
    settings = DemoSettings()
    assert settings.dist_dir == Path("dist")
    assert settings.seed == 0
    assert settings.log_level == "INFO"
    assert settings.epochs == 3


def test_subclass_env_prefix_overrides_fields(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DEMO_PROJECT_SEED", "7")
    monkeypatch.setenv("DEMO_PROJECT_DIST_DIR", str(tmp_path / "out"))
    monkeypatch.setenv("DEMO_PROJECT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("DEMO_PROJECT_LOG_LEVEL", "debug")
    monkeypatch.setenv("DEMO_PROJECT_EPOCHS", "5")
    settings = DemoSettings()
    assert settings.seed == 7
    assert settings.dist_dir == tmp_path / "out"
    assert settings.cache_dir == tmp_path / "cache"
    assert settings.log_level == "DEBUG"
    assert settings.epochs == 5


def test_bad_values_are_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEMO_PROJECT_SEED", "not-a-number")
    with pytest.raises(ValidationError, match="seed"):
        DemoSettings()
    with pytest.raises(ValidationError, match="unknown log level"):
        LabSettings(log_level="LOUD")


class DemoTracked(TrackedSettings):
    model_config = SettingsConfigDict(env_prefix="DEMO_PROJECT_")
    run_dir: Path = Path("runs/demo-project")


def test_env_prefix_comes_from_the_project_name() -> None:
    assert env_prefix("ml-cicd") == "ML_CICD_" and env_prefix("llm-serving") == "LLM_SERVING_"


def test_tracking_uri_flag_then_prefixed_then_mlflow_then_a_local_store(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("DEMO_PROJECT_TRACKING_URI", raising=False)
    local = DemoTracked(run_dir=tmp_path)
    assert local.uses_local_store()
    assert local.resolved_tracking_uri() == f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"
    assert local.local_artifact_root() == tmp_path.resolve() / "mlartifacts"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert DemoTracked().resolved_tracking_uri() == "http://127.0.0.1:5000"
    monkeypatch.setenv("DEMO_PROJECT_TRACKING_URI", "http://127.0.0.1:6000")
    assert DemoTracked().tracking_uri == "http://127.0.0.1:6000"
    assert DemoTracked(tracking_uri="http://flag:1").tracking_uri == "http://flag:1"
    assert DemoTracked().run_dir == Path("runs/demo-project")


def test_gated_settings_map_to_the_gate_thresholds_in_one_place(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from roadmap_lab.gate import GatedSettings, GateThresholds

    class Gated(GatedSettings):
        model_config = SettingsConfigDict(env_prefix="DEMO_PROJECT_")

    assert Gated().thresholds() == GateThresholds()
    monkeypatch.setenv("DEMO_PROJECT_GATE_MARGIN", "-0.01")
    monkeypatch.setenv("DEMO_PROJECT_GATE_BOUND", "estimate")
    thresholds = Gated().thresholds()
    assert (thresholds.margin, thresholds.bound) == (-0.01, "estimate")
    monkeypatch.setenv("DEMO_PROJECT_GATE_BOUND", "median")
    with pytest.raises(ValidationError, match="gate_bound"):
        Gated()
