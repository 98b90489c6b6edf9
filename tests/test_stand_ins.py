"""The stand-in wheels pinned by the llm-serving resolve: reproducible and free of code."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

STAND_INS = Path("3rdparty/python/stand-ins")


def test_committed_wheels_are_what_the_builder_makes(tmp_path):
    subprocess.run(
        [sys.executable, str(STAND_INS / "build_stand_ins.py"), str(tmp_path)],
        check=True,
        capture_output=True,
    )
    built = sorted(path.name for path in tmp_path.glob("*.whl"))
    committed = sorted(path.name for path in STAND_INS.glob("*.whl"))
    assert built == committed
    assert {name.split("-")[0] for name in built} == {"torchvision", "torchaudio", "torchcodec"}
    for name in built:
        assert (tmp_path / name).read_bytes() == (STAND_INS / name).read_bytes(), name


def test_stand_ins_hold_metadata_only():
    for wheel in STAND_INS.glob("*.whl"):
        with zipfile.ZipFile(wheel) as archive:
            names = archive.namelist()
            # Nothing importable: only the .dist-info folder, so `import torchvision` fails and
            # transformers treats the package as absent.
            assert all(".dist-info/" in name for name in names), names
            metadata = archive.read(next(n for n in names if n.endswith("METADATA"))).decode()
            assert "+nocuda" in metadata


def test_the_llm_serving_lock_uses_the_stand_ins_through_a_path_mapping():
    lock = Path("projects/llm-serving/requirements.lock").read_text()
    for name in ("torchvision", "torchaudio", "torchcodec"):
        assert f"file://${{STAND_INS_DIR}}/{name}-" in lock
    assert "3rdparty/python/stand-ins" not in lock  # no machine path in the lockfile
