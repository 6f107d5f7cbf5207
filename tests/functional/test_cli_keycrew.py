"""The `keycrew` command run as an operator runs it: a subprocess on a data directory of its own."""

from __future__ import annotations

import re
import sqlite3
import stat
import subprocess
from pathlib import Path

import gitlab
import pytest

from keycrew import __version__
from tests.support.live import BACKENDS, database_url, free_port
from tests.support.processes import BANNER_TOKEN, KEYCREW, Running, clean_env, keycrew

COMMANDS = [
    [],
    ["serve"],
    ["version"],
    ["db"],
    ["db", "upgrade"],
    ["db", "check"],
    ["users"],
    ["users", "create"],
    ["tokens"],
    ["tokens", "create"],
]


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """A fresh data directory and nothing else from this process's KEYCREW_* settings."""
    return clean_env(tmp_path / "data")


def assert_readable_failure(result: object, code: int, message: str) -> None:
    assert getattr(result, "returncode", None) == code, result
    stderr = getattr(result, "stderr", "")
    assert message in stderr, stderr
    assert "Traceback" not in stderr
    assert getattr(result, "stdout", None) == ""


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "keycrew")
def test_every_command_has_help(command: list[str], env: dict[str, str]) -> None:
    result = keycrew(*command, "--help", env=env)
    assert result.returncode == 0, result.stderr
    assert "Usage: keycrew" in result.stdout
    assert result.stderr == ""
    # Help never touches the data directory.
    assert not Path(env["KEYCREW_DATA_DIR"]).exists()


def test_help_lists_the_commands_and_options(env: dict[str, str]) -> None:
    wide = env | {"COLUMNS": "200"}
    result = keycrew("-h", env=wide)
    assert result.returncode == 0
    for command in ("serve", "version", "db", "users", "tokens"):
        assert re.search(rf"^\W*{command}\s+\w", result.stdout, re.MULTILINE), result.stdout
    serve = keycrew("serve", "--help", env=wide).stdout
    for option in ("--host", "--port", "--workers", "KEYCREW_HOST", "KEYCREW_PORT", "KEYCREW_WORKERS"):
        assert option in serve, serve


def test_usage_errors_exit_2(env: dict[str, str]) -> None:
    assert keycrew(env=env).returncode == 2  # no command: help, as a usage error
    unknown = keycrew("frobnicate", env=env)
    assert unknown.returncode == 2
    assert "No such command" in unknown.stderr
    missing = keycrew("users", "create", "--username", "x", env=env)
    assert missing.returncode == 2
    assert "--email" in missing.stderr
    assert keycrew("serve", "--port", "0", env=env).returncode == 2
    assert keycrew("serve", "--workers", "0", env=env).returncode == 2


def test_version(env: dict[str, str]) -> None:
    result = keycrew("version", env=env)
    assert result.returncode == 0
    assert re.fullmatch(rf"keycrew {re.escape(__version__)} \(GitLab API v4, .*\)\n", result.stdout)


def test_db_upgrade_creates_the_database_and_is_repeatable(env: dict[str, str]) -> None:
    data_dir = Path(env["KEYCREW_DATA_DIR"])
    first = keycrew("db", "upgrade", env=env)
    assert first.returncode == 0, first.stderr
    assert first.stdout == f"database at head: sqlite:///{(data_dir / 'keycrew.sqlite3').resolve()}\n"
    assert (data_dir / "keycrew.sqlite3").is_file()
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE((data_dir / "secret_key").stat().st_mode) == 0o600
    key = (data_dir / "secret_key").read_text()
    again = keycrew("db", "upgrade", env=env)
    assert again.returncode == 0, again.stderr
    assert (data_dir / "secret_key").read_text() == key


