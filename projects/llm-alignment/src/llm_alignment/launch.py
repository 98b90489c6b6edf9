"""Training in several processes: a CLI command re-launches itself under torchrun.

``accelerate launch --num_processes 2`` started ONE process on our CPU machines (it wants mpirun
for multi-CPU); ``torchrun --standalone --nproc_per_node N`` starts N, which the trainers join as
one gloo (CPU) or NCCL (GPU) process group. ``--standalone`` binds a free port itself.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel
from roadmap_lab.services import python_child_env


def under_launcher() -> bool:
    """True inside a process that torchrun (or accelerate launch) started."""
    return "LOCAL_RANK" in os.environ


def torchrun_command(processes: int, cli_args: list[str]) -> list[str]:
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        str(processes),
        "-m",
        "llm_alignment",
        *cli_args,
    ]


def relaunch(command: str, options: BaseModel, processes: int, flags: dict[str, Any]) -> int:
    """Run ``llm_alignment <command>`` in ``processes`` processes under torchrun with the
    resolved ``options`` (as a YAML config, so every process trains on the same ones) and the
    given ``flags`` (``--name value``, None left out); returns torchrun's exit status."""
    with tempfile.TemporaryDirectory(prefix="llm-alignment-launch-") as folder:
        config = Path(folder) / f"{command}.yaml"
        config.write_text(yaml.safe_dump(options.model_dump(mode="json")), encoding="utf-8")
        cli_args = [command, "--config", str(config)]
        for name, value in flags.items():
            if value is not None:
                cli_args += [f"--{name.replace('_', '-')}", str(value)]
        # Children inherit stdout/stderr: the main process prints the summary as usual.
        return subprocess.run(
            torchrun_command(processes, cli_args), env=python_child_env(), check=False
        ).returncode
