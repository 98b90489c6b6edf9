"""Against a real ``mlflow server`` on 127.0.0.1: register, aliases, load by alias, immutable
versions, the unchanged-prompt no-op, gated promotion and rollback, and the file fallback."""

from __future__ import annotations

from pathlib import Path

import pytest
from prompt_registry.errors import RegistryError
from prompt_registry.harness import Harness
from prompt_registry.prompts import load_prompt
from prompt_registry.registry import (
    PREVIOUS_PRODUCTION,
    PRODUCTION,
    STAGING,
    Registry,
    load_for_app,
)

pytestmark = pytest.mark.slow


def test_register_alias_and_load_by_alias(mlflow_url: str, prompts_dir: Path) -> None:
    registry = Registry(mlflow_url)
    folder = load_prompt(prompts_dir, "capital-city")
    version, created = registry.register(folder, "first")
    assert created and version == 1
    assert registry.aliases("capital-city") == {STAGING: 1}
    registry.promote_production("capital-city", 1)
    loaded = load_for_app("capital-city", prompts_dir, mlflow_url)
    assert loaded.source == "registry v1" and loaded.version == 1
    assert loaded.template == folder.template
    assert loaded.variables == ("country",) and loaded.params == folder.spec.model
    assert loaded.digest == folder.content().digest


def test_unchanged_prompt_is_a_no_op_and_versions_are_immutable(
    mlflow_url: str, prompts_dir: Path
) -> None:
    registry = Registry(mlflow_url)
    folder = load_prompt(prompts_dir, "extract-contact")
    first, _ = registry.register(folder)
    again, created = registry.register(load_prompt(prompts_dir, "extract-contact"))
    assert (again, created) == (first, False)
    assert len(registry.versions("extract-contact")) == 1

    template = prompts_dir / "extract-contact" / "template.txt"
    template.write_text(template.read_text().replace("JSON only", "only JSON"))
    second, created = registry.register(load_prompt(prompts_dir, "extract-contact"))
    assert created and second == first + 1
    assert registry.content("extract-contact", version=first).template == folder.template
    assert "only JSON" in registry.content("extract-contact", version=second).template
    assert registry.alias_version("extract-contact", STAGING) == second
    # A parameter change is a new version too.
    spec = prompts_dir / "extract-contact" / "prompt.yaml"
    spec.write_text(spec.read_text().replace("max_new_tokens: 24", "max_new_tokens: 40"))
    third, created = registry.register(load_prompt(prompts_dir, "extract-contact"))
    assert created and third == second + 1
    assert registry.content("extract-contact", version=third).params.max_new_tokens == 40


def test_promotion_is_gated_and_rollback_restores_the_previous_version(
    mlflow_url: str, settings
) -> None:
    settings = settings.model_copy(update={"tracking_uri": mlflow_url, "gate_max_drop": 1.0})
    harness = Harness(settings)
    folder = harness.folder("review-sentiment")
    v1, _ = harness.registry.register(folder)
    # The tiny random model scores nothing: the floor refuses a first production version ...
    result, _ = harness.promote("review-sentiment", v1)
    assert (
        not result.passed and harness.registry.alias_version("review-sentiment", PRODUCTION) is None
    )
    # ... and a floor of zero accepts it.
    spec = settings.prompts_dir / "review-sentiment" / "prompt.yaml"
    spec.write_text(spec.read_text().replace("min_pass_rate: 0.5", "min_pass_rate: 0.0"))
    result, replaced = harness.promote("review-sentiment", v1)
    assert result.passed and replaced is None
    template = settings.prompts_dir / "review-sentiment" / "template.txt"
    template.write_text("Review: {{review}}\nPositive or negative?\n")
    v2, _ = harness.registry.register(harness.folder("review-sentiment"))
    result, replaced = harness.promote("review-sentiment", v2)
    assert result.passed and result.baseline is not None and replaced == v1
    assert harness.registry.aliases("review-sentiment") == {
        STAGING: v2,
        PRODUCTION: v2,
        PREVIOUS_PRODUCTION: v1,
    }
    assert harness.registry.rollback("review-sentiment") == (v2, v1)
    assert load_for_app("review-sentiment", settings.prompts_dir, mlflow_url).version == v1


def test_file_fallback_without_a_registry_and_errors_with_one(
    mlflow_url: str, prompts_dir: Path
) -> None:
    loaded = load_for_app("freshqa-answer", prompts_dir, None)
    assert loaded.source == "file" and loaded.version is None
    with pytest.raises(RegistryError, match="prompts:/freshqa-answer@production"):
        load_for_app("freshqa-answer", prompts_dir, mlflow_url)
    with pytest.raises(RegistryError, match="no previous production"):
        Registry(mlflow_url).rollback("freshqa-answer")
