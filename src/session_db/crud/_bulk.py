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
import itertools
import operator
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel.ext.asyncio.session import AsyncSession

from session_db import jsoncodec
from session_db.models.base import SerialisedDict, UTCDateTime

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
    if type(value) is SerialisedDict:  # checked and serialised already
        return value.json_text
    return None if value is None else jsoncodec.dumps(value)


def _records(
    rows: Sequence[Mapping[str, Any]], columns: Sequence[str], converters: Sequence[Any]
) -> list[tuple[Any, ...]]:
    """The rows as positional tuples, each column's values converted (None stays None).

    Column by column, not value by value: the rows are read with one C-level
    `itemgetter` each and each converter runs in one comprehension, which costs a
    fraction of a Python loop over every value (a chunk is tens of thousands of them).
    """
    if not rows:
        return []
    try:
        if len(columns) == 1:
            (name,) = columns
            values: list[Any] = [[row[name] for row in rows]]
        else:
            getter = operator.itemgetter(*columns)
            values = list(zip(*[getter(row) for row in rows], strict=True))
    except KeyError:  # a row without some column: it writes NULL there
        values = [[row.get(name) for row in rows] for name in columns]
    for index, convert in enumerate(converters):
        if convert is not None:
            values[index] = [None if value is None else convert(value) for value in values[index]]
    return list(zip(*values, strict=True))


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
    records = _records(rows, columns, _copy_converters(table, columns))
    raw = await connection.get_raw_connection()
    await raw.driver_connection.copy_records_to_table(  # type: ignore[union-attr]
        staging, records=records, columns=list(columns)
    )
    return _staging_table(table, tuple(columns))


