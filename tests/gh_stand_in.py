"""A recording stand-in for GitHub's CLI `gh`, for workflows run by act (tests/act_runner.py).

It answers the few calls our workflows make, with the state GitHub would keep in a folder
(GH_STAND_IN_DIR): pull request comments (`gh pr comment`, and `gh api` on
repos/OWNER/REPO/issues/N/comments and repos/OWNER/REPO/issues/comments/ID), and workflow runs
(`gh run list`: none; `gh run download`: nothing to download). Every call is appended to
calls.jsonl. Like gh in a workflow, it refuses to work without GH_TOKEN. `--jq` goes to jq.
Anything else exits 2 naming the call, so that a workflow using more of gh fails loudly.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

BOT = {"login": "github-actions[bot]", "type": "Bot"}
ISSUE_COMMENTS = re.compile(r"^/?repos/(?P<repo>[^/]+/[^/]+)/issues/(?P<number>\d+)/comments$")
ONE_COMMENT = re.compile(r"^/?repos/(?P<repo>[^/]+/[^/]+)/issues/comments/(?P<id>\d+)$")


class Unsupported(Exception):
    pass


def state_dir() -> Path:
    folder = Path(os.environ["GH_STAND_IN_DIR"])
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def load_comments() -> list[dict[str, Any]]:
    path = state_dir() / "comments.json"
    return json.loads(path.read_text()) if path.is_file() else []


def save_comments(comments: list[dict[str, Any]]) -> None:
    path = state_dir() / "comments.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(comments, indent=2))
    tmp.replace(path)


def new_comment(repo: str, number: int, body: str) -> dict[str, Any]:
    comments = load_comments()
    comment_id = 1000 + len(comments) + 1
    comment = {
        "id": comment_id,
        "repo": repo,
        "issue": number,
        "body": body,
        "user": BOT,
        "html_url": f"https://github.invalid/{repo}/pull/{number}#issuecomment-{comment_id}",
        "edits": 0,
    }
    save_comments([*comments, comment])
    return comment


def option_values(args: list[str], *names: str) -> list[str]:
    values = []
    for index, arg in enumerate(args):
        for name in names:
            if arg == name and index + 1 < len(args):
                values.append(args[index + 1])
            elif arg.startswith(f"{name}="):
                values.append(arg.split("=", 1)[1])
    return values


def positional(args: list[str], with_value: set[str]) -> list[str]:
    found, skip = [], False
    for arg in args:
        if skip:
            skip = False
        elif arg in with_value:
            skip = True
        elif not arg.startswith("-"):
            found.append(arg)
    return found


def field_value(raw: str) -> str:
    return Path(raw[1:]).read_text() if raw.startswith("@") else raw


def api(args: list[str]) -> Any:
    with_value = {"--method", "-X", "--jq", "-q", "-F", "--field", "-f", "--raw-field", "-H"}
    (path,) = positional(args, with_value)
    method = (option_values(args, "--method", "-X") or ["GET"])[0].upper()
    fields = dict(
        field.split("=", 1) for field in option_values(args, "-F", "--field", "-f", "--raw-field")
    )
    if match := ISSUE_COMMENTS.match(path):
        repo, number = match["repo"], int(match["number"])
        if method == "GET":
            return [c for c in load_comments() if c["repo"] == repo and c["issue"] == number]
        if method == "POST":
            return new_comment(repo, number, field_value(fields["body"]))
    if (match := ONE_COMMENT.match(path)) and method == "PATCH":
        comments = load_comments()
        for comment in comments:
            if comment["repo"] == match["repo"] and comment["id"] == int(match["id"]):
                comment["body"] = field_value(fields["body"])
                comment["edits"] += 1
                save_comments(comments)
                return comment
        raise Unsupported(f"no comment {match['id']} (GitHub answers 404)")
    raise Unsupported(f"api {method} {path}")


def pr_comment(args: list[str]) -> str:
    (number,) = positional(args, {"--repo", "-R", "--body-file", "-F", "--body", "-b"})
    (repo,) = option_values(args, "--repo", "-R")
    bodies = option_values(args, "--body", "-b")
    body = bodies[0] if bodies else Path(option_values(args, "--body-file", "-F")[0]).read_text()
    return str(new_comment(repo, int(number), body)["html_url"])


def run(args: list[str]) -> Any:
    if args[:2] == ["pr", "comment"]:
        return pr_comment(args[2:])
    if args[:1] == ["api"]:
        return api(args[1:])
    if args[:2] == ["run", "list"]:
        return []  # no earlier runs of any workflow
    if args[:2] == ["run", "download"]:
        print("gh stand-in: no artifact to download", file=sys.stderr)
        raise SystemExit(1)
    raise Unsupported(" ".join(args[:2]))


def main(args: list[str]) -> int:
    with (state_dir() / "calls.jsonl").open("a") as log:
        log.write(json.dumps({"args": args, "token": bool(os.environ.get("GH_TOKEN"))}) + "\n")
    if not os.environ.get("GH_TOKEN"):
        print("gh: set the GH_TOKEN environment variable to use GitHub CLI in a workflow",
              file=sys.stderr)
        return 4
    try:
        result = run(args)
    except Unsupported as error:
        print(f"gh stand-in: unsupported: {error}", file=sys.stderr)
        return 2
    jq = option_values(args, "--jq", "-q")
    if jq:
        done = subprocess.run(["jq", "-r", jq[0]], input=json.dumps(result), text=True, check=False)
        return done.returncode
    print(result if isinstance(result, str) else json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
