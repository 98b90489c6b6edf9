"""Helpers for the showcase tests: fixture projects, registries and a hand-made PNG."""

import json
import struct
import sys
import textwrap
import zlib
from pathlib import Path


def make_png(width: int = 96, height: int = 64) -> bytes:
    """A valid RGB PNG (a colour gradient), built by hand."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    rows = b"".join(
        b"\x00" + b"".join(bytes((x * 255 // width, y * 255 // height, 160)) for x in range(width))
        for y in range(height)
    )
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def python_command(code: str) -> list[str]:
    return [sys.executable, "-c", textwrap.dedent(code)]


def good_results_script(name: str, png: bytes | None = None) -> str:
    results = {
        "project": name,
        "status": "ok",
        "measured_at": "2025-01-01T12:00:00Z",
        "machine": {
            "cpu_model": "Test CPU",
            "cores": 2,
            "memory_gb": 24,
            "gpu": None,
            "python": "3.11.7",
            "platform": "Linux",
        },
        "headline": [
            {
                "name": "throughput <tokens>",
                "value": 780.4,
                "unit": "tok/s",
                "baseline": 23.5,
                "target": ">= 30",
                "interval": {"low": 700, "high": 850, "confidence": 0.95, "method": "t", "n": 5},
            },
            {
                "name": "p95 latency",
                "value": 7.2,
                "unit": "s",
                "baseline": None,
                "target": "< 5",
                "interval": {"low": 6.1, "high": 8, "confidence": 0.95, "method": "t", "n": 5},
            },
            {
                "name": "drift alert delay",
                "value": 0.01,
                "unit": "",
                "baseline": 0.05,
                "target": "<= 0.02",
                "interval": {"low": 0, "high": 0.015, "confidence": 0.95, "method": "t", "n": 5},
            },
            {"name": "cold start", "value": 12, "unit": "s", "baseline": None, "target": "< 30"},
            {
                "name": "quality",
                "value": "good",
                "unit": None,
                "baseline": None,
                "target": "better than before",
            },
        ],
        "plots": ["plots/curve.png"] if png else [],
        "pages": ["pages/answers.html"],
        "details": {"runs": 3},
    }
    lines = [
        "import json, pathlib",
        "print('training step 1/3')",
        "print('training step 3/3')",
        f"out = pathlib.Path('dist/{name}')",
        "out.mkdir(parents=True, exist_ok=True)",
    ]
    if png:
        lines += [
            "(out / 'plots').mkdir(parents=True, exist_ok=True)",
            f"(out / 'plots' / 'curve.png').write_bytes(bytes.fromhex({png.hex()!r}))",
        ]
    lines += [
        "(out / 'pages').mkdir(parents=True, exist_ok=True)",
        "(out / 'pages' / 'answers.html').write_text('<p>base vs adapter</p>')",
        f"(out / 'results.json').write_text(json.dumps({results!r}))",
        "print('done')",
    ]
    return "\n".join(lines)


def write_registry(root: Path, entries: list[dict]) -> Path:
    """showcase.toml with the given [[project]] tables (values as JSON, which TOML accepts)."""
    lines = []
    for entry in entries:
        lines.append("[[project]]")
        lines.extend(f"{key} = {json.dumps(value)}" for key, value in entry.items())
        lines.append("")
    path = root / "showcase.toml"
    path.write_text("\n".join(lines))
    return path


MIXED_PROJECTS = [
    {"name": "good", "title": "Good & <fast> project", "timeout_s": 30},
    {
        "name": "crash",
        "title": "Crashing project",
        "timeout_s": 30,
        "command": python_command("""
        import sys
        for i in range(60):
            print(f"line {i}")
        print("boom: something broke", file=sys.stderr)
        sys.exit(1)
     """),
    },
    {
        "name": "badjson",
        "title": "Invalid results",
        "timeout_s": 30,
        "command": python_command("""
        import pathlib
        pathlib.Path("dist/badjson").mkdir(parents=True, exist_ok=True)
        pathlib.Path("dist/badjson/results.json").write_text("{not json")
     """),
    },
    {
        "name": "slow",
        "title": "Too slow",
        "timeout_s": 1,
        "command": python_command("""
        import time
        print("starting the long part", flush=True)
        time.sleep(60)
     """),
    },
]