async def copy_rows(db: AsyncSession, table: sa.Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """COPY `rows` straight into `table` (PostgreSQL), every row with the same keys.

    No conflict handling: for rows the caller knows to be new. A refused row fails the
    whole COPY with the driver's own error (run it in a SAVEPOINT to carry on after).
    """
    if not rows:
        return
    rows = _with_python_defaults(table, rows)
    columns = list(rows[0].keys())
    connection = await db.connection()
    raw = await connection.get_raw_connection()
    for start in range(0, len(rows), BULK_PAGE):
        page = rows[start : start + BULK_PAGE]
        records = _records(page, columns, _copy_converters(table, columns))
        await raw.driver_connection.copy_records_to_table(  # type: ignore[union-attr]
            table.name, records=records, columns=columns
        )


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
            plan = _sqlite_plan(
                dialect, table, columns, skip_conflicts_on, update_on_conflict, conflict_where
            )
            await _sqlite_executemany(db, plan, page)
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


def _sqlite_converter(kind: sa.types.TypeEngine[Any], dialect: Any) -> Any:
    """How a value of this column type becomes SQLite's stored form (None: as it is).

    SQLAlchemy's own bind processor, except for the two types every hot row carries,
    done here in one step with the same result: our UTC timestamps (SQLAlchemy goes
    through the TypeDecorator and a %-format) and JSON containers (the engine's
    serializer, without the wrapper's checks for its NULL markers).
    """
    process = kind.dialect_impl(dialect).bind_processor(dialect)
    if process is None:
        return None
    if isinstance(kind, UTCDateTime):
        return functools.partial(_sqlite_utc_text, process)
    if isinstance(kind, sa.JSON):
        serializer = getattr(dialect, "_json_serializer", None)
        if serializer is not None:
            return functools.partial(_sqlite_json_text, serializer, process)
    return process


def _sqlite_utc_text(process: Any, value: Any) -> Any:
    """A timestamp as `UTCDateTime` stores it on SQLite: the UTC wall time as text."""
    if type(value) is not datetime:
        return process(value)  # a subclass or not a datetime: SQLAlchemy's way (or error)
    return _utc_text(value)


@functools.lru_cache(maxsize=4096)
def _utc_text(value: datetime) -> str:
    # Cached: a batch writes the same instants again and again (its one creation time,
    # an event's time as its tool call's start). Equal datetimes are the same instant,
    # whatever their zone, so they share one text; a naive one never equals an aware one.
    if value.tzinfo is None:
        return value.isoformat(" ", "microseconds")
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    # SQLAlchemy's SQLite DATETIME format is the ISO text without its "+00:00".
    return value.isoformat(" ", "microseconds")[:-6]


def _sqlite_json_text(serializer: Any, process: Any, value: Any) -> Any:
    kind = type(value)
    if kind is SerialisedDict and serializer is jsoncodec.dumps:
        return value.json_text  # checked and serialised already, by the same serialiser
    return serializer(value) if kind is dict or kind is list else process(value)


async def insert_rows_counted(
    db: AsyncSession,
    table: sa.Table,
    rows: Sequence[Mapping[str, Any]],
    *,
    skip_conflicts_on: Sequence[str],
) -> int:
    """Insert `rows` on SQLite, skipping conflicts (DO NOTHING); return how many went in.

    The count is what lets a caller skip looking up which rows went in when all did:
    SQLite returns no rows from an executemany, but it counts the rows each one changed.
    """
    if not rows:
        return 0
    rows = _with_python_defaults(table, rows)
    columns = list(rows[0].keys())
    plan = _sqlite_plan(db.get_bind().dialect, table, columns, skip_conflicts_on, None, None)
    inserted = 0
    for start in range(0, len(rows), BULK_PAGE):
        page = rows[start : start + BULK_PAGE]
        inserted += await _sqlite_executemany(db, plan, page)
    return inserted


@dataclass(frozen=True)
class _SqlitePlan:
    """A compiled one-row INSERT and how a row's values become its parameters."""

    sql: str
    names: tuple[str, ...]  # the row columns the statement's parameters take, in order
    order: tuple[tuple[str, Any], ...]  # per parameter: ("column", name) or ("constant", value)
    converters: tuple[Any, ...]  # per name: to SQLite's stored form, or None


# Compiled plans by what the statement is built from. The dialect and the conflict
# clause's objects are held in the entry, so their ids cannot be reused while it lives.
# Callers build those once (a module-level cache), so the plans stay few; the bound is
# for any caller that does not.
_PLANS: dict[tuple[Any, ...], tuple[Any, Any, Any, _SqlitePlan]] = {}
_MAX_PLANS = 64


def _sqlite_plan(
    dialect: Any,
    table: sa.Table,
    columns: Sequence[str],
    keys: Sequence[str] | None,
    update: Mapping[str, Any] | None,
    where: Any,
) -> _SqlitePlan:
    """The plan of `INSERT INTO table (columns) VALUES (…)` with its conflict clause, compiled
    once per shape: compiling costs more than writing a small page of rows."""
    key = (id(dialect), table, tuple(columns), None if keys is None else tuple(keys))
    key += (id(update), id(where))
    found = _PLANS.get(key)
    if found is not None and found[0] is dialect and found[1] is update and found[2] is where:
        return found[3]
    statement = sqlite.insert(table).values({name: sa.bindparam(name) for name in columns})
    statement = _with_conflict(statement, table, keys, update, where)
    plan = _compile_sqlite_plan(dialect, statement, table, columns)
    if len(_PLANS) >= _MAX_PLANS:
        _PLANS.pop(next(iter(_PLANS)))
    _PLANS[key] = (dialect, update, where, plan)
    return plan


def _compile_sqlite_plan(
    dialect: Any, statement: Any, table: sa.Table, columns: Sequence[str]
) -> _SqlitePlan:
    compiled = statement.compile(dialect=dialect)
    wanted = set(columns)
    names: list[str] = []  # the row columns the statement's parameters take, in order
    order: list[tuple[str, Any]] = []  # per parameter: ("column", name) or ("constant", value)
    for key in compiled.positiontup or ():
        bind = compiled.binds[key]
        if bind.key in wanted:
            if bind.key not in names:
                names.append(bind.key)
            order.append(("column", bind.key))
        else:  # a constant of the statement itself (an ON CONFLICT condition's value)
            process = bind.type.dialect_impl(dialect).bind_processor(dialect)
            value = bind.effective_value
            order.append(
                ("constant", value if process is None or value is None else process(value))
            )
    converters = [_sqlite_converter(table.c[name].type, dialect) for name in names]
    return _SqlitePlan(str(compiled), tuple(names), tuple(order), tuple(converters))


async def _sqlite_executemany(
    db: AsyncSession, plan: _SqlitePlan, rows: Sequence[Mapping[str, Any]]
) -> int:
    """Run a plan's statement once per row in one DBAPI executemany, converting values as
    SQLAlchemy would (JSON to text, timestamps to UTC text) but column by column.

    Returns:
        The rows the statement changed (SQLite counts every row of an executemany).
    """
    connection = await db.connection()
    sql, names, order = plan.sql, list(plan.names), list(plan.order)
    records = _records(rows, names, plan.converters)
    constants = [item for kind, item in order if kind == "constant"]
    row_marks = "(" + ", ".join("?" * len(names)) + ")"
    if (
        len(records) > 1
        and order[: len(names)] == [("column", name) for name in names]
        and all(kind == "constant" for kind, _ in order[len(names) :])
        and sql.count(row_marks) == 1
    ):
        return await _sqlite_multirow(connection, sql, row_marks, records, constants)
    if [name for kind, name in order if kind == "column"] != names or len(order) != len(names):
        # Constants, or a column bound twice: lay the parameters out in the statement's
        # order, the constants appended to each record and picked by one itemgetter.
        position = {name: index for index, name in enumerate(names)}
        constants = tuple(item for kind, item in order if kind == "constant")
        picks, next_constant = [], len(names)
        for kind, item in order:
            if kind == "column":
                picks.append(position[item])
            else:
                picks.append(next_constant)
                next_constant += 1
        pick = operator.itemgetter(*picks)
        records = [pick(record + constants) for record in records]
        if len(picks) == 1:
            records = [(value,) for value in records]
    result = await connection.exec_driver_sql(sql, records)
    return result.rowcount


# The most parameters one SQLite statement takes: 32,766 since SQLite 3.32, 999 before.
SQLITE_MAX_PARAMETERS = 32766 if sqlite3.sqlite_version_info >= (3, 32) else 999
# The most rows one multi-row statement takes: a power of two, see `_sqlite_multirow`.
SQLITE_ROWS_PER_STATEMENT = 256


async def _sqlite_multirow(
    connection: Any,
    sql: str,
    row_marks: str,
    records: Sequence[tuple[Any, ...]],
    constants: Sequence[Any],
) -> int:
    """Run a one-row INSERT as multi-row VALUES statements; return the rows changed.

    Many rows a statement, not one step per row: SQLite then does their work in one call
    that releases the GIL, and rows bind with less overhead than an executemany's. Every
    statement holds a power of two of rows (256, then what is left in halves), so a
    table is written by a handful of distinct statements: the driver keeps each one it
    prepared, and a statement per row count would fill that cache with large ones. The
    statement's constants (an ON CONFLICT condition's) follow its VALUES, once.
    """
    fits = (SQLITE_MAX_PARAMETERS - len(constants)) // len(records[0])
    size = SQLITE_ROWS_PER_STATEMENT
    changed, start = 0, 0
    while start < len(records):
        while size > 1 and (size > fits or size > len(records) - start):
            size //= 2
        part = records[start : start + size]
        statement = sql.replace(row_marks, ", ".join([row_marks] * len(part)))
        parameters = (*itertools.chain.from_iterable(part), *constants)
        result = await connection.exec_driver_sql(statement, parameters)
        changed += result.rowcount
        start += len(part)
    return changed


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


__all__ = [
    "BULK_PAGE",
    "COPY_MIN_ROWS",
    "copy_rows",
    "excluded",
    "insert_rows",
    "insert_rows_counted",
    "update_rows",
]
