"""Settings: what each KEYCREW_* variable accepts, its default, and the generated secret key."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest
from pydantic import ValidationError

from keycrew.bootstrap import build
from keycrew.config import SECRET_KEY_FILE, Settings


@pytest.fixture(autouse=True)
def _no_keycrew_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("KEYCREW_")]:
        monkeypatch.delenv(name)


def test_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    settings = Settings()
    assert settings.data_dir == Path("data")
    assert settings.sqlalchemy_url == f"sqlite:///{tmp_path.resolve() / 'data' / 'keycrew.sqlite3'}"
    assert (settings.host, settings.port, settings.workers) == ("127.0.0.1", 8080, 1)
    assert settings.external_url == "http://127.0.0.1:8080"
    assert settings.host_name == "127.0.0.1"
    assert settings.initial_root_password is None
    assert settings.initial_root_token is None


def test_environment_is_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("KEYCREW_DATA_DIR", str(tmp_path / "d"))
    monkeypatch.setenv("KEYCREW_PORT", "9090")
    monkeypatch.setenv("KEYCREW_WORKERS", "3")
    monkeypatch.setenv("KEYCREW_LOG_LEVEL", "WARNING")
    monkeypatch.setenv("KEYCREW_EXTERNAL_URL", "https://keys.example.com/")
    settings = Settings()
    assert settings.data_dir == tmp_path / "d"
    assert (settings.port, settings.workers, settings.log_level) == (9090, 3, "warning")
    assert settings.external_url == "https://keys.example.com"
    assert settings.host_name == "keys.example.com"


@pytest.mark.parametrize(
    ("host", "port", "url"),
    [
        ("127.0.0.1", 8080, "http://127.0.0.1:8080"),
        ("0.0.0.0", 9000, "http://127.0.0.1:9000"),
        ("keycrew.internal", 80, "http://keycrew.internal:80"),
        ("::1", 8080, "http://[::1]:8080"),
        ("::", 8080, "http://127.0.0.1:8080"),
    ],
)
def test_external_url_defaults_to_where_it_listens(host: str, port: int, url: str) -> None:
    assert Settings(host=host, port=port).external_url == url


@pytest.mark.parametrize(
    ("given", "used"),
    [
        ("postgresql://u:p@db:5432/keycrew", "postgresql+psycopg://u:p@db:5432/keycrew"),
        ("postgres://u@db/keycrew", "postgresql+psycopg://u@db/keycrew"),
        ("postgresql+psycopg://u@db/keycrew", "postgresql+psycopg://u@db/keycrew"),
        ("sqlite:////srv/keycrew/db.sqlite3", "sqlite:////srv/keycrew/db.sqlite3"),
    ],
)
def test_database_url_forms(given: str, used: str) -> None:
    assert Settings(database_url=given).sqlalchemy_url == used


@pytest.mark.parametrize(
    "bad",
    [
        {"database_url": "mysql://db/keycrew"},
        {"database_url": "keycrew.sqlite3"},
        {"external_url": "keycrew.example.com"},
        {"port": 0},
        {"port": 70000},
        {"workers": 0},
        {"log_level": "loud"},
        {"initial_root_token": "x" * 19},
        {"initial_root_password": "short"},
        {"secret_key": "too-short"},
        {"reads": "sometimes"},
    ],
)
def test_bad_values_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        Settings(**bad)  # type: ignore[arg-type]


def test_initial_root_token_of_20_characters_is_accepted() -> None:
    token = Settings(initial_root_token="t" * 20)  # type: ignore[arg-type]
    assert token.initial_root_token is not None
    assert token.initial_root_token.get_secret_value() == "t" * 20
    assert "t" * 20 not in repr(token)


def test_secret_key_is_generated_once_owner_only(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    key = Settings(data_dir=data_dir).resolved_secret_key
    path = data_dir / SECRET_KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(key) >= 32
    assert Settings(data_dir=data_dir).resolved_secret_key == key
    assert [p.name for p in data_dir.iterdir()] == [SECRET_KEY_FILE]  # no temporary file left


def test_secret_key_from_the_environment_wins(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, secret_key="k" * 32)  # type: ignore[arg-type]
    assert settings.resolved_secret_key == b"k" * 32
    assert not (tmp_path / SECRET_KEY_FILE).exists()


def test_processes_starting_together_agree_on_one_key(tmp_path: Path) -> None:
    keys: list[bytes] = []
    threads = [
        threading.Thread(target=lambda: keys.append(Settings(data_dir=tmp_path).resolved_secret_key))
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(keys) == 8
    assert len(set(keys)) == 1


def test_an_unusable_key_file_is_not_replaced(tmp_path: Path) -> None:
    (tmp_path / SECRET_KEY_FILE).write_text("")
    with pytest.raises(ValueError, match="no usable secret key"):
        _ = Settings(data_dir=tmp_path).resolved_secret_key
    assert (tmp_path / SECRET_KEY_FILE).read_text() == ""


@pytest.mark.parametrize(("reads", "inline"), [("auto", True), ("inline", True), ("threadpool", False)])
def test_where_reads_run_follows_the_setting(tmp_path: Path, reads: str, inline: bool) -> None:
    """KEYCREW_READS: on SQLite "auto" reads on the event loop; an operator may choose either."""
    runtime = build(Settings(data_dir=tmp_path, reads=reads))  # type: ignore[arg-type]
    try:
        assert runtime.reads_inline is inline
    finally:
        runtime.engine.dispose()


def test_postgresql_reads_in_the_threadpool_unless_told(tmp_path: Path) -> None:
    url = "postgresql://postgres@127.0.0.1:5432/postgres"  # no connection is made
    auto = build(Settings(data_dir=tmp_path, database_url=url))  # type: ignore[arg-type]
    told = build(Settings(data_dir=tmp_path, database_url=url, reads="inline"))  # type: ignore[arg-type]
    try:
        assert auto.reads_inline is False
        assert told.reads_inline is True
    finally:
        auto.engine.dispose()
        told.engine.dispose()
