import json
import os
import re
import stat
import sys
import time
from pathlib import Path

from roadmap_showcase.cli import main
from roadmap_showcase.runner import pants_package_plan
from showcase_fixtures import good_results_script, python_command, write_registry


def card(html: str, name: str) -> str:
    match = re.search(
        rf'<article class="card project (\w+)" id="{name}">(.*?)</article>', html, re.S
    )
    assert match, f"no card for {name}"
    return match.group(1) + match.group(2)


def run_showcase(root: Path, entries: list[dict], *extra: str) -> tuple[int, Path]:
    registry = write_registry(root, entries)
    code = main(["--registry", str(registry), "--dist", str(root / "dist"), *extra])
    return code, root / "dist" / "showcase"


def test_mixed_run_fails_and_reports_each_project(mixed_showcase, png):
    exit_code, showcase = mixed_showcase
    assert exit_code == 1

    summary = json.loads((showcase / "summary.json").read_text())
    statuses = {project["name"]: project["status"] for project in summary["projects"]}
    assert statuses == {"good": "ok", "crash": "failed", "badjson": "failed", "slow": "failed"}
    reasons = {project["name"]: project["reason"] for project in summary["projects"]}
    assert reasons["good"] is None
    assert reasons["crash"] == "demo exited with code 1"
    assert reasons["badjson"].startswith("results file is not valid JSON")
    assert reasons["slow"] == "demo timed out after 1 s"
    assert (summary["ok"], summary["failed"]) == (1, 1 + 2)
    good = next(project for project in summary["projects"] if project["name"] == "good")
    assert good["headline"][0]["value"] == 780.4
    assert not list(showcase.glob(".*.tmp"))

    html = (showcase / "index.html").read_text()
    assert "Roadmap Lab showcase" in html
    assert (
        '<span class="pill ok">1 ok</span>' in html
        and '<span class="pill failed">3 failed</span>' in html
    )
    assert card(html, "good").startswith("ok") and '<span class="badge ok">ok</span>' in card(
        html, "good"
    )
    for name in ("crash", "badjson", "slow"):
        assert card(html, name).startswith("failed")
        assert '<span class="badge failed">failed</span>' in card(html, name)

    # The plot is copied next to the report and referenced relatively.
    assert (showcase / "good" / "plots" / "curve.png").read_bytes() == png
    assert '<img src="good/plots/curve.png"' in html
    # So is a page the demo wrote, linked from its card.
    assert (showcase / "good" / "pages" / "answers.html").read_text() == "<p>base vs adapter</p>"
    assert '<a class="page" href="good/pages/answers.html">answers.html</a>' in card(html, "good")
    assert json.loads((showcase / "good" / "results.json").read_text())["project"] == "good"

    # Everything from the registry and the results is escaped.
    assert "Good &amp; &lt;fast&gt; project" in html and "<fast>" not in html
    assert "throughput &lt;tokens&gt;" in html

    good_card = card(html, "good")
    assert "780.4 tok/s" in good_card and "23.5 tok/s" in good_card
    assert good_card.count("✓ met") == 2 and good_card.count("✗ missed") == 1
    assert "? unverified" in good_card  # a figure without an interval earns no verdict
    assert "invalid" in good_card and "better than before" in good_card
    assert "2/5 met" in html
    assert "Test CPU" in html  # the machine comes from the first results

    # Failures show the reason and the end of the log, not its beginning.
    crash_card = card(html, "crash")
    assert "demo exited with code 1" in crash_card
    assert (
        "boom: something broke" in crash_card
        and "line 59" in crash_card
        and "line 5\n" not in crash_card
    )
    assert "starting the long part" in card(html, "slow")
    assert "killed after the 1 s timeout" in (showcase / "logs" / "slow.log").read_text()
    assert "training step 3/3" in (showcase / "logs" / "good.log").read_text()


def test_all_ok_registry_exits_zero(tmp_path, png):
    entries = [
        {"name": "one", "title": "One", "command": python_command(good_results_script("one", png))},
        {"name": "two", "title": "Two", "command": python_command(good_results_script("two"))},
    ]
    code, showcase = run_showcase(tmp_path, entries)
    assert code == 0
    summary = json.loads((showcase / "summary.json").read_text())
    assert [p["status"] for p in summary["projects"]] == ["ok", "ok"]
    assert "0 failed" in (showcase / "index.html").read_text()


