"""Shared column types, the metadata with its naming convention, and the model base class.

Everything here behaves the same on PostgreSQL and SQLite, so the domain modules never
branch on the engine.
"""

import functools
import os
import re
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from pydantic import ConfigDict, ValidationError, model_validator
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from session_db import jsoncodec
from session_db.errors import InvalidInputError

# Set before the first migration and never changed: every constraint and index name in
# the migrations derives from it, and renaming one later needs a migration of its own.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Our own registry, so importing session_db never changes the process-wide SQLModel.metadata
# that an application's own models may live in.
metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)
mapper_registry = registry(metadata=metadata)

# Input limits, the same on both engines: one text value, and one JSON value serialised.
MAX_TEXT_CHARS = 1_000_000
MAX_JSON_CHARS = 8_000_000
# PostgreSQL rejects NUL in text and JSON; SQLite would keep it. So that both engines
# store the same thing and no event is refused for it, NUL becomes U+FFFD everywhere.
NUL = "\x00"
NUL_REPLACEMENT = "\ufffd"

MONEY_SCALE = 9
_MONEY_QUANTUM = Decimal(1).scaleb(-MONEY_SCALE)


def utcnow() -> datetime:
    """Return the current time as an aware UTC datetime."""
    return datetime.now(UTC)


def new_id() -> uuid.UUID:
    """Return a fresh primary key: a version 7 UUID (RFC 9562), ordered by creation time.

    Its first 48 bits are the Unix time in milliseconds and the other 74 are random, so
    keys made later sort later: a table's primary-key index grows at its end instead of
    at random pages, which keeps bulk inserts fast as tables grow.
    """
    value = (time.time_ns() // 1_000_000) << 80 | int.from_bytes(os.urandom(10), "big")
    value = (value & ~(0xF << 76)) | (0x7 << 76)  # version 7
    value = (value & ~(0x3 << 62)) | (0x2 << 62)  # the RFC 4122 variant
    return uuid.UUID(int=value)


def new_ids(count: int) -> list[uuid.UUID]:
    """Return `count` fresh primary keys, as `new_id` makes them, in the order made.

    For bulk writers: one read of the random source for all of them, not one each.
    """
    millis = time.time_ns() // 1_000_000
    randomness = os.urandom(10 * count)
    ids = []
    for index in range(count):
        value = millis << 80 | int.from_bytes(randomness[index * 10 : index * 10 + 10], "big")
        value = (value & _VERSION_CLEAR) | _VERSION_7_VARIANT
        ids.append(uuid.UUID(int=value))
    return ids


# The version (7) and variant (RFC 4122) bits of `new_ids`, cleared and set in one step.
_VERSION_CLEAR = ~(0xF << 76) & ~(0x3 << 62)
_VERSION_7_VARIANT = 0x7 << 76 | 0x2 << 62


class UTCDateTime(sa.TypeDecorator[datetime]):
    """An aware UTC timestamp on both engines.

    PostgreSQL stores `timestamptz`; SQLite stores the UTC wall time as text, which sorts
    correctly because every value is converted to UTC first. A naive datetime is taken to
    be UTC already (the documented normalisation, matching `datetime.utcnow()` callers).
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime, got {type(value).__name__}")
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Money(sa.TypeDecorator[Decimal]):
    """US dollars as an exact Decimal with nine decimal places.

    PostgreSQL stores NUMERIC(18, 9). SQLite has no decimal type, so the value travels as
    a float and is re-quantised on the way out; nine places survive that round trip for any
    amount below a billion dollars.
    """

    impl = sa.Numeric(18, MONEY_SCALE)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name == "sqlite":
            # asdecimal=False: we do the Decimal conversion ourselves, without SQLAlchemy's
            # "SQLite does not support Decimal natively" warning.
            return dialect.type_descriptor(sa.Numeric(18, MONEY_SCALE, asdecimal=False))
        return dialect.type_descriptor(sa.Numeric(18, MONEY_SCALE))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        amount = to_money(value)
        return float(amount) if dialect.name == "sqlite" else amount

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        return None if value is None else to_money(value)


def to_money(value: Decimal | float | int | str) -> Decimal:
    """Return `value` as a Decimal quantised to the stored precision."""
    amount = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    return amount.quantize(_MONEY_QUANTUM)


# JSON everywhere, JSONB on PostgreSQL (indexable, compact, de-duplicated keys).
# A Python None is SQL NULL, not the JSON value `null`: "no value" reads and filters the
# same whichever writer stored it (the ORM, a bulk executemany or COPY).
JSONType = sa.JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")


def check_in(column: str, values: type[StrEnum]) -> sa.CheckConstraint:
    """Return a named CHECK that `column` holds one of the enum's values (or NULL)."""
    allowed = ", ".join(f"'{member.value}'" for member in values)
    return sa.CheckConstraint(f"{column} IN ({allowed})", name=f"{column}_valid")


def check_range(column: str, low: float, high: float | None = None) -> sa.CheckConstraint:
    """Return a named CHECK that `column` lies in [low, high] (or is at least `low`)."""
    if high is None:
        return sa.CheckConstraint(f"{column} >= {low}", name=f"{column}_min")
    return sa.CheckConstraint(f"{column} BETWEEN {low} AND {high}", name=f"{column}_range")


def scrub_nul(value: Any) -> Any:
    """Return `value` with every NUL character in strings and keys replaced by U+FFFD."""
    if isinstance(value, str):
        return value.replace(NUL, NUL_REPLACEMENT) if NUL in value else value
    if isinstance(value, dict):
        return {scrub_nul(key): scrub_nul(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [scrub_nul(item) for item in value]
    return value


# The range of a 64-bit signed integer, what both engines store (BIGINT, SQLite INTEGER).
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


class SerialisedDict(dict[str, Any]):
    """A checked JSON object that carries its serialised text, so a bulk writer that has
    checked it need not serialise it again. Treat it as read-only: the text is not
    updated by changes to the dict."""

    __slots__ = ("json_text",)

    def __init__(self, value: dict[str, Any], json_text: str) -> None:
        super().__init__(value)
        self.json_text = json_text


def normalise_object(value: dict[str, Any]) -> SerialisedDict:
    """`normalise_value` of a JSON object, returned with its serialised text.

    Raises:
        ValueError: As `normalise_value`.
    """
    return SerialisedDict(*_checked_json(value))


def _checked_json(value: Any) -> tuple[Any, str]:
    """`value` with NUL replaced, and its serialised text; refused when over the limit."""
    try:
        text = jsoncodec.dumps(value)
    except TypeError as error:  # raised here, it would only surface at the flush
        raise ValueError(f"not JSON-serialisable ({error})") from None
    # The serialised form escapes every NUL (in keys and values alike) as \u0000,
    # so only a value that shows one needs the walk that replaces them.
    if "\\u0000" in text:
        value = scrub_nul(value)
        text = jsoncodec.dumps(value)
    if len(text) > MAX_JSON_CHARS:
        raise ValueError(f"JSON of {len(text)} characters exceeds {MAX_JSON_CHARS}")
    return value, text


def normalise_value(value: Any) -> Any:
    """Return `value` with NUL characters replaced; refuse oversized text or JSON.

    Raises:
        ValueError: The text or the serialised JSON is over its limit, or the value is
            not JSON-serialisable.
    """
    if isinstance(value, str):
        if len(value) > MAX_TEXT_CHARS:
            raise ValueError(f"text of {len(value)} characters exceeds {MAX_TEXT_CHARS}")
        return scrub_nul(value)
    if isinstance(value, int) and not INT64_MIN <= value <= INT64_MAX:
        # Refused here, the same on both engines (SQLite's driver would raise
        # OverflowError, PostgreSQL a numeric-range error).
        raise ValueError("integer out of the 64-bit range both engines store")
    if isinstance(value, dict | list):
        value, _ = _checked_json(value)
    return value


class Base(SQLModel, registry=mapper_registry):
    """Base of every session_db model, table or not; tables land in `metadata`."""

    @model_validator(mode="before")
    @classmethod
    def _normalise_and_limit(cls, data: Any) -> Any:
        """Apply `normalise_value` to every input value, naming the field it refuses.

        One pass over the input rather than a validator per field: a per-field Python
        validator cost more than the rest of a model's validation together. Only a
        mapping is checked; a model instance's values were checked when it was built.
        """
        if not isinstance(data, dict):
            return data
        cleaned = data
        for name, value in data.items():
            if not isinstance(value, str | dict | list | int):
                continue
            try:
                normalised = normalise_value(value)
            except ValueError as error:
                raise ValidationError.from_exception_data(
                    cls.__name__,
                    [
                        {
                            "type": "value_error",
                            "loc": (name,),
                            "input": value,
                            "ctx": {"error": error},
                        }
                    ],
                ) from None
            if normalised is not value:
                if cleaned is data:  # copied only when a value changes
                    cleaned = dict(data)
                cleaned[name] = normalised
        return cleaned


def input_error(entity: str, error: ValidationError) -> InvalidInputError:
    """Our error for pydantic's, naming one offending field: an unknown one first.

    A misspelt field usually explains the rest (`agnet_type` also leaves `agent_type`
    unset), so it is the one reported.
    """
    problems = error.errors()
    first = next((p for p in problems if p["type"] == "extra_forbidden"), problems[0])
    field = ".".join(str(part) for part in first["loc"]) or None
    if first["type"] == "extra_forbidden":
        return InvalidInputError(entity, field, "unknown field (misspelt, or not this input's)")
    return InvalidInputError(entity, field, first["msg"])


def _entity_of(model: type) -> str:
    """`SessionRelationshipCreate` -> "session_relationship", as the CRUD layer names it."""
    name = re.sub(r"(Create|Update)$", "", model.__name__)
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


class InputModel(Base):
    """Base of every `XCreate` / `XUpdate`: a field name it does not know is refused.

    A misspelt field (`titel=`) would otherwise be dropped, and its value lost without a
    word. Building one with a bad value raises `InvalidInputError` naming the field.
    """

    model_config = ConfigDict(extra="forbid")  # type: ignore[assignment]

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as error:
            raise input_error(_entity_of(type(self)), error) from None


@functools.cache
def column_length(table: type[SQLModel], column: str) -> int | None:
    """The length of a table's text column (None for unbounded text), from its schema."""
    return getattr(table.__table__.c[column].type, "length", None)  # type: ignore[attr-defined]


def clip(table: type[SQLModel], column: str, value: str | None) -> str | None:
    """`value` cut to fit the column: for ids and names taken from an agent's payload,
    which keeps them whole (a documented normalisation, not a refusal)."""
    if value is None:
        return None
    length = column_length(table, column)
    return value if length is None else value[:length]


def id_field() -> Any:
    """Return the UUID primary-key field every table uses."""
    return Field(default_factory=new_id, primary_key=True)


def created_at_field() -> Any:
    """Return a `created_at` field set by Python and, for raw SQL inserts, by the server."""
    return Field(
        default_factory=utcnow,
        sa_type=UTCDateTime,
        sa_column_kwargs={"server_default": sa.func.now(), "nullable": False},
    )


def updated_at_field() -> Any:
    """Return an `updated_at` field that the ORM refreshes on every UPDATE."""
    return Field(
        default_factory=utcnow,
        sa_type=UTCDateTime,
        sa_column_kwargs={"server_default": sa.func.now(), "onupdate": utcnow, "nullable": False},
    )


def timestamp_field(*, index: bool = False) -> Any:
    """Return an optional aware-UTC timestamp field."""
    return Field(default=None, sa_type=UTCDateTime, index=index)


def json_field(*, default_factory: Any = dict) -> Any:
    """Return a JSON field (JSONB on PostgreSQL) defaulting to an empty container."""
    return Field(default_factory=default_factory, sa_type=JSONType)


def optional_json_field() -> Any:
    """Return a nullable JSON field."""
    return Field(default=None, sa_type=JSONType)


def money_field() -> Any:
    """Return a non-negative dollar amount field defaulting to zero."""
    return Field(
        default=Decimal(0),
        ge=0,
        sa_type=Money,
        sa_column_kwargs={"server_default": "0", "nullable": False},
    )


def count_field(*, default: int = 0) -> Any:
    """Return a non-negative integer counter field."""
    return Field(default=default, ge=0, sa_column_kwargs={"server_default": str(default)})


# The four token counts every usage-bearing table keeps, in the order Anthropic reports them.
TOKEN_COLUMNS = ("input_tokens", "output_tokens", "cache_creation_tokens", "cache_read_tokens")


def token_field() -> Any:
    """Return a non-negative token count (BIGINT: long sessions pass two billion)."""
    return Field(default=0, ge=0, sa_type=sa.BigInteger, sa_column_kwargs={"server_default": "0"})


def text_field(*, nullable: bool = True) -> Any:
    """Return an unbounded text field."""
    return Field(default=None if nullable else ..., sa_type=sa.Text)


def enum_field(values: type[StrEnum], default: StrEnum | None, *, length: int = 32) -> Any:
    """Return a string field holding one of `values`; the table adds the CHECK."""
    kwargs: dict[str, Any] = {}
    if default is not None:
        kwargs["server_default"] = default.value
    return Field(default=default, sa_type=sa.String(length), sa_column_kwargs=kwargs)
