"""The ``rota`` CLI without a server: help, argument parsing, config file, network failures, exit codes."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import click
import pytest

from rota import config
from rota.cli import cli
from rota.errors import ExitCode
from tests.client.conftest import Rota


def leaf_commands(group: click.Group, prefix: str = "") -> dict[str, click.Command]:
    found: dict[str, click.Command] = {}
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            found.update(leaf_commands(command, f"{prefix}{name} "))
        else:
            found[f"{prefix}{name}"] = command
    return found


# ---- help ------------------------------------------------------------------------------------


def test_top_level_help_lists_commands_and_first_steps(rota: Rota) -> None:
    out = rota("--help").stdout
    for name in ["login", "logout", "submit", "list", "status", "logs", "stop", "suspend", "resume", "tag"]:
        assert f"\n  {name} " in out
    for name in ["nodes", "quota", "whoami", "tokens", "completion"]:
        assert f"\n  {name} " in out
    assert "rota submit train.py --lr 3e-4 -- -n 2 -g training -p HIGH" in out
    assert "rota logs train -f" in out and "rota stop train" in out
    assert out.index("login") < out.index("submit") < out.index("logs")  # a useful order, not alphabetical
    assert rota().stdout == out  # no command: the help, exit 0


@pytest.mark.parametrize("name", sorted(leaf_commands(cli)))
def test_every_command_has_help_with_examples_and_json(rota: Rota, name: str) -> None:
    out = rota(*name.split(), "--help").stdout
    assert "Examples:" in out
    if name != "completion":
        assert "--json" in out


def test_logs_help_documents_the_exit_codes(rota: Rota) -> None:
    out = rota("logs", "--help").stdout
    assert "Exit codes:" in out
    for code, words in [(0, "succeeded"), (1, "failed"), (2, "stopped or canceled"), (3, "suspended"), (6, "reached")]:
        line = next(line for line in out.splitlines() if line.strip().startswith(f"{code} "))
        assert words in line
    assert "64" in out and "130" in out


def test_version(rota: Rota) -> None:
    from rota import __version__

    assert rota("--version").stdout.strip() == f"rota, version {__version__}"


def test_hai_style_aliases_are_hidden_but_work(rota: Rota, tmp_path: Path) -> None:
    (tmp_path / "run.sh").write_text("echo hi\n")
    assert "\n  python " not in rota("--help").stdout
    body = rota.json("bash", str(tmp_path / "run.sh"), "x", "--", "-g", "training", "--dry-run")
    assert (body["kind"], body["entrypoint"], body["parameters"]) == ("bash", "run.sh", ["x"])


# ---- submit parsing --------------------------------------------------------------------------


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    root.mkdir()
    (root / "train.py").write_text("print('hi')\n")
    (root / "run.sh").write_text("echo hi\n")
    tool = root / "bench"
    tool.write_text("#!/bin/sh\necho bench\n")
    tool.chmod(0o755)
    return root


def test_submit_script_args_before_double_dash_platform_options_after(rota: Rota, project: Path) -> None:
    body = rota.json(
        "submit",
        str(project / "train.py"),
        "--lr",
        "3e-4",
        "-n",
        "7",  # the script's own -n, not Rota's
        "--",
        "-n",
        "2",
        "-g",
        "training",
        "-p",
        "high",
        "-i",
        "pytorch",
        "-e",
        "A=1",
        "-e",
        "B=x=y",
        "--name",
        "run-1",
        "-t",
        "sweep",
        "--watchdog",
        "120",
        "--estimate",
        "1d 6h30m",
        "--share",
        "--dry-run",
    )
    assert body == {
        "name": "run-1",
        "workspace": str(project),
        "entrypoint": "train.py",
        "kind": "python",
        "parameters": ["--lr", "3e-4", "-n", "7"],
        "env_vars": {"A": "1", "B": "x=y"},
        "group": "training",
        "nodes": 2,
        "priority": "HIGH",
        "environment": "pytorch",
        "tags": ["sweep"],
        "watchdog_seconds": 120,
        "run_estimate_seconds": 86400 + 6 * 3600 + 30 * 60,
        "shared_with_team": True,
    }


def test_submit_options_may_also_come_before_the_script(rota: Rota, project: Path, monkeypatch) -> None:
    monkeypatch.chdir(project)
    result = rota("submit", "-n", "3", "-g", "training", "-p", "30", "--dry-run", "--json", "train.py", "--help", "-n")
    body = json.loads(result.stdout)
    # Everything after the script is the script's, even --help and -n.
    assert body["parameters"] == ["--help", "-n"]
    assert (body["nodes"], body["priority"], body["workspace"]) == (3, "HIGH", str(project))


def test_submit_detects_bash_and_executables_and_copies_env_from_the_shell(
    rota: Rota, project: Path, monkeypatch
) -> None:
    monkeypatch.setenv("WANDB_API_KEY", "secret-from-shell")
    bash = rota.json("submit", str(project / "run.sh"), "--", "-g", "training", "-e", "WANDB_API_KEY", "--dry-run")
    assert (bash["kind"], bash["entrypoint"], bash["name"]) == ("bash", "run.sh", "run")
    assert bash["env_vars"] == {"WANDB_API_KEY": "secret-from-shell"}
    exe = rota.json("submit", str(project / "bench"), "--", "-g", "training", "--dry-run")
    assert (exe["kind"], exe["entrypoint"], exe["workspace"]) == ("executable", "bench", str(project))
    monkeypatch.chdir(project)
    onpath = rota.json("submit", "nvidia-smi", "-L", "--", "-g", "training", "--dry-run")
    assert (onpath["kind"], onpath["entrypoint"], onpath["parameters"]) == ("executable", "nvidia-smi", ["-L"])


def test_submit_with_a_workspace_on_the_cluster_only(rota: Rota) -> None:
    body = rota.json("submit", "src/train.py", "--", "--workspace", "/cluster/me/proj", "-g", "g", "--dry-run")
    assert (body["workspace"], body["entrypoint"], body["name"]) == ("/cluster/me/proj", "src/train.py", "train")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-p", "URGENT"], "'URGENT' is not a priority"),
        (["-p", "31"], "is not a priority"),
        (["-n", "0"], "-n"),
        (["-e", "=1"], "expected NAME=VALUE"),
        (["-e", "NOT_SET_ANYWHERE_42"], "is not set here"),
        (["--bogus"], "No such option"),
        (["--watchdog", "5"], "--watchdog"),
        (["--estimate", "0"], "between 1 minute (60) and 30 days"),
        (["--estimate", "-5h"], "is not a duration"),
        (["--estimate", "31d"], "between 1 minute (60) and 30 days"),
        (["--estimate", "soon"], "'soon' is not a duration"),
    ],
)
def test_submit_usage_errors_exit_64_with_a_message(rota: Rota, project: Path, args: list[str], message: str) -> None:
    result = rota("submit", str(project / "train.py"), "--", "-g", "g", "--dry-run", *args, expect=ExitCode.USAGE)
    assert message in result.stderr
    assert result.stdout == ""


def test_submit_of_a_missing_file_is_a_usage_error(rota: Rota, tmp_path: Path) -> None:
    result = rota("submit", str(tmp_path / "nope.py"), "--", "-g", "g", expect=ExitCode.USAGE)
    assert "No such file" in result.stderr and "--workspace" in result.stderr


def test_unknown_command_exits_64(rota: Rota) -> None:
    result = rota("sumbit", expect=ExitCode.USAGE)
    assert "No such command" in result.stderr


# ---- configuration ---------------------------------------------------------------------------


def test_config_file_is_private_and_written_atomically(config_home: Path, monkeypatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(config_home))
    monkeypatch.delenv("ROTA_CONFIG", raising=False)
    path = config.save_login(url="http://h:1", token="rota_abcdefgh_" + "x" * 30, username="u", token_id=3, source="s")
    assert path == config_home / "rota" / "config.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert json.loads(path.read_text())["token_id"] == 3
    assert sorted(p.name for p in path.parent.iterdir()) == ["config.json"]  # no temp file left


def test_environment_overrides_the_config_file(config_home: Path, monkeypatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(config_home))
    monkeypatch.delenv("ROTA_CONFIG", raising=False)
    config.save_login(url="http://file:1", token="file-token", username="u", token_id=None, source="token")
    monkeypatch.delenv("ROTA_URL", raising=False)
    monkeypatch.delenv("ROTA_TOKEN", raising=False)
    loaded = config.load()
    assert (loaded.url, loaded.token, loaded.url_source, loaded.token_source) == (
        "http://file:1",
        "file-token",
        "file",
        "file",
    )
    monkeypatch.setenv("ROTA_URL", "127.0.0.1:9/api/v1/")
    monkeypatch.setenv("ROTA_TOKEN", "env-token")
    loaded = config.load()
    assert (loaded.url, loaded.token, loaded.url_source, loaded.token_source) == (
        "http://127.0.0.1:9",
        "env-token",
        "env",
        "env",
    )


def test_a_config_file_readable_by_others_is_warned_about(rota: Rota, config_home: Path, closed_port: int) -> None:
    path = config_home / "rota" / "config.json"
    path.parent.mkdir()
    path.write_text(json.dumps({"url": f"http://127.0.0.1:{closed_port}", "token": "t"}))
    os.chmod(path, 0o644)
    result = rota("whoami", expect=ExitCode.NETWORK)
    assert f"{path} is readable by other users" in result.stderr and "chmod 600" in result.stderr


def test_normalize_url() -> None:
    assert config.normalize_url("localhost:8000/") == "http://localhost:8000"
    assert config.normalize_url("rota.example.org") == "https://rota.example.org"
    assert config.normalize_url("https://rota.example.org/api/v1/") == "https://rota.example.org"


# ---- errors and exit codes -------------------------------------------------------------------


def test_not_logged_in_exits_5_and_says_what_to_do(rota: Rota) -> None:
    result = rota("list", expect=ExitCode.AUTH)
    assert "Not logged in" in result.stderr and "rota login" in result.stderr


def test_unreachable_server_is_retried_then_reported(rota: Rota, closed_port: int) -> None:
    url = f"http://127.0.0.1:{closed_port}"
    result = rota("list", env={"ROTA_URL": url, "ROTA_TOKEN": "rota_abcdefgh_" + "x" * 30}, expect=ExitCode.NETWORK)
    assert f"Cannot reach the Rota server at {url} (connection refused; tried 3 times)" in result.stderr
    assert result.stderr.count("retrying in") == 2  # ROTA_RETRIES=2
    assert result.stdout == ""


def test_unreachable_server_with_json_prints_an_error_object(rota: Rota, closed_port: int) -> None:
    env = {"ROTA_URL": f"http://127.0.0.1:{closed_port}", "ROTA_TOKEN": "t", "ROTA_RETRIES": "0"}
    body = rota.json("status", "42", env=env, expect=ExitCode.NETWORK)
    assert body["error"]["code"] == "network"
    assert "Cannot reach" in body["error"]["message"]


def test_login_to_an_unreachable_server(rota: Rota, closed_port: int) -> None:
    result = rota(
        "login", "--url", f"127.0.0.1:{closed_port}", "-u", "a", input="pw\n", env={"ROTA_RETRIES": "0"}, expect=6
    )
    assert "Cannot reach the Rota server" in result.stderr


# ---- completion ------------------------------------------------------------------------------


def test_completion_script_and_completions(rota: Rota) -> None:
    assert "_ROTA_COMPLETE=bash_complete" in rota("completion", "bash").stdout
    assert "compdef" in rota("completion", "zsh").stdout
    result = rota(env={"_ROTA_COMPLETE": "bash_complete", "COMP_WORDS": "rota su", "COMP_CWORD": "1"})
    assert result.stdout.split() == ["plain,submit", "plain,suspend"]
    result = rota(env={"_ROTA_COMPLETE": "bash_complete", "COMP_WORDS": "rota list -p VERY", "COMP_CWORD": "3"})
    assert result.stdout.split() == ["plain,VERY_HIGH"]
    result = rota(env={"_ROTA_COMPLETE": "bash_complete", "COMP_WORDS": "rota logs x --thr", "COMP_CWORD": "3"})
    assert result.stdout.split() == ["plain,--through-suspend"]


def test_logout_from_an_unreachable_server_keeps_the_token_unless_told(
    rota: Rota, config_home: Path, closed_port: int
) -> None:
    path = config_home / "rota" / "config.json"
    url = f"http://127.0.0.1:{closed_port}"
    config.write_file({"url": url, "token": "rota_abcdefgh_" + "x" * 30, "token_id": 5}, path)
    result = rota("logout", expect=ExitCode.NETWORK)
    assert "The token was kept" in result.stderr and "rota logout --local" in result.stderr
    assert json.loads(path.read_text())["token"].startswith("rota_")
    assert rota.json("logout", "--local") == {"logged_out": True, "revoked": False}
    assert json.loads(path.read_text()) == {"url": url}
    assert "Not logged in" in rota("logout").stdout


@pytest.mark.parametrize(
    ("text", "seconds"), [("5400", 5400), ("90m", 5400), ("6h", 21600), ("2d", 172800), ("60s", 60)]
)
def test_submit_estimate_takes_seconds_or_units(rota: Rota, project: Path, text: str, seconds: int) -> None:
    body = rota.json("submit", str(project / "train.py"), "--", "-g", "g", "--estimate", text, "--dry-run")
    assert body["run_estimate_seconds"] == seconds
