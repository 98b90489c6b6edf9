"""The retrain pipeline end to end in a temporary git repository, on real reviews, with a real
(sqlite) MLflow registry: a data commit that improves the model is promoted, one that degrades it
is refused with its reason, one that breaks the schema is refused before training; a rerun on the
same data version is a no-op; rollback restores the previous champion."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from ml_cicd.cli import app
from ml_cicd.outcome import RetrainOutcome
from ml_cicd.registry import CHAMPION, PREVIOUS_CHAMPION, client, rollback, version_for_alias
from ml_cicd.retrain import retrain
from ml_cicd.settings import ProjectSettings
from ml_cicd.training import bundled_training_rows, held_out_set
from ml_cicd.validation import RuleResult
from mlc_testing import commit_slice, git, new_data_repo
from typer.testing import CliRunner

INITIAL_ROWS = 1100  # as the committed slice 0001-reviews.csv


def alias_version(mlflow_client, alias: str) -> str | None:
    version = version_for_alias(mlflow_client, "reviews", alias)
    return None if version is None else str(version.version)


def failed_rules(outcome: RetrainOutcome) -> list[RuleResult]:
    assert outcome.validation is not None
    return outcome.validation.failures()


@pytest.fixture(scope="module")
def reviews() -> pd.DataFrame:
    return bundled_training_rows().sample(frac=1, random_state=0).reset_index(drop=True)


@pytest.fixture
def data_repo(tmp_path: Path, reviews: pd.DataFrame) -> Path:
    return new_data_repo(tmp_path, reviews.iloc[:INITIAL_ROWS])


@pytest.fixture
def settings(tmp_path: Path, data_repo: Path) -> ProjectSettings:
    return ProjectSettings(
        run_dir=tmp_path / "runs", data_dir=data_repo, registered_model="reviews"
    )


def test_improving_degrading_and_broken_commits(
    settings: ProjectSettings, data_repo: Path, reviews: pd.DataFrame, tmp_path: Path
) -> None:
    first = retrain(settings, report_path=tmp_path / "first.md")
    assert first.status == "promoted", first.reason
    assert "no champion yet" in first.reason
    mlflow_client = client(settings)
    v1 = version_for_alias(mlflow_client, "reviews", CHAMPION)
    assert v1 is not None and v1.tags["data_version"] == first.data.version
    assert v1.tags["data_git_commit"] == git(data_repo, "rev-parse", "HEAD")

    # A rerun on the same data version changes nothing.
    again = retrain(settings)
    assert again.status == "unchanged" and again.registered_version is None
    assert len(mlflow_client.search_model_versions("name='reviews'")) == 1

    # More real reviews: the gate's lower bound clears zero; promoted.
    commit_slice(data_repo, "0002-reviews.csv", reviews.iloc[INITIAL_ROWS:])
    dry = retrain(settings, dry_run=True, report_path=tmp_path / "dry.md")
    assert dry.status == "promoted" and dry.registered_version is None
    assert len(mlflow_client.search_model_versions("name='reviews'")) == 1  # nothing registered
    assert "dry run: nothing registered" in (tmp_path / "dry.md").read_text()
    better = retrain(settings, report_path=tmp_path / "better.md")
    assert better.status == "promoted", better.reason
    assert better.gain is not None and better.gain["low"] > 0
    assert alias_version(mlflow_client, CHAMPION) == better.registered_version
    assert alias_version(mlflow_client, PREVIOUS_CHAMPION) == str(v1.version)
    report = (tmp_path / "better.md").read_text()
    assert "0002-reviews.csv" in report and "macro_f1" in report and "promoted" in report

    # Reviews with shuffled labels (label balance kept, so validation passes): refused.
    # Every bundled review is in a slice by now: the texts get a suffix to be new ones.
    noise = reviews.sample(n=1500, random_state=5)
    noise = pd.DataFrame(
        {
            "text": [f"{text} (resubmitted)" for text in noise["text"]],
            "label": noise["label"].sample(frac=1, random_state=6).to_numpy(),
        }
    )
    commit_slice(data_repo, "0003-relabelled.csv", noise)
    worse = retrain(settings, report_path=tmp_path / "worse.md")
    assert worse.status == "rejected", worse.reason
    assert worse.checks["quality"] is False and "lower bound" in worse.reason
    assert worse.registered_version is not None  # registered, not promoted
    refused = mlflow_client.get_model_version("reviews", worse.registered_version)
    assert refused.tags["gate.decision"] == "rejected"
    assert "lower bound" in refused.tags["gate.reason"]
    assert alias_version(mlflow_client, CHAMPION) == better.registered_version

    # A slice that breaks the schema: refused before training, the report names rows and rules.
    git(data_repo, "rm", "-q", "slices/0003-relabelled.csv")
    broken = pd.DataFrame(
        {
            "text": ["fine tea", "", "fine tea", *[f"review number {i}" for i in range(60)]],
            "label": ["great", "other", "great", "excellent", *["other"] * 59],
        }
    )
    commit_slice(data_repo, "0004-broken.csv", broken)
    versions_before = len(mlflow_client.search_model_versions("name='reviews'"))
    invalid = retrain(settings, report_path=tmp_path / "invalid.md")
    assert invalid.status == "invalid" and invalid.exit_code == 1
    assert invalid.challenger_metrics is None  # nothing trained
    assert len(mlflow_client.search_model_versions("name='reviews'")) == versions_before
    failed = {(r.rule, tuple(r.rows)) for r in failed_rules(invalid)}
    assert ("text_not_empty", (2,)) in failed
    assert ("label_set", (4,)) in failed
    assert ("field_uniqueness", (1, 3)) in failed
    text = (tmp_path / "invalid.md").read_text()
    assert "invalid data" in text and "label_set" in text and "**FAIL**" in text


def test_rollback_restores_the_previous_champion(
    settings: ProjectSettings, data_repo: Path, reviews: pd.DataFrame
) -> None:
    first = retrain(settings)
    commit_slice(data_repo, "0002-reviews.csv", reviews.iloc[INITIAL_ROWS:])
    second = retrain(settings)
    assert (first.status, second.status) == ("promoted", "promoted")
    moved = rollback(settings)
    assert moved == {
        "model": "reviews",
        "from": second.registered_version,
        "to": first.registered_version,
        "previous": None,
    }
    mlflow_client = client(settings)
    assert alias_version(mlflow_client, CHAMPION) == first.registered_version
    assert version_for_alias(mlflow_client, "reviews", PREVIOUS_CHAMPION) is None
    assert (
        mlflow_client.get_model_version("reviews", second.registered_version).tags["rolled_back"]
        == "true"
    )
    with pytest.raises(Exception, match="first champion"):
        rollback(settings)


def test_edited_slice_is_refused(settings: ProjectSettings, data_repo: Path) -> None:
    assert retrain(settings).status == "promoted"
    path = data_repo / "slices" / "0001-reviews.csv"
    frame = pd.read_csv(path)
    frame.loc[0, "label"] = "other" if frame.loc[0, "label"] == "great" else "great"
    frame.to_csv(path, index=False)
    outcome = retrain(settings)
    assert outcome.status == "invalid"
    assert [r.rule for r in failed_rules(outcome)] == ["append_only"]


def test_cli_exit_codes_and_report(
    settings: ProjectSettings, data_repo: Path, tmp_path: Path
) -> None:
    runner = CliRunner()
    common = [
        "--data-dir",
        str(data_repo),
        "--run-dir",
        str(settings.run_dir),
        "--model-name",
        "reviews",
    ]
    report, outcome = tmp_path / "r.md", tmp_path / "o.json"
    done = runner.invoke(
        app, ["retrain", *common, "--dry-run", "--report", str(report), "--json", str(outcome)]
    )
    assert done.exit_code == 0, done.output
    assert json.loads(outcome.read_text())["status"] == "promoted"
    assert report.read_text().startswith("## Retrain `reviews`")

    pd.DataFrame({"text": ["only a few rows"], "label": ["great"]}).to_csv(
        data_repo / "slices" / "0002-tiny.csv", index=False
    )
    done = runner.invoke(app, ["retrain", *common, "--report", str(report)])
    assert done.exit_code == 1, done.output
    assert "size_floor" in report.read_text()
    done = runner.invoke(app, ["validate", *common])
    assert done.exit_code == 1 and "size_floor" in done.output

    done = runner.invoke(
        app,
        ["retrain", "--data-dir", str(tmp_path / "nowhere"), "--run-dir", str(settings.run_dir)],
    )
    assert done.exit_code == 2 and "no slices folder" in done.output
    done = runner.invoke(app, ["rollback", "--run-dir", str(settings.run_dir), "--model-name", "x"])
    assert done.exit_code == 2 and "nothing to roll back" in done.output


def _three_words_changed(text: str) -> str:
    words = text.split()
    for position, word in zip((5, 15, 25), ("really", "honestly", "truly"), strict=True):
        words[position] = word
    return " ".join(words)


def test_a_slice_with_held_out_reviews_is_refused(
    settings: ProjectSettings, data_repo: Path, reviews: pd.DataFrame, tmp_path: Path
) -> None:
    test = held_out_set()
    long = test[test["text"].str.split().str.len() >= 40].reset_index(drop=True)
    copies = [
        long.loc[0, "text"],  # verbatim
        long.loc[1, "text"].upper(),  # case changed
        " ".join(long.loc[2, "text"].replace(".", " ").split()) + "!!",  # spacing, punctuation
        *(_three_words_changed(long.loc[i, "text"]) for i in (3, 4, 5)),  # a few words changed
    ]
    clean = reviews.iloc[INITIAL_ROWS : INITIAL_ROWS + 200]
    leaky = pd.concat(
        [clean, pd.DataFrame({"text": copies, "label": long.loc[:5, "label"].tolist()})]
    )
    commit_slice(data_repo, "0002-leaky.csv", leaky)  # the copies are rows 201 to 206
    report, outcome_file = tmp_path / "leaky.md", tmp_path / "leaky.json"
    done = CliRunner().invoke(
        app,
        ["retrain", "--data-dir", str(data_repo), "--run-dir", str(settings.run_dir),
         "--model-name", "reviews", "--report", str(report), "--json", str(outcome_file)],
    )  # fmt: skip
    assert done.exit_code == 1, done.output
    outcome = json.loads(outcome_file.read_text())
    assert outcome["status"] == "invalid" and outcome["challenger_metrics"] is None
    failed = {r["rule"]: r for r in outcome["validation"]["results"] if not r["passed"]}
    assert set(failed) == {"text_in_held_out", "text_near_held_out"}
    assert all(r["slice"] == "0002-leaky.csv" for r in failed.values())
    assert failed["text_in_held_out"]["rows"] == [201, 202, 203]
    assert failed["text_near_held_out"]["rows"] == [204, 205, 206]
    text = report.read_text()
    assert "text_near_held_out" in text and "held-out row" in text
    assert client(settings).search_model_versions("name='reviews'") == []  # nothing registered