def test_empty_registry_renders_a_page_saying_so(tmp_path):
    (tmp_path / "showcase.toml").write_text("# nothing yet\n")
    code = main(["--registry", str(tmp_path / "showcase.toml"), "--dist", str(tmp_path / "dist")])
    assert code == 0
    html = (tmp_path / "dist" / "showcase" / "index.html").read_text()
    assert "No projects are registered" in html
    assert (
        json.loads((tmp_path / "dist" / "showcase" / "summary.json").read_text())["projects"] == []
    )


def test_results_that_break_the_schema_fail_with_a_reason(tmp_path):
    def writes(name: str, results: object) -> dict:
        code = f"""
import json, pathlib
p = pathlib.Path("dist/{name}"); p.mkdir(parents=True, exist_ok=True)
(p / "results.json").write_text(json.dumps({results!r}))
"""
        return {"name": name, "title": name, "command": python_command(code)}

    entries = [
        writes("nohead", {"project": "nohead"}),
        writes("other", {"project": "someone-else", "headline": []}),
        writes("noplot", {"project": "noplot", "headline": [], "plots": ["missing.png"]}),
        writes("escape", {"project": "escape", "headline": [], "plots": ["../../etc/passwd"]}),
        writes("nopage", {"project": "nopage", "headline": [], "pages": ["answers.html"]}),
        writes("reported", {"project": "reported", "status": "failed", "headline": []}),
        {"name": "silent", "title": "silent", "command": python_command("pass")},
        {"name": "stale", "title": "stale", "command": python_command("pass")},
    ]
    stale = tmp_path / "dist" / "stale" / "results.json"
    stale.parent.mkdir(parents=True)
    stale.write_text(json.dumps({"project": "stale", "headline": []}))
    old = time.time() - 3600
    os.utime(stale, (old, old))

    code, showcase = run_showcase(tmp_path, entries)
    assert code == 1
    reasons = {
        p["name"]: p["reason"]
        for p in json.loads((showcase / "summary.json").read_text())["projects"]
    }
    assert reasons["nohead"].startswith("results file lacks required key(s) headline")
    assert reasons["other"].startswith(
        "results file is for project 'someone-else', expected 'other'"
    )
    assert reasons["noplot"].startswith("plot listed in results is missing")
    assert reasons["escape"].startswith("plot path must be relative to the results folder")
    assert reasons["nopage"].startswith("page listed in results is missing")
    assert reasons["reported"] == "demo reported status 'failed'"
    assert reasons["silent"].startswith("results file not written")
    assert reasons["stale"].startswith("results file is stale")


def test_only_runs_the_named_projects(tmp_path):
    entries = [
        {"name": "one", "title": "One", "command": python_command(good_results_script("one"))},
        {"name": "two", "title": "Two", "command": python_command("import sys; sys.exit(3)")},
    ]
    code, showcase = run_showcase(tmp_path, entries, "--only", "one")
    assert code == 0
    assert [p["name"] for p in json.loads((showcase / "summary.json").read_text())["projects"]] == [
        "one"
    ]
    assert main(["--registry", str(tmp_path / "showcase.toml"), "--only", "nope"]) == 2


def test_invalid_registry_exits_2_with_one_line(tmp_path, capsys):
    (tmp_path / "showcase.toml").write_text('[[project]]\nname = "a"\n')
    assert (
        main(["--registry", str(tmp_path / "showcase.toml"), "--dist", str(tmp_path / "dist")]) == 2
    )
    err = capsys.readouterr().err.strip()
    assert (
        err
        == "error: "
        + str(tmp_path / "showcase.toml")
        + ": project #1 ('a'): missing required key 'title'"
    )
    assert not (tmp_path / "dist").exists()


def test_pex_path_follows_pants_layout(tmp_path):
    argv, pex_paths = pants_package_plan(
        "./pants", ["projects/foo:cli", "projects/a/b:demo"], tmp_path
    )
    assert argv == [
        "./pants",
        "--no-pantsd",
        "--concurrent",
        "package",
        "projects/foo:cli",
        "projects/a/b:demo",
    ]
    assert pex_paths == {
        "projects/foo:cli": tmp_path / "dist" / "projects.foo" / "cli.pex",
        "projects/a/b:demo": tmp_path / "dist" / "projects.a.b" / "demo.pex",
    }


