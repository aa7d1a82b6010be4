"""``--json`` on every command that prints data: stdout is exactly one JSON object whose
fields docs/cli.md documents. Commands needing a chain are checked beside their other
tests (tests/cli/test_committee.py, tests/cli/test_deploy.py); here, the local ones and a
walk that finds any data-printing command without --json."""

from __future__ import annotations

import json
from pathlib import Path

import click
from click.testing import CliRunner, Result

from oracle.cli.main import cli
from oracle.storage import head_revision

PASS = "correct horse battery staple"
DOCS = Path(__file__).resolve().parents[2] / "docs" / "cli.md"

# Commands that print no data of their own: a service that logs, and `devnet up` prints
# its manifest with --json (checked in tests/devnet).
NO_DATA = {("node", "run")}


def walk(
    group: click.Group, path: tuple[str, ...] = ()
) -> list[tuple[tuple[str, ...], click.Command]]:
    found = []
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            found += walk(command, (*path, name))
        else:
            found.append(((*path, name), command))
    return found


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), env={"MIRA_KEY_PASSPHRASE": PASS})


def one_object(result: Result) -> dict[str, object]:
    assert result.exit_code == 0, result.output
    value = json.loads(result.stdout)
    assert isinstance(value, dict)
    return value


def test_every_command_that_prints_data_has_json_and_is_documented() -> None:
    documented = DOCS.read_text()
    for path, command in walk(cli):
        if path in NO_DATA:
            continue
        names = {o for p in command.params for o in getattr(p, "opts", [])}
        assert "--json" in names, f"mira {' '.join(path)} has no --json"
        assert f"`mira {' '.join(path)}" in documented, f"docs/cli.md lacks mira {' '.join(path)}"


def test_keys_verbs(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    created = one_object(run("keys", "new", "--dir", str(keys), "--json"))
    assert set(created) == {"operator", "identity", "dir"}
    shown = one_object(run("keys", "show", "--dir", str(keys), "--json"))
    assert shown["operator"] == created["operator"] and shown["identity"] == created["identity"]
    out = tmp_path / "operator.json"
    exported = one_object(
        run("keys", "export", "--dir", str(keys), "--kind", "operator", "--out", str(out), "--json")
    )
    assert exported == {"kind": "operator", "public": created["operator"], "file": str(out)}
    other = tmp_path / "other"
    imported = one_object(run("keys", "import", str(out), "--dir", str(other), "--json"))
    assert imported == {"kind": "operator", "public": created["operator"], "dir": str(other)}


def test_db_verbs(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'node.sqlite'}"
    before = one_object(run("db", "current", "--database-url", url, "--json"))
    assert before == {"database": url, "revision": None, "head": head_revision()}
    upgraded = one_object(run("db", "upgrade", "--database-url", url, "--json"))
    assert upgraded == {"database": url, "revision": head_revision(), "head": head_revision()}


def test_devnet_down_when_nothing_runs(tmp_path: Path) -> None:
    result = one_object(run("devnet", "down", "--dir", str(tmp_path), "--json"))
    assert result == {
        "dir": str(tmp_path),
        "launcher_pid": None,
        "leftovers": [],
        "message": f"no devnet is running in {tmp_path}",
    }
