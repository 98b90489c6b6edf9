from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError
from pydantic_settings import SettingsConfigDict
from roadmap_lab.settings import LabSettings, cache_dir


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
