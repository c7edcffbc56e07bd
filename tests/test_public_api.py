"""The top-level package: the names a user starts from, loaded lazily."""

from __future__ import annotations

import subprocess
import sys

import pytest

import session_db


def run(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_importing_the_package_loads_no_sqlalchemy_or_pydantic() -> None:
    loaded = run(
        "import sys, session_db; "
        "print(sorted(m for m in ('sqlalchemy', 'pydantic', 'sqlmodel', 'alembic') "
        "if m in sys.modules))"
    )
    assert loaded == "[]"


def test_the_seed_systems_hook_logger_imports_work() -> None:
    out = run(
        "from session_db import AgentLogCreate, create_agent_log, get_async_session; "
        "print(AgentLogCreate.__name__, create_agent_log.__module__, get_async_session.__name__)"
    )
    assert out == "AgentLogCreate session_db.crud.agent_logs get_async_session"


def test_the_starting_names_are_the_real_objects() -> None:
    from session_db import (
        SessionDBError,
        crud,
        database,
        errors,
        get_async_session,
        init_db,
        models,
        reset_db,
    )

    assert (init_db, reset_db, get_async_session) == (
        database.init_db,
        database.reset_db,
        database.get_async_session,
    )
    assert SessionDBError is errors.SessionDBError
    assert session_db.create_session is crud.create_session
    assert session_db.SessionCreate is models.SessionCreate
    assert {"init_db", "crud", "models", "SessionDBError"} <= set(dir(session_db))


@pytest.mark.parametrize("name", ["not_a_thing", "_private", "text"])
def test_an_unknown_name_is_an_attribute_error(name: str) -> None:
    with pytest.raises(AttributeError, match=name):
        getattr(session_db, name)


def test_every_listed_name_resolves() -> None:
    for name in session_db.__all__:
        assert getattr(session_db, name) is not None, name
