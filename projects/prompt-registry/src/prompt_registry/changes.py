"""Which prompts a change touches, and the prompt files as they were at a git commit (the gate's
production version when no registry is configured). Read-only git commands only."""

from __future__ import annotations

import subprocess
from pathlib import Path

from prompt_registry.errors import PromptRegistryError
from prompt_registry.prompts import SPEC_FILE, TEMPLATE_FILE, PromptFolder, load_prompt_folder


def _git(prompts_dir: Path, *args: str) -> str:
    try:
        result = subprocess.run(
            ["git", "-C", str(prompts_dir), *args], capture_output=True, text=True, check=False
        )
    except FileNotFoundError:
        raise PromptRegistryError(
            "git is not installed: it is needed to compare with a commit"
        ) from None
    if result.returncode != 0:
        reason = (result.stderr.strip().splitlines() or ["unknown error"])[-1]
        raise PromptRegistryError(f"git {' '.join(args[:2])} failed in {prompts_dir}: {reason}")
    return result.stdout


def changed_prompts(prompts_dir: Path, ref: str) -> list[str]:
    """Prompt folders with a file that differs from ``ref`` (committed, staged, working tree or
    untracked); folders deleted since ``ref`` are left out (nothing to evaluate)."""
    changed = _git(prompts_dir, "diff", "--name-only", "--relative", ref, "--", ".").splitlines()
    changed += _git(
        prompts_dir, "ls-files", "--others", "--exclude-standard", "--", "."
    ).splitlines()
    names = {Path(path).parts[0] for path in changed if len(Path(path).parts) > 1}
    return sorted(name for name in names if (prompts_dir / name / SPEC_FILE).is_file())


def prompt_at(prompts_dir: Path, name: str, ref: str, scratch: Path) -> PromptFolder | None:
    """The prompt folder as it was at ``ref`` (written under ``scratch``), or None when the prompt
    did not exist there."""
    listed = _git(prompts_dir, "ls-tree", "--name-only", ref, f"./{name}/").splitlines()
    if not any(Path(entry).name == SPEC_FILE for entry in listed):
        return None
    folder = scratch / ref.replace("/", "_") / name
    folder.mkdir(parents=True, exist_ok=True)
    for file_name in (SPEC_FILE, TEMPLATE_FILE):
        text = _git(prompts_dir, "show", f"{ref}:./{name}/{file_name}")
        (folder / file_name).write_text(text, encoding="utf-8")
    return load_prompt_folder(folder)
