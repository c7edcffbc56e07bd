"""`session-db sessions tree`: rolled-up figures, one query whatever the size, no cut numbers."""

import asyncio
import json
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal

import pytest
from sqlalchemy import event
from sqlalchemy.engine import URL, Engine
from sqlalchemy.pool import NullPool
from support import cli, isolated_settings

from session_db import crud
from session_db.database import create_engine, get_async_session


async def _make(url: URL, slug: str, children: int) -> None:
    """A root `slug` with `children` subagents, each with one subagent of its own."""
    engine = create_engine(isolated_settings(), url=url, poolclass=NullPool)
    try:
        async with get_async_session(engine) as db:
            root = await crud.create_session(
                db, {"session_slug": slug, "total_tokens": 1_234_567, "total_cost": "1234.5"}
            )
            for n in range(children):
                child = await crud.create_session(
                    db,
                    {"session_slug": f"{slug}-agent-{n}", "total_tokens": 1000, "total_cost": "1"},
                )
                grandchild = await crud.create_session(
                    db, {"session_slug": f"{slug}-agent-{n}-sub", "total_tokens": 10}
                )
                for parent, below in ((root, child), (child, grandchild)):
                    await crud.link_sessions(
                        db, {"parent_session_id": parent.id, "child_session_id": below.id}
                    )
    finally:
        await engine.dispose()


@contextmanager
def statements() -> Iterator[list[str]]:
    """Queries any engine of this process sends while the block runs (not BEGIN, PRAGMA)."""
    seen: list[str] = []

    def record(_conn, _cursor, statement, *_: object) -> None:  # type: ignore[no-untyped-def]
        if statement.lstrip().upper().startswith(("SELECT", "WITH")):
            seen.append(statement)

    event.listen(Engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(Engine, "before_cursor_execute", record)


def test_tree_shows_each_nodes_rolled_up_figures_with_separators(
    cli_db: URL, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    asyncio.run(_make(cli_db, "root", 2))
    monkeypatch.setenv("COLUMNS", "200")
    code, out, err = cli(capsys, "sessions", "tree", "root")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "root  $1,236.5000 · 1,236,587 tokens · 5 sessions  created/active"
    assert lines[1].endswith("root-agent-0  $1.0000 · 1,010 tokens · 2 sessions  created/active")
    assert lines[2].endswith("root-agent-0-sub  $0.0000 · 10 tokens  created/active")
    code, out, err = cli(capsys, "sessions", "tree", "root", "--json")
    assert code == 0, err
    tree = json.loads(out)
    assert (tree["rollup_sessions"], tree["rollup_tokens"]) == (5, 1_236_587)
    assert Decimal(tree["rollup_cost"]) == Decimal("1236.5")
    assert [c["rollup_tokens"] for c in tree["children"]] == [1010, 1010]


def test_a_narrow_terminal_ends_long_lines_in_an_ellipsis_never_mid_number(
    cli_db: URL, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    asyncio.run(_make(cli_db, "root", 2))
    monkeypatch.setenv("COLUMNS", "200")
    _, wide, _ = cli(capsys, "sessions", "tree", "root")
    monkeypatch.setenv("COLUMNS", "36")
    code, narrow, err = cli(capsys, "sessions", "tree", "root")
    assert code == 0, err
    wide_lines, narrow_lines = wide.splitlines(), narrow.splitlines()
    assert len(narrow_lines) == len(wide_lines) == 5  # one line a node: nothing wrapped
    for short, full in zip(narrow_lines, wide_lines, strict=True):
        assert len(short) <= 36
        assert short == full or (short.endswith("…") and full.startswith(short[:-1]))
    assert any(short.endswith("…") for short in narrow_lines)


def test_tree_takes_the_same_statements_whatever_its_size(
    cli_db: URL, capsys: pytest.CaptureFixture[str]
) -> None:
    asyncio.run(_make(cli_db, "small", 1))
    asyncio.run(_make(cli_db, "large", 40))
    with statements() as small:
        code, _, err = cli(capsys, "sessions", "tree", "small")
    assert code == 0, err
    with statements() as large:
        code, out, err = cli(capsys, "sessions", "tree", "large")
    assert code == 0, err
    assert out.count("large-agent-") == 80
    # Finding the session by slug, then the tree with every node's totals.
    assert len(small) == len(large) == 2, large