def test_users_create(env: dict[str, str]) -> None:
    first = keycrew("users", "create", "--username", "alice", "--email", "alice@example.com", env=env)
    assert first.returncode == 0, first.stderr
    # Root comes first on an empty database (id 1), and its credentials go to stderr, once.
    assert first.stdout == "created user alice (id 2)\n"
    assert BANNER_TOKEN.search(first.stderr)

    second = keycrew(
        "users", "create", "--username", "bob", "--email", "bob@example.com", "--password-stdin", "--admin",
        stdin="a-long-password\n", env=env,
    )  # fmt: skip
    assert second.returncode == 0, second.stderr
    assert second.stdout == "created user bob (id 3)\n"
    assert second.stderr == ""

    taken = keycrew("users", "create", "--username", "ALICE", "--email", "other@example.com", env=env)
    assert_readable_failure(taken, 1, "keycrew: username has already been taken")
    bad_email = keycrew("users", "create", "--username", "carol", "--email", "not-an-email", env=env)
    assert_readable_failure(bad_email, 1, "keycrew: email is invalid")
    short = keycrew(
        "users", "create", "--username", "dave", "--email", "dave@example.com", "--password", "short",
        env=env,
    )  # fmt: skip
    assert_readable_failure(short, 1, "password is too short")


def test_tokens_create_prints_only_the_token_which_then_authenticates(
    tmp_path: Path, env: dict[str, str]
) -> None:
    assert (
        keycrew("users", "create", "--username", "bot", "--email", "bot@example.com", env=env).returncode == 0
    )
    result = keycrew("tokens", "create", "--user", "bot", "--scopes", "api,read_user", env=env)
    assert result.returncode == 0, result.stderr
    assert re.fullmatch(r"glpat-[0-9A-Za-z_-]{20,}\n", result.stdout), result.stdout
    token = result.stdout.strip()
    assert "scopes api,read_user" in result.stderr
    assert token not in result.stderr

    port = free_port()
    server = Running.start(
        [*KEYCREW, "serve", "--port", str(port)], env=env, cwd=tmp_path, stderr_path=tmp_path / "serve.err"
    )
    try:
        url = f"http://127.0.0.1:{port}"
        server.wait_http(f"{url}/-/health", 60)
        gl = gitlab.Gitlab(url, private_token=token)
        gl.auth()
        assert gl.user is not None
        assert gl.user.username == "bot"
        assert server.terminate() == 0
    finally:
        server.kill_group()
    assert "password" not in server.stdout  # root was created by the first command, not here


def test_tokens_create_refuses_bad_input_readably(env: dict[str, str]) -> None:
    assert (
        keycrew("users", "create", "--username", "bot", "--email", "bot@example.com", env=env).returncode == 0
    )
    cases = [
        (["--user", "nobody", "--scopes", "api"], 1, "no user 'nobody'"),
        (["--user", "bot", "--scopes", "api,flying"], 2, "unknown flying"),
        (["--user", "bot", "--scopes", " , "], 2, "give at least one scope"),
        (["--user", "bot", "--scopes", "sudo"], 1, "sudo: only an administrator's token"),
        (["--user", "bot", "--scopes", "api", "--expires-at", "soon"], 2, "'soon' is not a date"),
        (["--user", "bot", "--scopes", "api", "--expires-at", "2001-01-01"], 1, "expires_at can't be before"),
    ]
    for args, code, message in cases:
        assert_readable_failure(keycrew("tokens", "create", *args, env=env), code, message)


@pytest.mark.parametrize(
    ("variable", "value", "code", "message"),
    [
        ("KEYCREW_PORT", "eighty", 2, "KEYCREW_PORT: Input should be a valid integer"),
        ("KEYCREW_WORKERS", "0", 2, "KEYCREW_WORKERS: Input should be greater than or equal to 1"),
        ("KEYCREW_DATABASE_URL", "mysql://db/keycrew", 2, "KEYCREW_DATABASE_URL: must be sqlite"),
        ("KEYCREW_EXTERNAL_URL", "keycrew.example.com", 2, "KEYCREW_EXTERNAL_URL: must be an http"),
        ("KEYCREW_INITIAL_ROOT_TOKEN", "x" * 19, 2, "KEYCREW_INITIAL_ROOT_TOKEN: must be at least 20"),
        ("KEYCREW_SECRET_KEY", "short", 2, "KEYCREW_SECRET_KEY: must be at least 32"),
        ("KEYCREW_LOG_LEVEL", "loud", 2, "KEYCREW_LOG_LEVEL: Input should be"),
        ("KEYCREW_DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none", 1, "database error"),
    ],
)
def test_bad_settings_are_named(
    env: dict[str, str], variable: str, value: str, code: int, message: str
) -> None:
    result = keycrew("db", "upgrade", env=env | {variable: value})
    assert_readable_failure(result, code, message)
    assert value not in result.stderr or variable != "KEYCREW_SECRET_KEY"


