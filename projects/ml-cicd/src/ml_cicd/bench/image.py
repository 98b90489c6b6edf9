"""The container image's size, as buildah reports it: ``docker/build-image.sh --size <tag>`` of
an image built before (``docker/build-image.sh projects/ml-cicd/Dockerfile . <tag>``)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

from roadmap_lab.results import find_repo_root

from ml_cicd.errors import BenchmarkError

BUILD_SCRIPT = Path("docker") / "build-image.sh"
_SIZE = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([kKMGT]?i?B|bytes)?\s*")
_UNITS = {
    None: 1, "B": 1, "bytes": 1, "kB": 1e3, "KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12,
    "KiB": 2**10, "kiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40,
}  # fmt: skip


def parse_size(text: str) -> float:
    """Megabytes from a size as buildah or docker prints it ("412 MB", "1.2GB", "431234567")."""
    match = _SIZE.fullmatch(text)
    if match is None or match.group(2) not in _UNITS:
        raise BenchmarkError(f"cannot read an image size from {text!r} (e.g. '412 MB')")
    return round(float(match.group(1)) * _UNITS[match.group(2)] / 1e6, 1)


def measure_image_size(tag: str, script: Path | None = None) -> dict[str, Any]:
    """The size of image ``tag`` from the build script's ``--size`` (buildah's figure)."""
    script = script or find_repo_root() / BUILD_SCRIPT
    if not script.is_file():
        raise BenchmarkError(f"no image build script at {script}")
    try:
        done = subprocess.run(
            ["bash", str(script), "--size", tag], capture_output=True, text=True, timeout=300
        )
    except subprocess.TimeoutExpired:
        raise BenchmarkError(f"{script} --size {tag} did not finish in 300 s") from None
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        why = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise BenchmarkError(f"cannot measure image {tag}: {why} (build it first: {script})")
    return {
        "tag": tag,
        "megabytes": parse_size(lines[-1]),
        "as_printed": lines[-1].strip(),
        "measured_by": f"{BUILD_SCRIPT} --size (buildah images)",
    }
