"""Machinery every CRUD module shares: input coercion, guarded writes, errors, paging.

Writes run inside a SAVEPOINT and only flush: the caller's session scope commits. A write
the database refuses is rolled back to the savepoint, so nothing is half-written and the
caller's transaction stays usable.
"""

import functools
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, ParamSpec, TypeVar

from pydantic import BaseModel, ValidationError
from sqlalchemy import Select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError
from sqlmodel import SQLModel, select
from sqlmodel.ext.asyncio.session import AsyncSession

from session_db.errors import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
    SessionDBError,
    check_rule,
    database_error,
    describe_integrity_error,
    first_line,
    is_transient,
)
from session_db.models import metadata
from session_db.models.base import input_error, utcnow


def upsert_insert(db: AsyncSession, table: type[SQLModel]) -> Any:
    """An INSERT for `table` in the session's dialect, which offers `on_conflict_do_*`."""
    return dialect_insert(db.get_bind().dialect.name, table)


def dialect_insert(dialect: str, table: Any) -> Any:
    """An INSERT for `table` in the dialect named `dialect` (for statements built once)."""
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)


DEFAULT_LIMIT = 100
MAX_LIMIT = 1000

InputT = TypeVar("InputT", bound=BaseModel)
RowT = TypeVar("RowT", bound=SQLModel)
P = ParamSpec("P")
R = TypeVar("R")


def coerce_input(model: type[InputT], data: InputT | Mapping[str, Any], entity: str) -> InputT:
    """Return `data` as a validated `model`, accepting the model itself or a mapping.

    Raises:
        InvalidInputError: A field is missing, of the wrong type, out of range, or not one
            of its allowed values; the error names the entity and the field.
    """
    if isinstance(data, model):
        return data
    if not isinstance(data, Mapping):
        raise InvalidInputError(
            entity, None, f"expected {model.__name__} or a mapping, got {type(data).__name__}"
        )
    try:
        return model.model_validate(dict(data))
    except ValidationError as error:
        raise validation_error(entity, error) from None


def validation_error(entity: str, error: ValidationError) -> InvalidInputError:
    """Turn pydantic's error into ours, naming the first offending field."""
    return input_error(entity, error)


def build_row(table: type[RowT], data: BaseModel, entity: str, **extra: Any) -> RowT:
    """Build a table row from validated input plus derived fields, validating the result."""
    try:
        # As a mapping, so the model's input checks see every value, `extra` included.
        return table.model_validate(dict(data), update=extra)
    except ValidationError as error:
        raise validation_error(entity, error) from None


def apply_update(row: SQLModel, changes: BaseModel, entity: str) -> set[str]:
    """Copy the fields the caller set (even to None) onto `row`; return their names."""
    values = changes.model_dump(exclude_unset=True)
    for name, value in values.items():
        nullable = name in type(row).model_fields and _is_nullable(row, name)
        if value is None and not nullable:
            raise InvalidInputError(entity, name, "cannot be set to null")
        setattr(row, name, value)
    return set(values)


def _is_nullable(row: SQLModel, name: str) -> bool:
    column = row.__table__.columns.get(name)  # type: ignore[attr-defined]
    return column is None or bool(column.nullable)


