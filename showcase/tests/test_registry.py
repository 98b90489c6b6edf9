import tomllib
from pathlib import Path

import pytest
from roadmap_showcase.registry import (
    DEFAULT_TIMEOUT_S,
    RegistryError,
    load_registry,
    parse_registry,
)

REPO_REGISTRY = Path(__file__).resolve().parents[2] / "showcase.toml"


def parse(text: str):
    return parse_registry(tomllib.loads(text))


def test_full_entry_and_defaults():
    projects = parse("""
        [[project]]
        name = "experiment-tracking"
        title = "Experiment tracking & model registry"
        demo = "projects/experiment-tracking:cli"
        args = ["demo"]
        timeout_s = 900

        [[project]]
        name = "tiny"
        title = "Tiny"
        command = ["python", "-c", "pass"]
    """)
    tracking, tiny = projects
    assert tracking.demo == "projects/experiment-tracking:cli"
    assert tracking.args == ("demo",)
    assert tracking.timeout_s == 900.0
    assert tracking.results == Path("dist/experiment-tracking/results.json")
    assert tracking.command is None
    assert tiny.demo is None and tiny.command == ("python", "-c", "pass")
    assert tiny.args == () and tiny.timeout_s == DEFAULT_TIMEOUT_S


def test_a_loop_names_the_projects_it_runs_and_their_folders():
    (loop,) = parse("""
        [[project]]
        name = "mlops-loop"
        title = "Loop"
        demo = "loops/mlops:cli"
        packages = ["projects/data-pipelines:cli", "projects/model-monitoring:cli"]
    """)
    assert loop.packages == ("projects/data-pipelines:cli", "projects/model-monitoring:cli")
    assert loop.folders == ["loops/mlops", "projects/data-pipelines", "projects/model-monitoring"]
    (tiny,) = parse('[[project]]\nname = "tiny"\ntitle = "T"\ncommand = ["true"]')
    assert tiny.folders == ["tiny"]


def test_empty_registry_is_valid():
    assert parse("") == []


def test_shipped_registry_loads():
    assert isinstance(load_registry(REPO_REGISTRY), list)


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('[[project]]\ntitle = "T"\ndemo = "p:cli"', "project #1: missing required key 'name'"),
        (
            '[[project]]\nname = "a"\ndemo = "p:cli"',
            "project #1 ('a'): missing required key 'title'",
        ),
        ('[[project]]\nname = "a"\ntitle = "T"', "missing required key 'demo' (or give 'command')"),
        (
            '[[project]]\nname = "a"\ntitle = "T"\ndemo = "p:cli"\n'
            '[[project]]\nname = "a"\ntitle = "U"\ndemo = "q:cli"',
            "project #2: duplicate name 'a'",
        ),
        (
            '[[project]]\nname = "a"\ntitle = "T"\ndemo = "p:cli"\ntimeout_s = "10"',
            "'timeout_s' must be a positive number",
        ),
        (
            '[[project]]\nname = "a"\ntitle = "T"\ndemo = "p:cli"\ntimeout_s = 0',
            "'timeout_s' must be a positive number",
        ),
        (
            '[[project]]\nname = "a"\ntitle = "T"\ndemo = "p:cli"\ntimeout_s = true',
            "'timeout_s' must be a positive number",
        ),
        (
            '[[project]]\nname = "a"\ntitle = "T"\ndemo = "p:cli"\nargs = "demo"',
            "'args' must be a list of strings",
        ),
        (
            '[[project]]\nname = "a"\ntitle = "T"\ndemo = "p:cli"\nargs = [1]',
            "'args' must be a list of strings",
        ),
        ('[[project]]\nname = "a"\ntitle = "T"\ncommand = []', "'command' must not be empty"),
        (
            '[[project]]\nname = "a"\ntitle = "T"\ndemo = "projects/a"',
            "'demo' must be a Pants address",
        ),
        (
            '[[project]]\nname = "a"\ntitle = 3\ndemo = "p:cli"',
            "'title' must be a non-empty string",
        ),
        ('[[project]]\nname = "../x"\ntitle = "T"\ndemo = "p:cli"', "'name' must be a folder name"),
        (
            '[[project]]\nname = "a"\ntitle = "T"\ndemo = "p:cli"\ntimeout = 5',
            "unknown key(s) timeout",
        ),
        (
            '[[project]]\nname = "a"\ntitle = "T"\ndemo = "p:cli"\nprepare = "p"',
            "'prepare' must be a Pants address",
        ),
        (
            '[[project]]\nname = "a"\ntitle = "T"\ndemo = "p:cli"\nprepare_args = ["-x"]',
            "'prepare_args' given without 'prepare'",
        ),
        (
            '[[project]]\nname = "a"\ntitle = "T"\ndemo = "p:cli"\npackages = ["p"]',
            "'packages' holds Pants addresses",
        ),
        ('[[projects]]\nname = "a"', "unknown top-level key(s) projects"),
        ('project = "a"', "'project' must be an array of tables"),
    ],
)
def test_invalid_entries_get_one_line_errors(toml, message):
    with pytest.raises(RegistryError) as error:
        parse(toml)
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(RegistryError, match="file not found"):
        load_registry(tmp_path / "showcase.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[[project]\n")
    with pytest.raises(RegistryError, match="invalid TOML"):
        load_registry(bad)
