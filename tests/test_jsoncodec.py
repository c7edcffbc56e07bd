"""jsoncodec: orjson's speed with the stdlib's values, and what the JSON columns store."""

import json
import math

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from session_db import crud, jsoncodec
from session_db.crud.agent_logs import validate_agent_log
from session_db.database import get_async_session
from session_db.errors import InvalidInputError
from session_db.models import AgentLogCreate, SessionCreate


def test_loads_keeps_integers_beyond_64_bits_exact() -> None:
    big = 2**70 + 1
    negative = -(10**19) - 7
    assert jsoncodec.loads(f'{{"a": {big}, "b": [{negative}]}}'.encode()) == {
        "a": big,
        "b": [negative],
    }


def test_loads_reads_ordinary_json_like_the_stdlib() -> None:
    text = '{"s": "caf\\u00e9 \\ud83d\\ude00", "f": 1.5, "i": -3, "n": null, "l": [true, {}]}'
    assert jsoncodec.loads(text.encode()) == json.loads(text)


def test_loads_hands_what_orjson_refuses_to_the_fallback_decoder() -> None:
    decoder = json.JSONDecoder(parse_constant=lambda name: f"<{name}>")
    assert jsoncodec.loads(b'{"x": NaN, "y": -Infinity}', fallback=decoder) == {
        "x": "<NaN>",
        "y": "<-Infinity>",
    }
    # A lone surrogate escape reaches the caller as the lone surrogate, to be cleaned.
    assert jsoncodec.loads(b'"\\ud800"') == "\ud800"


def test_loads_reports_text_that_is_not_json() -> None:
    with pytest.raises(json.JSONDecodeError):
        jsoncodec.loads(b'{"a": ')


def test_dumps_writes_what_orjson_cannot_through_the_stdlib() -> None:
    big = 2**80
    assert json.loads(jsoncodec.dumps({"big": big})) == {"big": big}
    deep: list = []
    for _ in range(400):  # orjson stops at 254 levels
        deep = [deep]
    assert json.loads(jsoncodec.dumps(deep)) == deep


def test_dumps_turns_keys_into_text_and_nan_into_null() -> None:
    assert json.loads(jsoncodec.dumps({2: "two", None: "nil"})) == {"2": "two", "null": "nil"}
    assert jsoncodec.dumps({"x": math.nan, "y": math.inf}) == '{"x":null,"y":null}'
    # The stdlib path (an integer past 64 bits) writes them the same way.
    assert json.loads(jsoncodec.dumps([math.nan, 2**70])) == [None, 2**70]


def test_dumps_refuses_a_value_json_cannot_hold() -> None:
    with pytest.raises(TypeError):
        jsoncodec.dumps({"x": object()})


def test_model_refuses_a_json_field_it_cannot_serialise_naming_the_field() -> None:
    with pytest.raises(InvalidInputError) as caught:
        validate_agent_log({"session_id": "0" * 32, "event_type": "X", "payload": {"x": object()}})
    assert caught.value.field == "payload"
    assert "not JSON-serialisable" in str(caught.value)


async def test_json_columns_store_nan_as_null_on_both_engines(engine: AsyncEngine) -> None:
    async with get_async_session(engine) as db:
        session = await crud.create_session(db, SessionCreate(session_slug="nan"))
        log = await crud.create_agent_log(
            db,
            AgentLogCreate(
                session_id=session.id,
                event_type="Custom",
                payload={"ratio": math.nan, "big": 2**70, "fine": 1.25},
            ),
        )
    async with get_async_session(engine) as db:
        stored = await crud.get_agent_log(db, log.id)
    assert stored.payload == {"ratio": None, "big": 2**70, "fine": 1.25}
