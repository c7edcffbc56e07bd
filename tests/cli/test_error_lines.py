"""A database that cannot be opened, or a revision that does not exist, is one line.

Each case runs the console script's function against the real local PostgreSQL server
or a real SQLite file, with a password in the URL that must not be shown.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import URL, make_url
from support import cli, create_postgres_database, drop_postgres_database, engine_params

from session_db.migrate import alembic_config, head_revision

SECRET = "pw-never-shown-7q"
# The commands a person runs first: each opens the database in its own way.
COMMANDS = (["sessions", "list"], ["db", "upgrade"], [], ["ingest"])


def closed_port() -> int:
    """A local port with nothing listening on it."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No session-db settings but a private data dir and spool; returns tmp_path."""
    monkeypatch.chdir(tmp_path)
    for name in ("SESSION_DB_URL", "SESSION_DB_SPOOL_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SESSION_DB_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SESSION_DB_AUTO_DELIVER", "0")
    monkeypatch.setenv("SESSION_DB_CONNECT_TIMEOUT", "5")
    return tmp_path


def assert_one_line(code: int, out: str, err: str, *expected: str) -> None:
    assert code == 1, err
    assert "Traceback" not in out + err
    assert err.count("\n") == 1 and err.startswith("session-db: error: "), err
    assert SECRET not in out + err
    for text in expected:
        assert text in err, err


def missing_database(server: URL) -> tuple[URL, list[str]]:
    name = f"nope_{uuid.uuid4().hex[:8]}"
    url = server.set(database=name, password=SECRET)
    return url, [f'database "{name}" does not exist', "createdb", name, "SESSION_DB_URL="]


def unknown_role(server: URL) -> tuple[URL, list[str]]:
    name = f"nobody_{uuid.uuid4().hex[:8]}"
    url = server.set(username=name, password=SECRET, database="postgres")
    return url, [f'role "{name}" does not exist', "createuser", "SESSION_DB_URL="]


def unknown_query_parameter(server: URL) -> tuple[URL, list[str]]:
    url = server.set(password=SECRET, query={"foo": "bar"})
    return url, ["query parameter foo", "remove it from SESSION_DB_URL", "?foo=bar"]


def port_out_of_range(server: URL) -> tuple[URL, list[str]]:
    return server.set(password=SECRET, port=99999), ["port 99999", "1-65535", "SESSION_DB_URL"]


def refused(server: URL) -> tuple[URL, list[str]]:
    port = closed_port()
    url = server.set(host="127.0.0.1", port=port, password=SECRET)
    return url, [f"127.0.0.1:{port}", "connection refused", "SESSION_DB_URL=", "start the server"]


@pytest.mark.postgresql
@pytest.mark.parametrize(
    "case",
    [missing_database, unknown_role, unknown_query_parameter, port_out_of_range, refused],
)
@pytest.mark.parametrize("command", COMMANDS, ids=lambda args: " ".join(args) or "bare")
def test_a_postgresql_database_that_cannot_be_opened_is_one_line_naming_it_and_the_fix(
    clean_env: Path,
    postgres_server: URL,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    case: Callable[[URL], tuple[URL, list[str]]],
    command: list[str],
) -> None:
    url, expected = case(postgres_server)
    monkeypatch.setenv("SESSION_DB_URL", url.render_as_string(hide_password=False))

    code, out, err = cli(capsys, *command)

    shown = url.render_as_string(hide_password=True)
    assert_one_line(code, out, err, *expected)
    assert "***" in err and (shown in err or shown.split("@")[1].split("/")[0] in err)