def translating_errors(
    entity: str,
) -> Callable[[Callable[P, Awaitable[R]]], Callable[P, Awaitable[R]]]:
    """Decorate a CRUD function so only session_db errors leave it."""

    def decorate(function: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
        @functools.wraps(function)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return await function(*args, **kwargs)
            except SessionDBError:
                raise
            except (DBAPIError, OSError, TimeoutError) as error:
                raise translate_database_error(error, entity) from error

        return wrapper

    return decorate


def translate_database_error(error: BaseException, entity: str) -> SessionDBError:
    """Our error for a driver or connection error met while working on `entity`.

    Transient faults (see `errors.is_transient`) become `DatabaseUnavailableError`, so a
    caller retries the whole unit of work; the rest name what the database refused.
    """
    if not is_transient(error) and isinstance(error, IntegrityError):
        return integrity_error(error, entity, None)
    if not is_transient(error) and isinstance(error, DataError):
        return InvalidInputError(entity, None, first_line(error))
    return database_error(error, entity)


def integrity_error(error: IntegrityError, entity: str, table: str | None) -> SessionDBError:
    """Translate an integrity error into ours, naming the field the same on both engines."""
    kind, constraint, columns = describe_integrity_error(error)
    if kind == "unique":
        fields = _unique_fields(table, constraint, columns)
        return ConflictError(entity, fields, f"{entity} with this {fields} already exists")
    if kind == "check":
        rule = check_rule(constraint, table) if table else constraint
        return InvalidInputError(entity, rule, f"violates the rule {constraint}")
    if kind == "not_null":
        return InvalidInputError(entity, columns, "must not be null")
    if kind == "foreign_key":
        return InvalidInputError(entity, None, "refers to a row that does not exist")
    return InvalidInputError(entity, None, first_line(error))


def _unique_fields(table: str | None, constraint: str | None, columns: str | None) -> str:
    if columns:  # SQLite: "thread_messages.thread_id, thread_messages.idx"
        return ", ".join(part.strip().split(".")[-1] for part in columns.split(","))
    if table and constraint and table in metadata.tables:
        for candidate in metadata.tables[table].constraints:
            if candidate.name == constraint:
                return ", ".join(column.name for column in candidate.columns)
    return constraint or "value"


async def save(db: AsyncSession, row: RowT, entity: str) -> RowT:
    """Insert or update `row` in a SAVEPOINT and flush it.

    Raises:
        ConflictError: A unique value is taken.
        InvalidInputError: A CHECK or NOT NULL rule refused the row.
        NotFoundError: A foreign key names a row that does not exist.
    """
    table = row.__tablename__  # type: ignore[attr-defined]
    try:
        async with db.begin_nested():
            db.add(row)
            await db.flush()
    except IntegrityError as error:
        translated = integrity_error(error, entity, table)
        if describe_integrity_error(error)[0] == "foreign_key":
            translated = await _missing_reference(db, row, entity) or translated
        raise translated from error
    return row


async def remove(db: AsyncSession, row: SQLModel, entity: str) -> None:
    """Delete `row` in a SAVEPOINT; the database cascades to what it owns.

    The cascades (ON DELETE CASCADE / SET NULL) change rows the session has loaded, so
    every loaded object is detached afterwards: they stay readable as they were, and the
    next read comes from the database instead of a stale copy.
    """
    try:
        async with db.begin_nested():
            await db.delete(row)
            await db.flush()
    except IntegrityError as error:
        raise integrity_error(error, entity, row.__tablename__) from error  # type: ignore[attr-defined]
    db.expunge_all()


async def _missing_reference(db: AsyncSession, row: SQLModel, entity: str) -> NotFoundError | None:
    """Find which foreign key of `row` points nowhere (SQLite does not say)."""
    table = row.__table__  # type: ignore[attr-defined]
    for foreign_key in sorted(table.foreign_keys, key=lambda fk: fk.parent.name):
        value = getattr(row, foreign_key.parent.name, None)
        if value is None:
            continue
        target = foreign_key.column
        found = await db.exec(select(target).where(target == value).limit(1))
        if found.first() is None:
            referred = target.table.name.removesuffix("s")
            return NotFoundError(
                referred,
                value,
                detail=f"{entity}.{foreign_key.parent.name} refers to "
                f"{referred} {value}, which does not exist",
            )
    return None


async def get_or_raise(db: AsyncSession, table: type[RowT], row_id: Any, entity: str) -> RowT:
    """Return the row with primary key `row_id`, or raise NotFoundError."""
    row = await db.get(table, row_id)
    if row is None:
        raise NotFoundError(entity, row_id)
    return row


def paginate(statement: Select[Any], limit: int, offset: int) -> Select[Any]:
    """Apply a checked LIMIT/OFFSET to `statement`.

    Raises:
        InvalidInputError: `limit` is not in 1..MAX_LIMIT or `offset` is negative.
    """
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInputError("query", "limit", f"must be between 1 and {MAX_LIMIT}")
    if offset < 0:
        raise InvalidInputError("query", "offset", "must not be negative")
    return statement.limit(limit).offset(offset)


E = TypeVar("E", bound=Any)


def enum_filter(enum: type[E], value: E | str | None, entity: str, field: str) -> E | None:
    """Check a filter value against its enum, so a typo is an error and not an empty list."""
    if value is None:
        return None
    try:
        return enum(value)
    except ValueError:
        allowed = ", ".join(member.value for member in enum)
        raise InvalidInputError(entity, field, f"{value!r} is not one of {allowed}") from None


def order_column(
    table: type[SQLModel], order_by: str, allowed: tuple[str, ...], entity: str
) -> Any:
    """Return the column to sort by, refusing names outside `allowed`."""
    if order_by not in allowed:
        raise InvalidInputError(entity, "order_by", f"must be one of {', '.join(allowed)}")
    return getattr(table, order_by)


async def create_row(
    db: AsyncSession,
    table: type[RowT],
    model: type[InputT],
    data: InputT | Mapping[str, Any],
    entity: str,
) -> RowT:
    """Validate `data` as `model`, build a `table` row from it and save it."""
    return await save(db, build_row(table, coerce_input(model, data, entity), entity), entity)


async def update_row(
    db: AsyncSession,
    table: type[RowT],
    row_id: Any,
    model: type[InputT],
    data: InputT | Mapping[str, Any],
    entity: str,
) -> RowT:
    """Apply the fields set in `data` (validated as `model`) to the row `row_id` and save it."""
    changes = coerce_input(model, data, entity)
    row = await get_or_raise(db, table, row_id, entity)
    apply_update(row, changes, entity)
    return await save(db, row, entity)


async def delete_row(db: AsyncSession, table: type[SQLModel], row_id: Any, entity: str) -> None:
    """Delete the row `row_id`, or raise NotFoundError."""
    await remove(db, await get_or_raise(db, table, row_id, entity), entity)


# Rows per multi-row statement: well under SQLite's 32,766 bound parameters.
BULK_CHUNK = 500


async def bulk_upsert(
    db: AsyncSession,
    table: type[SQLModel],
    rows: list[dict[str, Any]],
    key: list[Any],
    *,
    skip: set[str],
) -> dict[Any, uuid.UUID]:
    """Insert or update many rows, in chunks, with ON CONFLICT on `key`; flush nothing.

    Args:
        table: The table model.
        rows: Column values per row, every row with the same keys (including `id`).
        key: The columns of the unique constraint to upsert on.
        skip: Columns an update must not change (besides `id`).

    Returns:
        {plan_ref: id} for tables with a `plan_ref` column, otherwise {id: id}.
    """
    written: dict[Any, uuid.UUID] = {}
    columns = table.__table__.c  # type: ignore[attr-defined]
    now = utcnow()
    for start in range(0, len(rows), BULK_CHUNK):
        chunk = [{**row, "updated_at": now} for row in rows[start : start + BULK_CHUNK]]
        insert = upsert_insert(db, table).values(chunk)
        updated = {name: insert.excluded[name] for name in chunk[0] if name not in skip | {"id"}}
        ref = columns.plan_ref if "plan_ref" in columns else columns.id
        statement = insert.on_conflict_do_update(index_elements=key, set_=updated).returning(
            ref, columns.id
        )
        for ref_value, row_id in (await db.exec(statement)).all():
            written[ref_value] = row_id
    return written
