"""`python -m roadmap_showcase`: run every registered project's demo and render the report."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from roadmap_showcase.registry import RegistryError, load_registry
from roadmap_showcase.report import write_outputs
from roadmap_showcase.runner import Showcase

# Installs the Debian packages the named projects need (build-support/system-packages.txt).
SYSTEM_PACKAGES_INSTALLER = Path("build-support") / "install-system-packages.sh"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="roadmap-showcase",
        description="Run each registered project's demo and render dist/showcase/index.html.",
    )
    parser.add_argument(
        "--registry",
        type=Path,
        default=Path("showcase.toml"),
        help="project registry; its folder is the repo root (default: ./showcase.toml)",
    )
    parser.add_argument(
        "--dist",
        type=Path,
        default=Path("dist"),
        help="output folder; the report goes to DIST/showcase (default: dist)",
    )
    parser.add_argument(
        "--only",
        action="append",
        metavar="NAME",
        default=[],
        help="run only this project (repeatable)",
    )
    parser.add_argument(
        "--pants",
        default="./pants",
        metavar="CMD",
        help="Pants launcher used to build the demos (default: ./pants)",
    )
    parser.add_argument(
        "--build-timeout",
        type=float,
        default=3600.0,
        metavar="SECONDS",
        help="limit for the Pants build of all demos (default: 3600)",
    )
    parser.add_argument(
        "--no-system-packages",
        dest="system_packages",
        action="store_false",
        help="skip installing the Debian packages the demos need (system-packages.txt)",
    )
    return parser.parse_args(argv)


def install_system_packages(root: Path, names: list[str]) -> bool:
    """Run the repo's installer for the projects' Debian packages; False when it failed.

    A registry outside a checkout (no installer under its root) has nothing to install."""
    installer = root / SYSTEM_PACKAGES_INSTALLER
    if not names or not installer.is_file():
        return True
    return subprocess.run(["bash", str(installer), *names], cwd=root, check=False).returncode == 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    console = Console(stderr=True, highlight=False)
    try:
        projects = load_registry(args.registry)
    except RegistryError as error:
        console.print(f"[red]error:[/] {escape(str(error))}", soft_wrap=True, highlight=False)
        return 2

    if args.only:
        known = {project.name for project in projects}
        unknown = [name for name in args.only if name not in known]
        if unknown:
            choices = ", ".join(sorted(known)) or "none registered"
            console.print(
                f"[red]error:[/] unknown project(s) {escape(', '.join(unknown))} "
                f"(registered: {choices})",
                soft_wrap=True,
                highlight=False,
            )
            return 2
        projects = [project for project in projects if project.name in args.only]

    root = args.registry.resolve().parent
    folders = [folder for project in projects for folder in project.folders]
    if args.system_packages and not install_system_packages(root, list(dict.fromkeys(folders))):
        console.print(
            f"[red]error:[/] could not install the Debian packages the demos need "
            f"({escape(str(SYSTEM_PACKAGES_INSTALLER))} exited non-zero; see its message above)",
            soft_wrap=True,
            highlight=False,
        )
        return 2

    showcase = Showcase(
        root=root,
        dist=args.dist,
        pants=args.pants,
        console=console,
        build_timeout_s=args.build_timeout,
    )
    run = showcase.run(projects)
    page = write_outputs(run, showcase.showcase_dir, registry_name=args.registry.name)

    failed = len(run.failed)
    if not projects:
        console.print(
            f"No projects are registered in {escape(str(args.registry))}; "
            f"wrote {escape(str(page))}",
            soft_wrap=True,
        )
    else:
        style = "red" if failed else "green"
        console.print(
            f"[{style}]{len(projects) - failed} ok, {failed} failed[/] · "
            f"report: {escape(str(page))}",
            soft_wrap=True,
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