FAKE_PANTS = """#!{python}
# Stands in for ./pants: records its argv; "packages" each address into an executable PEX
# stand-in that writes results; fails the whole call when it includes projects/broken:cli.
import json, pathlib, sys
pathlib.Path("pants-calls.jsonl").open("a").write(json.dumps(sys.argv[1:]) + "\\n")
addresses = sys.argv[sys.argv.index("package") + 1:]
if "projects/broken:cli" in addresses:
    print("error: projects/broken failed to build")
    sys.exit(1)
for address in addresses:
    folder, target = address.split(":")
    name = folder.split("/")[-1]
    pex = pathlib.Path("dist") / folder.replace("/", ".") / (target + ".pex")
    pex.parent.mkdir(parents=True, exist_ok=True)
    pex.write_text(
        "#!{python}\\n"
        "import json, pathlib, sys\\n"
        "runs = pathlib.Path('pex-runs.jsonl').open('a')\\n"
        f"runs.write(json.dumps(['{{address}}', sys.argv[1:]]) + '\\\\n'); runs.close()\\n"
        f"sys.exit(3) if '{{target}}' == 'failprep' else None\\n"
        f"out = pathlib.Path('dist/{{name}}'); out.mkdir(parents=True, exist_ok=True)\\n"
        "results = {{'project': out.name, 'headline': [], 'args': sys.argv[1:]}}\\n"
        "(out / 'results.json').write_text(json.dumps(results))\\n"
    )
    pex.chmod(0o755)
"""


def fake_pants(root: Path) -> Path:
    script = root / "fake-pants"
    script.write_text(FAKE_PANTS.format(python=sys.executable))
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return script


def test_pants_demos_are_built_in_one_call_then_run_as_pexes(tmp_path):
    pants = fake_pants(tmp_path)
    entries = [
        {
            "name": "alpha",
            "title": "Alpha",
            "demo": "projects/alpha:cli",
            "args": ["demo", "--fast"],
        },
        {"name": "beta", "title": "Beta", "demo": "projects/beta:cli"},
        {
            "name": "gamma",
            "title": "Gamma",
            "command": python_command(good_results_script("gamma")),
        },
    ]
    code, showcase = run_showcase(tmp_path, entries, "--pants", str(pants))
    assert code == 0
    calls = [json.loads(line) for line in (tmp_path / "pants-calls.jsonl").read_text().splitlines()]
    assert calls == [
        ["--no-pantsd", "--concurrent", "package", "projects/alpha:cli", "projects/beta:cli"]
    ]
    alpha = json.loads((showcase / "alpha" / "results.json").read_text())
    assert alpha["args"] == ["demo", "--fast"]
    summary = json.loads((showcase / "summary.json").read_text())
    assert summary["build"]["ok"] is True


def test_a_broken_build_fails_only_its_project(tmp_path):
    pants = fake_pants(tmp_path)
    entries = [
        {"name": "alpha", "title": "Alpha", "demo": "projects/alpha:cli"},
        {"name": "broken", "title": "Broken", "demo": "projects/broken:cli"},
    ]
    code, showcase = run_showcase(tmp_path, entries, "--pants", str(pants))
    assert code == 1
    calls = [
        json.loads(line)[3:] for line in (tmp_path / "pants-calls.jsonl").read_text().splitlines()
    ]
    assert calls == [
        ["projects/alpha:cli", "projects/broken:cli"],
        ["projects/alpha:cli"],
        ["projects/broken:cli"],
    ]
    projects = {
        p["name"]: p for p in json.loads((showcase / "summary.json").read_text())["projects"]
    }
    assert projects["alpha"]["status"] == "ok"
    assert projects["broken"]["reason"] == "pants package exited with code 1"
    html = (showcase / "index.html").read_text()
    assert "projects/broken failed to build" in card(html, "broken")


def test_missing_pants_fails_its_projects_with_a_reason(tmp_path):
    entries = [{"name": "alpha", "title": "Alpha", "demo": "projects/alpha:cli"}]
    code, showcase = run_showcase(tmp_path, entries, "--pants", str(tmp_path / "no-such-pants"))
    assert code == 1
    reason = json.loads((showcase / "summary.json").read_text())["projects"][0]["reason"]
    assert reason.startswith("cannot start") and "no-such-pants" in reason


def test_a_child_left_running_does_not_hang_the_showcase(tmp_path):
    code = good_results_script("daemon") + (
        "\nimport subprocess, sys"
        # An hour: a showcase that waited for it would run into the test's timeout.
        "\nsubprocess.Popen([sys.executable, '-c', 'import time; time.sleep(3600)'])"
    )
    exit_code, showcase = run_showcase(
        tmp_path, [{"name": "daemon", "title": "D", "command": python_command(code)}]
    )
    assert exit_code == 0
    assert "done" in (showcase / "logs" / "daemon.log").read_text()