@pytest.mark.postgresql
def test_verbose_adds_the_traceback_to_the_line(
    clean_env: Path,
    postgres_server: URL,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url, expected = missing_database(postgres_server)
    monkeypatch.setenv("SESSION_DB_URL", url.render_as_string(hide_password=False))
    code, _, err = cli(capsys, "--verbose", "sessions", "list")
    assert code == 1 and "Traceback" in err and expected[0] in err.splitlines()[-1]


def blocked_by_a_file(root: Path) -> tuple[Path, list[str]]:
    """A data dir under a regular file: it cannot be made, even by root."""
    (root / "file").write_text("in the way\n")
    data_dir = root / "file" / "sub"
    return data_dir, [
        "cannot open the SQLite database",
        f"{root / 'file'} is a file",
        str(data_dir),
        "SESSION_DB_DATA_DIR",
    ]


def database_path_is_a_folder(root: Path) -> tuple[Path, list[str]]:
    """The SQLite file's name is taken by a folder: SQLite cannot open it (CANTOPEN)."""
    (root / "data" / "session_db.sqlite").mkdir(parents=True)
    return root / "data", ["cannot open the SQLite database", "is a folder", "SESSION_DB_DATA_DIR"]


def immutable_database(root: Path) -> tuple[Path, list[str]]:
    """A database file nobody may write, root included (chattr +i)."""
    data_dir = root / "data"
    data_dir.mkdir()
    (data_dir / "session_db.sqlite").touch()
    done = subprocess.run(
        ["chattr", "+i", str(data_dir / "session_db.sqlite")], capture_output=True, check=False
    )
    if done.returncode != 0:  # no CAP_LINUX_IMMUTABLE, or a file system without it
        pytest.skip(f"chattr +i is not allowed here: {done.stderr!r}")
    return data_dir, ["is read-only", str(data_dir / "session_db.sqlite"), "SESSION_DB_DATA_DIR"]


@pytest.fixture
def unlock(tmp_path: Path) -> Iterator[None]:
    yield
    target = tmp_path / "data" / "session_db.sqlite"
    if target.is_file() and shutil.which("chattr"):
        subprocess.run(["chattr", "-i", str(target)], capture_output=True, check=False)


@pytest.mark.sqlite
@pytest.mark.parametrize("case", [blocked_by_a_file, database_path_is_a_folder])
@pytest.mark.parametrize("command", COMMANDS, ids=lambda args: " ".join(args) or "bare")
def test_a_data_dir_that_cannot_be_written_is_one_line_naming_the_file_and_the_setting(
    clean_env: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    case: Callable[[Path], tuple[Path, list[str]]],
    command: list[str],
) -> None:
    data_dir, expected = case(clean_env)
    monkeypatch.setenv("SESSION_DB_DATA_DIR", str(data_dir))
    code, out, err = cli(capsys, *command)
    assert_one_line(code, out, err, *expected)


@pytest.mark.sqlite
@pytest.mark.skipif(shutil.which("chattr") is None, reason="needs chattr (e2fsprogs)")
def test_a_read_only_database_file_is_one_line(
    clean_env: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    unlock: None,
) -> None:
    data_dir, expected = immutable_database(clean_env)
    monkeypatch.setenv("SESSION_DB_DATA_DIR", str(data_dir))
    code, out, err = cli(capsys, "db", "upgrade")
    assert_one_line(code, out, err, *expected)


@pytest.mark.sqlite
def test_an_unknown_sqlite_query_parameter_is_one_line(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SESSION_DB_URL", f"sqlite:///{clean_env / 'x.sqlite'}?foo=bar")
    code, out, err = cli(capsys, "sessions", "list")
    assert_one_line(code, out, err, "query parameter foo", "SESSION_DB_URL")


@pytest.mark.parametrize("direction", ["upgrade", "downgrade"])
def test_an_unknown_revision_is_one_line_naming_the_database(
    cli_db: URL, capsys: pytest.CaptureFixture[str], direction: str
) -> None:
    code, out, err = cli(capsys, "db", direction, "9999")
    assert_one_line(code, out, err, "'9999'", "db history")
    assert cli_db.render_as_string(hide_password=True) in err
    code, out, _ = cli(capsys, "db", "current")
    assert code == 0 and f"at revision {head_revision()} (head)" in out  # nothing moved


@pytest.fixture(params=engine_params())
def own_database(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[URL]:
    """An empty database of its own (it is migrated up and down), as SESSION_DB_URL."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SESSION_DB_DATA_DIR", str(tmp_path / "data"))
    if request.param == "sqlite":
        url = make_url(f"sqlite+aiosqlite:///{tmp_path / 'own.sqlite'}")
        monkeypatch.setenv("SESSION_DB_URL", url.render_as_string(hide_password=False))
        yield url
        return
    server = request.getfixturevalue("postgres_server")
    url = create_postgres_database(server)
    monkeypatch.setenv("SESSION_DB_URL", url.render_as_string(hide_password=False))
    try:
        yield url
    finally:
        drop_postgres_database(server, url)


def previous_of_head() -> str:
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory.from_config(alembic_config())
    head = scripts.get_revision(scripts.get_current_head())
    assert head is not None and isinstance(head.down_revision, str)
    return head.down_revision


@pytest.mark.parametrize("form", [["-1"], ["--", "-1"]], ids=["-1", "-- -1"])
def test_downgrade_minus_one_goes_one_revision_back_as_its_help_says(
    own_database: URL, capsys: pytest.CaptureFixture[str], form: list[str]
) -> None:
    code, _, err = cli(capsys, "db", "upgrade", "head")
    assert code == 0, err
    code, out, err = cli(capsys, "db", "downgrade", "--sql", *form)
    assert code == 0, err
    assert f"version_num='{previous_of_head()}'" in out  # the dry run: nothing moved yet
    code, out, err = cli(capsys, "db", "downgrade", *form)
    assert code == 0, err
    assert f"at revision {previous_of_head()}" in out
    code, out, _ = cli(capsys, "db", "current")
    assert f"at revision {previous_of_head()};" in out
    code, _, err = cli(capsys, "db", "upgrade")
    assert code == 0, err


def test_an_unknown_option_of_downgrade_is_a_usage_error(
    own_database: URL, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = cli(capsys, "db", "downgrade", "--bogus")
    assert code == 2 and "--bogus" in err
