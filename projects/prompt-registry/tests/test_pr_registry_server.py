"""Against a real ``mlflow server`` on 127.0.0.1: register, aliases, load by alias, immutable
versions, the eval config stored with each version, the unchanged-prompt no-op, gated promotion
and rollback, the file fallback, and registry outages (the gate fails closed)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pr_testing import ChatServer, OutageProxy
from prompt_registry.cli import app
from prompt_registry.errors import RegistryError
from prompt_registry.harness import Harness
from prompt_registry.prompts import load_prompt
from prompt_registry.registry import (
    EVAL_CONFIG_TAG,
    PREVIOUS_PRODUCTION,
    PRODUCTION,
    SCORER_CODE_TAG,
    STAGING,
    Registry,
    load_for_app,
)
from typer.testing import CliRunner

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
    # The eval config comes back from the registry: examples, scorers, floor, scorer code.
    assert loaded.eval_config == folder.content().config
    tags = registry.versions("capital-city")[0].tags
    assert '"expected":"Paris"' in tags[EVAL_CONFIG_TAG] and len(tags[SCORER_CODE_TAG]) == 64


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
    # So is a golden-set change.
    golden = prompts_dir / "extract-contact" / "golden.jsonl"
    golden.write_text("".join(golden.read_text().splitlines(keepends=True)[:-1]))
    fourth, created = registry.register(load_prompt(prompts_dir, "extract-contact"))
    assert created and fourth == third + 1
    assert len(registry.content("extract-contact", version=fourth).config.examples) == 19


def test_promotion_is_gated_and_rollback_restores_the_previous_version(
    mlflow_url: str, settings
) -> None:
    settings = settings.model_copy(update={"tracking_uri": mlflow_url, "gate_max_drop": 1.0})
    harness = Harness(settings)
    v0, _ = harness.registry.register(harness.folder("review-sentiment"))
    # The tiny random model scores nothing: the floor refuses a first production version ...
    result, _ = harness.promote("review-sentiment", v0)
    assert (
        not result.passed and harness.registry.alias_version("review-sentiment", PRODUCTION) is None
    )
    # ... and a version whose stored floor is zero is accepted.
    spec = settings.prompts_dir / "review-sentiment" / "prompt.yaml"
    spec.write_text(spec.read_text().replace("min_pass_rate: 0.5", "min_pass_rate: 0.0"))
    v1, _ = harness.registry.register(harness.folder("review-sentiment"))
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


def gate_command(settings, tracking_uri: str, server: ChatServer, *names: str) -> list[str]:
    return [
        "gate", *names, "--tracking-uri", tracking_uri, "--provider", "openai",
        "--base-url", server.url, "--prompts-dir", str(settings.prompts_dir),
        "--run-dir", str(settings.run_dir),
    ]  # fmt: skip


def test_a_registry_outage_stops_the_gate_with_one_line_and_exit_2(
    mlflow_url: str, settings, free_tcp_port: int
) -> None:
    """Only "not found" means no production version; an error answer or an unreachable
    server never lets a prompt through on its floor."""
    # A prompt no other test of this module registers (the server is shared).
    folder = settings.prompts_dir / "review-outage"
    (settings.prompts_dir / "review-sentiment").rename(folder)
    spec = folder / "prompt.yaml"
    spec.write_text(spec.read_text().replace("name: review-sentiment", "name: review-outage"))
    runner = CliRunner()
    with ChatServer().running() as chat, OutageProxy(mlflow_url).running() as proxy:
        # Not registered: no production version, so the floor decides (0.656 >= 0.5).
        passed = runner.invoke(app, gate_command(settings, proxy.url, chat, "review-outage"))
        assert passed.exit_code == 0, passed.output
        assert "no production version; floor" in " ".join(passed.output.split())
        proxy.down = True
        for uri in (proxy.url, f"http://127.0.0.1:{free_tcp_port}"):
            failed = runner.invoke(app, gate_command(settings, uri, chat, "review-outage"))
            assert failed.exit_code == 2, failed.output
            lines = [line for line in failed.output.splitlines() if line.startswith("error:")]
            assert len(lines) == 1 and "cannot read review-outage@production" in lines[0]
            assert "floor" not in failed.output
        promote = runner.invoke(
            app, ["promote", "review-outage", "--version", "1", "--tracking-uri", proxy.url]
        )
        assert promote.exit_code == 2 and promote.output.strip().startswith("error: registry ")