def test_progress_bar_redraws_show_their_final_state_in_the_log_tail(tmp_path):
    code = "import sys\nfor i in range(5): sys.stdout.write(f'\\rstep {i}/4')\nprint()\nsys.exit(2)"
    entries = [{"name": "bar", "title": "Bar", "command": python_command(code)}]
    exit_code, showcase = run_showcase(tmp_path, entries)
    assert exit_code == 1
    html = (showcase / "index.html").read_text()
    assert "step 4/4" in card(html, "bar") and "step 3/4" not in card(html, "bar")


def test_a_prepare_step_is_built_with_the_demos_and_runs_first(tmp_path):
    pants = fake_pants(tmp_path)
    entries = [
        {
            "name": "alpha",
            "title": "Alpha",
            "demo": "projects/alpha:cli",
            "args": ["demo"],
            "prepare": "projects/alpha:prep",
            "prepare_args": ["--scheme", "x"],
        }
    ]
    code, showcase = run_showcase(tmp_path, entries, "--pants", str(pants))
    assert code == 0
    calls = [json.loads(line) for line in (tmp_path / "pants-calls.jsonl").read_text().splitlines()]
    assert calls == [
        ["--no-pantsd", "--concurrent", "package", "projects/alpha:prep", "projects/alpha:cli"]
    ]
    runs = [json.loads(line) for line in (tmp_path / "pex-runs.jsonl").read_text().splitlines()]
    assert runs == [["projects/alpha:prep", ["--scheme", "x"]], ["projects/alpha:cli", ["demo"]]]


def test_a_failing_prepare_step_fails_its_project_without_running_the_demo(tmp_path):
    pants = fake_pants(tmp_path)
    entries = [
        {
            "name": "alpha",
            "title": "Alpha",
            "demo": "projects/alpha:cli",
            "prepare": "projects/alpha:failprep",
        },
        {"name": "beta", "title": "Beta", "demo": "projects/beta:cli"},
    ]
    code, showcase = run_showcase(tmp_path, entries, "--pants", str(pants))
    assert code == 1
    projects = {
        p["name"]: p for p in json.loads((showcase / "summary.json").read_text())["projects"]
    }
    assert projects["alpha"]["status"] == "failed"
    assert projects["alpha"]["reason"] == "prepare step exited with code 3"
    assert projects["beta"]["status"] == "ok"
    runs = [json.loads(line)[0] for line in (tmp_path / "pex-runs.jsonl").read_text().splitlines()]
    assert runs == ["projects/alpha:failprep", "projects/beta:cli"]


def _fake_installer(root: Path, exit_code: int) -> Path:
    script = root / "build-support" / "install-system-packages.sh"
    script.parent.mkdir(parents=True)
    calls = root / "installer-calls.txt"
    script.write_text(f'echo "$@" >> {calls}\nexit {exit_code}\n')
    return calls


def test_system_packages_of_the_registered_projects_are_installed_first(tmp_path):
    calls = _fake_installer(tmp_path, 0)
    entries = [
        {"name": "alpha", "title": "A", "command": python_command(good_results_script("alpha"))},
        {"name": "beta", "title": "B", "command": python_command(good_results_script("beta"))},
    ]
    assert run_showcase(tmp_path, entries)[0] == 0
    assert calls.read_text() == "alpha beta\n"
    assert run_showcase(tmp_path, entries, "--only", "beta")[0] == 0
    assert calls.read_text().splitlines()[-1] == "beta"
    assert run_showcase(tmp_path, entries, "--no-system-packages")[0] == 0
    assert len(calls.read_text().splitlines()) == 2


def test_a_failed_install_stops_before_any_demo_runs(tmp_path, capsys):
    _fake_installer(tmp_path, 1)
    entries = [{"name": "alpha", "title": "A", "command": python_command("raise SystemExit(0)")}]
    code, showcase = run_showcase(tmp_path, entries)
    assert code == 2
    assert "could not install the Debian packages" in capsys.readouterr().err
    assert not (showcase / "logs" / "alpha.log").exists()


def test_the_packages_a_demo_runs_are_built_with_the_demos(tmp_path):
    pants = fake_pants(tmp_path)
    entries = [
        {
            "name": "loop",
            "title": "Loop",
            "demo": "loops/loop:cli",
            "packages": ["projects/alpha:cli"],
        }
    ]
    code, _ = run_showcase(tmp_path, entries, "--pants", str(pants))
    assert code == 0
    calls = [json.loads(line) for line in (tmp_path / "pants-calls.jsonl").read_text().splitlines()]
    assert calls == [
        ["--no-pantsd", "--concurrent", "package", "loops/loop:cli", "projects/alpha:cli"]
    ]
    runs = [json.loads(line) for line in (tmp_path / "pex-runs.jsonl").read_text().splitlines()]
    assert runs == [["loops/loop:cli", []]]
