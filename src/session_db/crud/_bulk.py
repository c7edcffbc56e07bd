"""Set-based writes shared by the CRUD modules: many rows, a bounded number of statements.

On PostgreSQL the rows stream through COPY into a temporary staging table shaped like the
target, and one `INSERT … SELECT … ON CONFLICT` moves them across: COPY is the fastest
way in, and the conflict clause keeps the write idempotent. On SQLite they go as one
batched `executemany` (SQLAlchemy packs it into multi-row statements). Either way the
statement count depends on the batch, never on the number of rows.

Nothing here validates: the callers pass rows they have validated and de-duplicated.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel.ext.asyncio.session import AsyncSession

from session_db import jsoncodec

# Rows per executemany page and per COPY: bounds memory and statement size.
BULK_PAGE = 1000
# Below this many rows a multi-row VALUES statement beats COPY's four round trips.
COPY_MIN_ROWS = 64


def _staging_name(table: sa.Table) -> str:
    return f"staging_{table.name}"


def _as_text(value: Any) -> Any:
    # A StrEnum member goes as the plain text asyncpg's encoder expects.
    return None if value is None else str(value)


def _as_json(value: Any) -> Any:
    return None if value is None else jsoncodec.dumps(value)


def _copy_converters(table: sa.Table, columns: Sequence[str]) -> list[Any]:
    """Per column, how a value becomes what asyncpg's binary COPY wants (None: as it is)."""
    converters: list[Any] = []
    for name in columns:
        kind = table.c[name].type
        if isinstance(kind, sa.JSON):
            converters.append(_as_json)
        elif isinstance(kind, sa.String) and not isinstance(kind, sa.Enum):
            converters.append(_as_text)
        else:
            converters.append(None)
    return converters


async def _copy_into_staging(
    db: AsyncSession, table: sa.Table, columns: Sequence[str], rows: Sequence[Mapping[str, Any]]
) -> sa.Table:
    """COPY `rows` into this connection's staging table for `table` (emptied first)."""
    connection = await db.connection()
    staging = _staging_name(table)
    # A temporary table lives as long as the connection, so pooled connections create it
    # once; IF NOT EXISTS makes a rolled-back creation harmless. Its rows go at commit,
    # and a DELETE (not TRUNCATE, which makes a new file each time: ~2 ms) empties it for
    # a second batch in the same transaction.
    await connection.exec_driver_sql(
        f'CREATE TEMPORARY TABLE IF NOT EXISTS "{staging}" '
        f'(LIKE "{table.name}" INCLUDING DEFAULTS) ON COMMIT DELETE ROWS'
    )
    await connection.exec_driver_sql(f'DELETE FROM "{staging}"')
    steps = list(zip(columns, _copy_converters(table, columns), strict=True))
    records = [
        tuple(row[name] if convert is None else convert(row[name]) for name, convert in steps)
        for row in rows
    ]
    raw = await connection.get_raw_connection()
    await raw.driver_connection.copy_records_to_table(  # type: ignore[union-attr]
        staging, records=records, columns=list(columns)
    )
    return _staging_table(table, tuple(columns))


@functools.cache
def _staging_table(table: sa.Table, columns: tuple[str, ...]) -> sa.Table:
    """The staging table as SQLAlchemy sees it, made once per shape.

    Once, not per batch: a new Table object would be a new key in SQLAlchemy's statement
    cache every time, and the cache would fill with copies of the same statement.
    """
    return sa.Table(
        _staging_name(table),
        sa.MetaData(),
        *(sa.Column(name, table.c[name].type) for name in columns),
    )


async def insert_rows(
    db: AsyncSession,
    table: sa.Table,
    rows: Sequence[Mapping[str, Any]],
    *,
    skip_conflicts_on: Sequence[str] | None = None,
    update_on_conflict: Mapping[str, Any] | None = None,
    conflict_where: Any = None,
    returning: Sequence[str] = (),
) -> list[sa.Row[Any]]:
    """Insert `rows` (every row with the same keys) in a bounded number of statements.

    Args:
        table: The target table.
        rows: Column values per row, each row with the same keys.
        skip_conflicts_on: The columns of a unique index; a row that conflicts there is
            skipped (DO NOTHING), or updated when `update_on_conflict` is given.
        update_on_conflict: {column: expression} for DO UPDATE; build the expressions with
            `excluded(table)` (the incoming row) and `table.c` (the stored one).
        conflict_where: A condition the DO UPDATE must meet.
        returning: Columns to return for each row actually inserted or updated. SQLite
            cannot return rows from an executemany, so there it costs one statement per
            page of rows: ask only where the answer is needed.

    Returns:
        The `returning` columns of the rows written, in no particular order.
    """
    if not rows:
        return []
    rows = _with_python_defaults(table, rows)
    columns = list(rows[0].keys())
    dialect = db.get_bind().dialect
    written: list[sa.Row[Any]] = []
    for start in range(0, len(rows), BULK_PAGE):
        page = rows[start : start + BULK_PAGE]
        if dialect.name == "sqlite" and not returning:
            statement = sqlite.insert(table).values({name: sa.bindparam(name) for name in columns})
            statement = _with_conflict(
                statement, table, skip_conflicts_on, update_on_conflict, conflict_where
            )
            await _sqlite_executemany(db, statement, table, columns, page)
            continue
        if dialect.name == "postgresql" and len(page) >= COPY_MIN_ROWS:
            staging = await _copy_into_staging(db, table, columns, page)
            statement = postgresql.insert(table).from_select(
                columns, sa.select(*(staging.c[name] for name in columns))
            )
            params: Any = None
        elif dialect.name == "postgresql":
            statement, params = postgresql.insert(table).values([dict(row) for row in page]), None
        else:
            statement = sqlite.insert(table)
            params = [dict(row) for row in page]
        statement = _with_conflict(
            statement, table, skip_conflicts_on, update_on_conflict, conflict_where
        )
        if returning:
            statement = statement.returning(*(table.c[name] for name in returning))
        result = await db.exec(statement, params=params) if params else await db.exec(statement)
        if returning:
            written.extend(result.all())
    return written


