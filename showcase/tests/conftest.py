import pytest
from roadmap_showcase.cli import main
from showcase_fixtures import (
    MIXED_PROJECTS,
    good_results_script,
    make_png,
    python_command,
    write_registry,
)


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: slow test (starts a real browser); CI runs these too")


@pytest.fixture(scope="session")
def png() -> bytes:
    return make_png()


@pytest.fixture(scope="session")
def mixed_showcase(tmp_path_factory, png):
    """One run of a registry with an ok, a crashing, an invalid-JSON and a timed-out project."""
    root = tmp_path_factory.mktemp("mixed")
    entries = [dict(entry) for entry in MIXED_PROJECTS]
    entries[0]["command"] = python_command(good_results_script("good", png))
    registry = write_registry(root, entries)
    exit_code = main(
        ["--registry", str(registry), "--dist", str(root / "dist"), "--pants", "false"]
    )
    return exit_code, root / "dist" / "showcase"
