"""Settings: the embedded default, URL normalisation, hidden secrets, nothing at import."""

import asyncio
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text
from support import REPO, run_python

from session_db.config import Settings, parse_database_url
from session_db.database import create_engine, describe_url
from session_db.errors import ConfigurationError

SECRET = "hunter2-s3cr3t"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("SESSION_DB_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def test_unset_url_means_an_embedded_sqlite_file_in_the_data_dir(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    url = settings.database_url()
    assert url.drivername == "sqlite+aiosqlite"
    assert url.database == str(tmp_path / "data" / "session_db.sqlite")


def test_default_data_dir_is_the_per_user_data_directory() -> None:
    import platformdirs

    expected = Path(platformdirs.user_data_dir("session-db", appauthor=False))
    assert Settings().resolved_data_dir() == expected


def test_url_comes_from_the_environment_or_a_dotenv_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".env").write_text("SESSION_DB_URL=postgresql://me@db.example/prod\n")
    assert Settings().database_url().host == "db.example"
    monkeypatch.setenv("SESSION_DB_URL", "sqlite:////tmp/from-env.sqlite")
    assert Settings().database_url().database == "/tmp/from-env.sqlite"


@pytest.mark.parametrize(
    ("given", "driver"),
    [
        ("postgres://u@h/db", "postgresql+asyncpg"),
        ("postgresql://u@h/db", "postgresql+asyncpg"),
        ("postgresql+asyncpg://u@h/db", "postgresql+asyncpg"),
        ("sqlite:///x.sqlite", "sqlite+aiosqlite"),
        ("  sqlite+aiosqlite:///x.sqlite  ", "sqlite+aiosqlite"),
    ],
)
def test_urls_are_normalised_to_the_async_driver(given: str, driver: str) -> None:
    assert parse_database_url(given).drivername == driver


@pytest.mark.parametrize(
    "bad",
    [
        f"mysql+pymysql://root:{SECRET}@localhost/db",
        f"postgresql+psycopg2://root:{SECRET}@localhost/db",
        f"postgresql://root:{SECRET}@localhost:notaport/db",
        f"not a url {SECRET}",
    ],
)
def test_a_bad_url_is_refused_without_repeating_the_password(bad: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        parse_database_url(bad)
    assert SECRET not in str(caught.value)
    # No chained exception either: a traceback would print its message, URL and all.
    error = caught.value
    assert error.__cause__ is None and (error.__context__ is None or error.__suppress_context__)


def test_the_password_stays_out_of_reprs() -> None:
    settings = Settings(url=f"postgresql://alice:{SECRET}@db.example:5432/prod")
    engine = create_engine(settings)
    try:
        for shown in (
            repr(settings),
            str(settings),
            repr(settings.database_url()),
            str(settings.database_url()),
            repr(engine),
            str(engine.url),
            describe_url(engine),
        ):
            assert SECRET not in shown, shown
        assert "alice" in describe_url(engine)
    finally:
        asyncio.run(engine.dispose())


def test_a_refused_connection_does_not_reveal_the_password() -> None:
    engine = create_engine(
        Settings(url=f"postgresql://alice:{SECRET}@127.0.0.1:1/none", connect_timeout=2)
    )

    async def connect() -> None:
        try:
            async with engine.connect():
                pass
        finally:
            await engine.dispose()

    with pytest.raises(Exception) as caught:
        asyncio.run(connect())
    assert SECRET not in str(caught.value) and SECRET not in repr(caught.value)


def test_sqlite_connections_enforce_foreign_keys_and_use_wal(tmp_path: Path) -> None:
    folder = tmp_path / "private" / "nested"
    engine = create_engine(Settings(data_dir=folder))

    async def pragmas() -> tuple[int, str, int]:
        try:
            async with engine.connect() as connection:
                fk = (await connection.execute(text("PRAGMA foreign_keys"))).scalar_one()
                mode = (await connection.execute(text("PRAGMA journal_mode"))).scalar_one()
                busy = (await connection.execute(text("PRAGMA busy_timeout"))).scalar_one()
                return fk, mode, busy
        finally:
            await engine.dispose()

    assert asyncio.run(pragmas()) == (1, "wal", 30_000)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700


def test_importing_reads_no_settings_and_opens_no_database(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "SESSION_DB_URL": "this is not a url",
        "HOME": str(tmp_path),
        "XDG_DATA_HOME": str(tmp_path / "xdg"),
    }
    code = (
        "import sys, session_db\n"
        "assert 'sqlalchemy' not in sys.modules, 'import session_db pulled in sqlalchemy'\n"
        "import session_db.database, session_db.models, session_db.migrate\n"
        "print('ok')\n"
    )
    result = run_python("-c", code, env_changes=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
    assert not any(tmp_path.rglob("*.sqlite"))


@pytest.mark.slow
def test_readme_first_command_creates_the_embedded_database(tmp_path: Path) -> None:
    readme = (REPO / "README.md").read_text()
    command = "session-db demo"
    first_block = readme.split("```bash\n", 2)[2].split("```")[0]
    assert first_block == f"{command}\n", "the README's first command changed: update this test"
    result = subprocess.run(
        command.split(),
        cwd=tmp_path,
        env={
            **os.environ,
            "HOME": str(tmp_path),
            "XDG_DATA_HOME": str(tmp_path / "xdg"),
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    created = tmp_path / "xdg" / "session-db" / "session_db.sqlite"
    assert created.is_file()
    assert f"synced into sqlite+aiosqlite:///{created}" in result.stdout
    assert (tmp_path / "session-db-demo" / "agents" / "sessions").is_dir()
    tree = run_python(
        "-m",
        "session_db",
        "sessions",
        "tree",
        "2026-02-14_search-feature_k2m9qx",
        "--json",
        cwd=tmp_path,
        env_changes={"HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path / "xdg")},
    )
    assert tree.returncode == 0, tree.stderr
    drawn = json.loads(tree.stdout)
    assert len(drawn["children"]) == 2 and drawn["rollup_cost"] == "3.385000000"


def test_readme_first_command_reports_a_bad_url_in_one_line(tmp_path: Path) -> None:
    result = run_python(
        "-m",
        "session_db",
        cwd=tmp_path,
        env_changes={"SESSION_DB_URL": f"mysql://root:{SECRET}@h/db"},
    )
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "unsupported driver 'mysql'" in result.stderr
    assert SECRET not in result.stderr + result.stdout


def test_an_empty_setting_in_the_environment_is_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SESSION_DB_URL", "")
    monkeypatch.setenv("SESSION_DB_DATA_DIR", "")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.url is None and settings.data_dir is None
    assert settings.database_url().get_backend_name() == "sqlite"  # the embedded default