def test_a_data_dir_that_cannot_be_created_is_a_readable_failure(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = keycrew("db", "upgrade", env=clean_env(blocker / "data"))
    assert_readable_failure(result, 1, str(blocker))


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_processes_starting_together_on_an_empty_database(backend: str, tmp_path: Path) -> None:
    """Four commands race to migrate and create root: all succeed, and there is one root, user 1.

    Several rounds, since a lost race shows only now and then (SQLite's migrations once ran
    twice: "table events already exists").
    """
    for round_ in range(3):
        url, pg = database_url(backend, tmp_path / f"data{round_}")
        env = clean_env(tmp_path / f"data{round_}", KEYCREW_DATABASE_URL=url)
        try:
            procs = [
                subprocess.Popen(
                    [*KEYCREW, "users", "create", "--username", f"racer{i}", "--email", f"r{i}@example.com"],
                    env=env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
                for i in range(4)
            ]
            results = [(p.wait(timeout=120), *p.communicate()) for p in procs]
            assert [code for code, _, _ in results] == [0, 0, 0, 0], results
            assert sum("keycrew created the root administrator" in err for _, _, err in results) == 1
            ids = sorted(int(re.findall(r"\(id (\d+)\)", out)[0]) for _, out, _ in results)
            assert ids == [2, 3, 4, 5]
            root = keycrew("tokens", "create", "--user", "1", "--scopes", "api", env=env)
            assert "for root," in root.stderr
        finally:
            if pg is not None:
                pg.drop()


def test_license_and_jobs_commands(tmp_path: Path) -> None:
    env = clean_env(tmp_path)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return keycrew(*args, env=env)

    assert run("license", "set", "--plan", "premium", "--seats", "3").returncode == 0
    shown = run("license", "show")
    assert shown.returncode == 0
    assert "plan premium, paid seats 3" in shown.stdout
    bad = run("license", "set", "--plan", "gold")
    assert bad.returncode == 1
    assert "plan does not have a valid value" in bad.stderr
    listed = run("jobs", "list")
    assert listed.returncode == 0, listed.stderr
    assert re.search(r"^NAME +SCHEDULE \(UTC\) +LAST RUN +OUTCOME$", listed.stdout, re.MULTILINE)
    assert re.search(r"^delete-inactive-bots +0 0 \* \* \* +never +-$", listed.stdout, re.MULTILINE)
    dry = run("jobs", "run", "delete-inactive-bots", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "delete-inactive-bots: deleted 0, kept 0 (dry run: nothing was changed)" in dry.stdout
    ran = run("jobs", "run", "delete-inactive-bots")
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.splitlines()[-1] == "delete-inactive-bots: deleted 0, kept 0"
    listed = run("jobs", "list").stdout
    assert re.search(
        r"^delete-inactive-bots +0 0 \* \* \* +\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC +"
        r"succeeded: deleted 0, kept 0$",
        listed,
        re.MULTILINE,
    ), listed
    unknown = run("jobs", "run", "no-such-job")
    assert unknown.returncode == 2
    assert "no job 'no-such-job'" in unknown.stderr
    # A job another node is running is not run again: exit 1, and why.
    with sqlite3.connect(tmp_path / "keycrew.sqlite3") as db:
        db.execute(
            "UPDATE job_leases SET holder = 'other-host:77/x', lease_until = '2999-01-01 00:00:00.000000' "
            "WHERE name = 'delete-inactive-bots'"
        )
    held = run("jobs", "run", "delete-inactive-bots")
    assert held.returncode == 1
    assert "already running on other-host:77" in held.stderr
    wide = env | {"COLUMNS": "200"}
    assert "Run one background job now" in keycrew("jobs", "--help", env=wide).stdout
    assert "--dry-run" in keycrew("jobs", "run", "--help", env=wide).stdout
