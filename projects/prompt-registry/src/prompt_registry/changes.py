"""Which prompts a change touches, and the prompt files (golden set included) and scorer code as
they were at a git commit (the gate's production version when no registry is configured).
Read-only git commands only."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

from prompt_registry import evalconfig
from prompt_registry.errors import PromptRegistryError
from prompt_registry.golden import FRESHQA_STABLE
from prompt_registry.prompts import SPEC_FILE, TEMPLATE_FILE, PromptFolder, load_prompt_folder


def _git(prompts_dir: Path, *args: str, check: bool = True) -> str | None:
    try:
        result = subprocess.run(
            ["git", "-C", str(prompts_dir), *args], capture_output=True, text=True, check=False
        )
    except FileNotFoundError:
        raise PromptRegistryError(
            "git is not installed: it is needed to compare with a commit"
        ) from None
    if result.returncode != 0:
        if not check:
            return None
        reason = (result.stderr.strip().splitlines() or ["unknown error"])[-1]
        raise PromptRegistryError(f"git {' '.join(args[:2])} failed in {prompts_dir}: {reason}")
    return result.stdout


def changed_prompts(prompts_dir: Path, ref: str) -> list[str]:
    """Prompt folders with a file that differs from ``ref`` (committed, staged, working tree or
    untracked); folders deleted since ``ref`` are left out (nothing to evaluate)."""
    changed = git_lines(prompts_dir, "diff", "--name-only", "--relative", ref, "--", ".")
    changed += git_lines(prompts_dir, "ls-files", "--others", "--exclude-standard", "--", ".")
    names = {Path(path).parts[0] for path in changed if len(Path(path).parts) > 1}
    return sorted(name for name in names if (prompts_dir / name / SPEC_FILE).is_file())


def git_lines(prompts_dir: Path, *args: str) -> list[str]:
    return (_git(prompts_dir, *args) or "").splitlines()


def scorer_code_at(prompts_dir: Path, ref: str) -> str | None:
    """sha256 of scorers.py at ``ref`` when the prompts folder sits beside a copy of the running
    scorer code in a git work tree (the shipped package's folder, as in CI, where the code itself
    may run from a PEX); else None."""
    code = evalconfig.SCORER_CODE
    beside = prompts_dir.resolve().parent / code.name
    if not beside.is_file() or beside.read_bytes() != code.read_bytes():
        return None
    text = _git(prompts_dir, "show", f"{ref}:./../{code.name}", check=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest() if text is not None else None


def prompt_at(prompts_dir: Path, name: str, ref: str, scratch: Path) -> PromptFolder | None:
    """The prompt folder as it was at ``ref`` (written under ``scratch``, its golden set
    included), or None when the prompt did not exist there. Its eval config records the scorer
    code at ``ref`` where that can be read (:func:`scorer_code_at`)."""
    listed = git_lines(prompts_dir, "ls-tree", "-r", "--name-only", ref, f"./{name}/")
    if not any(Path(entry).name == SPEC_FILE for entry in listed):
        return None
    folder = scratch / ref.replace("/", "_") / name
    folder.mkdir(parents=True, exist_ok=True)
    for file_name in (SPEC_FILE, TEMPLATE_FILE):
        (folder / file_name).write_text(_show(prompts_dir, ref, name, file_name), encoding="utf-8")
    loaded = load_prompt_folder(folder)
    golden = loaded.spec.eval.golden
    if golden != FRESHQA_STABLE:
        (folder / golden).parent.mkdir(parents=True, exist_ok=True)
        (folder / golden).write_text(_show(prompts_dir, ref, name, golden), encoding="utf-8")
    return loaded


def _show(prompts_dir: Path, ref: str, name: str, file_name: str) -> str:
    return _git(prompts_dir, "show", f"{ref}:./{name}/{file_name}") or ""