def _with_python_defaults(
    table: sa.Table, rows: Sequence[Mapping[str, Any]]
) -> Sequence[Mapping[str, Any]]:
    """`rows` with the columns they leave out that only SQLAlchemy fills (a Python default,
    no server default), so every path writes the same row: COPY and the raw executemany
    never run SQLAlchemy's defaults, and the database has none for these columns."""
    missing = [
        column
        for column in table.columns
        if column.name not in rows[0]
        and column.default is not None
        and column.server_default is None
        and (column.default.is_callable or column.default.is_scalar)
    ]
    if not missing:
        return rows
    filled = []
    for row in rows:
        values = dict(row)
        for column in missing:
            default = column.default
            # Called per row: a default such as `dict` must not be shared between rows.
            values[column.name] = default.arg(None) if default.is_callable else default.arg  # type: ignore[union-attr]
        filled.append(values)
    return filled


async def _sqlite_executemany(
    db: AsyncSession,
    statement: Any,
    table: sa.Table,
    columns: Sequence[str],
    rows: Sequence[Mapping[str, Any]],
) -> None:
    """Run `statement` once per row in one DBAPI executemany, converting values as SQLAlchemy
    would (JSON to text, timestamps to UTC text) but once per column, not per row."""
    connection = await db.connection()
    dialect = connection.dialect
    compiled = statement.compile(dialect=dialect)
    wanted = set(columns)
    # (column name or None, constant, processor) per positional parameter; a type's
    # bind processor includes a type decorator's own step (UTC conversion, say).
    steps: list[tuple[str | None, Any, Any]] = []
    for key in compiled.positiontup or ():
        bind = compiled.binds[key]
        if bind.key in wanted:
            kind = table.c[bind.key].type
            steps.append((bind.key, None, kind.dialect_impl(dialect).bind_processor(dialect)))
        else:  # a constant of the statement itself (an ON CONFLICT condition's value)
            kind = bind.type
            steps.append(
                (None, bind.effective_value, kind.dialect_impl(dialect).bind_processor(dialect))
            )
    params = []
    for row in rows:
        values = []
        for name, constant, process in steps:
            value = constant if name is None else row.get(name)
            # Every processor maps None to None; most rows leave most columns empty.
            values.append(value if process is None or value is None else process(value))
        params.append(tuple(values))
    await connection.exec_driver_sql(str(compiled), params)


def _with_conflict(
    statement: Any,
    table: sa.Table,
    keys: Sequence[str] | None,
    update: Mapping[str, Any] | None,
    where: Any,
) -> Any:
    if keys is None:
        return statement
    index = [table.c[name] for name in keys]
    if update is None:
        return statement.on_conflict_do_nothing(index_elements=index)
    # The incoming row is `excluded` in both dialects; callers built their expressions
    # against `excluded(table)`, which renders the same way.
    return statement.on_conflict_do_update(index_elements=index, set_=dict(update), where=where)


def excluded(table: sa.Table) -> Any:
    """The incoming row of an ON CONFLICT DO UPDATE, for building `update_on_conflict`."""
    return sa.table("excluded", *(sa.column(c.name, c.type) for c in table.columns)).c


async def update_rows(
    db: AsyncSession, table: sa.Table, key: str, rows: Sequence[Mapping[str, Any]]
) -> None:
    """UPDATE many rows by `key` in one executemany; every row has the same columns."""
    if not rows:
        return
    names = [name for name in rows[0] if name != key]
    statement = (
        sa.update(table)
        .where(table.c[key] == sa.bindparam(f"b_{key}"))
        .values({name: sa.bindparam(f"b_{name}") for name in names})
    )
    params = [{f"b_{name}": value for name, value in row.items()} for row in rows]
    # Core executemany: one statement, many parameter sets.
    await (await db.connection()).execute(statement, params)


__all__ = ["BULK_PAGE", "excluded", "insert_rows", "update_rows"]
