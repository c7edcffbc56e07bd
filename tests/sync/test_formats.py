"""Reading the files session folders hold: state.json v1 and v2, plan.json, the schemas.

No database here: these are the reader's rules, strict only where it matters. The
folder-level consequences (rows, warnings on the sync state) are in test_sync_shapes.py.
"""

import json
from datetime import UTC, datetime

import pytest

from session_db.sync.formats import (
    MAX_DEPTH,
    STATE_V2_SCHEMA,
    FormatError,
    Phase,
    Status,
    UnrecognisedFileError,
    json_schemas,
    load_json,
    parse_plan,
    parse_state,
    plan_tasks,
    write_json_schemas,
)

V2 = {
    "$schema": "https://example.invalid/any-v2-marker",
    "session_id": "2026-02-16_db-tracking_j3ehqn",
    "topic": "Database tracking",
    "description": "Do we need it?",
    "session_type": "full",
    "created_at": "2026-02-16T10:00:00Z",
    "updated_at": "2026-02-16T12:30:00+00:00",
    "current_phase": "build",
    "status": "active",
    "phase_history": {
        "spec_started_at": "2026-02-16T10:00:00Z",
        "spec_completed_at": "2026-02-16T11:00:00Z",
        "plan_started_at": "2026-02-16T11:00:00Z",
        "plan_completed_at": None,
    },
    "build_progress": {
        "checkpoints_total": 3,
        "checkpoints_completed": [1, "2", 2],
        "current_checkpoint": 3,
    },
    "git": {"branch": "feat/db", "worktree": None, "base_branch": "main"},
    "commits": [{"sha": "abc1234", "message": "m", "checkpoint": 1, "created_at": None}],
    "artifacts": {"spec": "spec.md", "plan": "plan.json", "plan_readable": "plan.md"},
    "prior_session": None,
    "plan_state": {"approved": True},
    "reviewer_notes": "kept though unmapped",
}


def test_version_2_is_read_with_both_timestamp_spellings_and_nulls() -> None:
    state = parse_state(V2)
    assert (state.version, state.phase, state.status) == (2, Phase.build, Status.active)
    assert state.created_at == datetime(2026, 2, 16, 10, tzinfo=UTC)
    assert state.updated_at == datetime(2026, 2, 16, 12, 30, tzinfo=UTC)
    assert state.phase_history["plan_completed_at"] is None
    assert state.phase_history["docs_started_at"] is None
    # Repeated ids count once; numbers and strings name the same checkpoint.
    assert (state.checkpoints_total, state.checkpoints_completed) == (3, 2)
    assert state.raw["reviewer_notes"] == "kept though unmapped"
    assert state.worktree is None and state.warnings == []


@pytest.mark.parametrize(
    ("raw", "phase"),
    [
        # Finalized spec, plan started: the current phase is plan.
        (
            {
                "session_id": "a",
                "phases": {
                    "spec": {"status": "finalized", "finalized_at": "2026-01-02T00:00:00Z"},
                    "plan": {"status": "in_progress", "started_at": "2026-01-02T00:00:00Z"},
                },
                "granularity": "fine",
                "goals": ["g"],
            },
            Phase.plan,
        ),
        # completed_at instead of finalized_at, and no other keys at all.
        (
            {
                "session_id": "b",
                "phases": {
                    name: {"completed_at": "2026-01-03T00:00:00+00:00"}
                    for name in ("spec", "plan", "build", "docs")
                },
            },
            Phase.complete,
        ),
        # An explicit current_phase wins; phases missing entirely.
        ({"session_id": "c", "current_phase": "docs"}, Phase.docs),
    ],
)
def test_version_1_variations_are_read(raw: dict, phase: Phase) -> None:
    state = parse_state(raw)
    assert state.version == 1 and state.phase == phase
    assert state.status == (Status.complete if phase == Phase.complete else Status.active)
    assert state.session_type is None and state.raw == raw


def test_version_1_phase_times_become_history() -> None:
    state = parse_state(
        {
            "session_id": "a",
            "parent_session": "p",
            "phases": {"spec": {"started_at": "2026-01-01T00:00:00Z", "finalized_at": None}},
        }
    )
    assert state.phase_history["spec_started_at"] == datetime(2026, 1, 1, tzinfo=UTC)
    assert state.phase_history["spec_completed_at"] is None
    assert state.parent_session == "p"


@pytest.mark.parametrize(
    "raw",
    [[1, 2], "state", {"name": "vite", "version": "1.0"}, {"session_id": "x"}],
    ids=["list", "string", "package-json", "id-only"],
)
def test_another_tools_file_is_unrecognised(raw: object) -> None:
    with pytest.raises(UnrecognisedFileError, match="not a session state"):
        parse_state(raw)


@pytest.mark.parametrize(
    ("change", "where", "read"),
    [
        ({"current_phase": "shipping"}, "current_phase", lambda s: s.phase == Phase.plan),
        ({"status": "done"}, "status", lambda s: s.status == Status.active),
        (
            {"build_progress": {"checkpoints_total": -1, "checkpoints_completed": [1]}},
            "build_progress.checkpoints_total",
            lambda s: (s.checkpoints_total, s.checkpoints_completed) == (0, 1),
        ),
        (
            {"build_progress": {"checkpoints_total": 2**40}},  # past the 32-bit column
            "build_progress.checkpoints_total",
            lambda s: s.checkpoints_total == 0,
        ),
        (
            {"build_progress": {"checkpoints_completed": [1, {"id": 2}, 3]}},
            "build_progress.checkpoints_completed.1",
            lambda s: s.checkpoints_completed == 2,
        ),
        ({"build_progress": "three"}, "build_progress", lambda s: s.checkpoints_total == 0),
        ({"created_at": "yesterday"}, "created_at", lambda s: s.created_at is None),
        ({"topic": ["a", "list"]}, "topic", lambda s: s.topic is None),
        ({"session_type": "epic"}, "session_type", lambda s: s.session_type is None),
        ({"parent_session": "../elsewhere"}, "parent_session", lambda s: not s.parent_session),
        ({"prior_session": "a/b"}, "prior_session", lambda s: s.prior_session is None),
        ({"git": {"worktree": 7}}, "git.worktree", lambda s: s.worktree is None),
        (
            {"agents": [{"agent_type": "build", "status": "sleeping"}, {"model": "m"}]},
            "agents.0.status",
            lambda s: [(a.agent_type, a.status) for a in s.agents] == [("build", "pending")],
        ),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_a_mapped_value_that_cannot_be_used_is_ignored_with_a_warning_naming_it(
    change: dict, where: str, read
) -> None:
    state = parse_state({**V2, **change})
    assert any(warning.startswith(f"state.json: {where}:") for warning in state.warnings)
    assert all("ignored" in warning for warning in state.warnings)
    assert read(state), state
    assert state.raw == {**V2, **change}  # the file itself is kept as it is
    assert state.topic == (None if "topic" in change else V2["topic"])  # the rest is read


def test_unmapped_keys_of_any_type_are_kept_without_a_warning() -> None:
    odd = {
        "goals": {"high_level": ["a"], "detailed": []},
        "key_decisions": [{"title": "t", "rationale": "r", "date": "2026-02-16"}],
        "open_questions": ["why?"],
        "plan_state": None,
        "commits": [{"message": "no sha"}],  # the mirror does not read commits
        "artifacts": None,
        "big": 2**62,
        "nested": [[[{"deep": True}]]],
    }
    state = parse_state({**V2, **odd})
    assert state.warnings == []
    assert {key: state.raw[key] for key in odd} == odd


@pytest.mark.parametrize(
    ("change", "read"),
    [
        ({"build_progress": {"checkpoints_total": None}}, lambda s: s.checkpoints_total == 0),
        (
            {"build_progress": {"checkpoints_total": "4", "checkpoints_completed": None}},
            lambda s: (s.checkpoints_total, s.checkpoints_completed) == (4, 0),
        ),
        (
            {"build_progress": {"current_checkpoint": None, "checkpoints_completed": [1.0, "1"]}},
            lambda s: s.checkpoints_completed == 1,
        ),
        (
            {"current_phase": "Build", "status": " PAUSED "},
            lambda s: (s.phase, s.status) == ("build", "paused"),
        ),
        ({"phase_history": None, "git": None, "agents": None}, lambda s: s.agents == []),
        ({"description": None}, lambda s: s.description is None),
        ({"session_id": 20260216}, lambda s: s.session_id == "20260216"),
    ],
)
def test_values_whose_meaning_is_clear_are_normalised_silently(change: dict, read) -> None:
    state = parse_state({**V2, **change})
    assert state.warnings == []
    assert read(state), state


@pytest.mark.parametrize(
    "raw",
    [
        {"$schema": "x"},
        {"$schema": "x", "session_id": ""},
        {"$schema": "x", "session_id": {"id": 1}},
        {"session_id": None, "phases": {}},
    ],
    ids=["missing", "empty", "object", "null"],
)
def test_a_state_without_a_usable_session_id_is_refused(raw: dict) -> None:
    with pytest.raises(FormatError, match="no usable identity") as caught:
        parse_state(raw)
    assert not isinstance(caught.value, UnrecognisedFileError)


def test_a_version_2_file_without_its_marker_is_still_read_as_version_2() -> None:
    # A file saved through a model without a `$schema` field has none.
    unmarked = {key: value for key, value in V2.items() if key != "$schema"}
    state = parse_state(unmarked)
    assert (state.version, state.phase, state.checkpoints_total) == (2, Phase.build, 3)


def test_undecodable_bytes_say_where_they_broke() -> None:
    whole = json.dumps(V2).encode()
    with pytest.raises(FormatError, match=r"not valid JSON \(line 1"):
        load_json(whole[: len(whole) // 2], "state.json")
    with pytest.raises(FormatError, match="not UTF-8"):
        load_json(b'{"a": "\xff"}', "state.json")
    assert load_json(b"\xef\xbb\xbf" + whole, "state.json") == V2  # a byte-order mark


def nested(levels: int) -> bytes:
    """A JSON object whose value `levels` deep (counting the object) is an empty list."""
    return b'{"a": ' + b"[" * (levels - 1) + b"]" * (levels - 1) + b"}"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (b'{"n": NaN}', "holds NaN, which is not a JSON number"),
        (b'{"n": [1, Infinity]}', "holds Infinity"),
        (b'{"n": -Infinity}', "holds -Infinity"),
        (b'{"n": 1e999}', "holds the number 1e999, too large"),
        (b'{"n": 18446744073709551616}', "integer 18446744073709551616, beyond the 64-bit"),
        (b'{"n": -9223372036854775809}', "beyond the 64-bit range"),
        (b'{"n": 1' + b"0" * 400 + b"}", "(401 digits), beyond the 64-bit"),
        (nested(MAX_DEPTH + 1), f"nested more than {MAX_DEPTH} levels deep"),
        (nested(100_000), f"nested more than {MAX_DEPTH} levels deep"),  # a RecursionError
    ],
    ids=[
        "nan",
        "infinity",
        "minus-infinity",
        "overflow",
        "2**64",
        "-2**63-1",
        "400-digits",
        "too-deep",
        "far-too-deep",
    ],
)
def test_values_no_database_can_store_refuse_the_file_with_the_reason(
    text: bytes, reason: str
) -> None:
    with pytest.raises(FormatError) as caught:
        load_json(text, "state.json")
    assert str(caught.value).startswith("state.json ") and reason in str(caught.value)


def test_the_largest_storable_values_are_read() -> None:
    edges = load_json(b'{"n": [9223372036854775807, -9223372036854775808, 1.5e308]}', "x")
    assert edges == {"n": [2**63 - 1, -(2**63), 1.5e308]}
    deepest = load_json(nested(MAX_DEPTH), "x")
    for _ in range(MAX_DEPTH - 1):
        deepest = deepest["a"] if isinstance(deepest, dict) else deepest[0] if deepest else []
    assert deepest == []
    assert load_json(b'{"t": "NaN and Infinity are fine as text"}', "x")["t"].startswith("NaN")


PLAN = {
    "session_id": "s",
    "status": "approved",
    "checkpoints": [
        {
            "id": 1,
            "title": "Storage",
            "goal": "tables",
            "prerequisites": [],
            "status": "pending",
            "task_groups": [
                {
                    "id": "1.1",
                    "title": "Schema",
                    "objective": "o",
                    "status": "pending",
                    "tasks": [
                        {"id": "1.1.1", "title": "models", "depends_on": []},
                        {
                            "id": "1.1.2",
                            "title": "migration",
                            "depends_on": ["1.1.1"],
                            "file_path": "migrations/0001.py",
                            "context": {"why": "schema"},
                            "actions": ["write", "test"],
                            "estimate": "2h",
                        },
                    ],
                }
            ],
        }
    ],
}


def test_a_plan_lists_its_tasks_in_order_and_keeps_unknown_keys() -> None:
    plan = parse_plan(PLAN)
    assert [task.id for _, _, task in plan_tasks(plan)] == ["1.1.1", "1.1.2"]
    migration = plan_tasks(plan)[1][2]
    assert migration.model_extra == {
        "file_path": "migrations/0001.py",
        "context": {"why": "schema"},
        "actions": ["write", "test"],
        "estimate": "2h",
    }
    assert plan.warnings == []


OLDER_PLAN = {
    "$schema": "plan v1",
    "session_id": "s",
    "checkpoints": [
        {
            "id": 1,
            "title": "Storage",
            "tranches": [
                {
                    "id": "1.1",
                    "goal": "a schema",
                    "tasks": [
                        {
                            "id": "1.1.1",
                            "title": "models",
                            "action": "write the models",
                            "subtasks": [{"id": "1.1.1.1", "title": "session"}, "and agent"],
                        }
                    ],
                }
            ],
        }
    ],
}


def test_an_older_plans_tranches_subtasks_and_action_text_are_read() -> None:
    plan = parse_plan(OLDER_PLAN)
    [(checkpoint, group, task)] = plan_tasks(plan)
    assert (checkpoint.id, group.id, group.goal, task.id) == ("1", "1.1", "a schema", "1.1.1")
    assert checkpoint.groups == checkpoint.tranches and checkpoint.task_groups == []
    assert task.model_extra == {
        "action": "write the models",
        "subtasks": [{"id": "1.1.1.1", "title": "session"}, "and agent"],
    }
    assert plan.warnings == []


def tasks_of(plan) -> dict[str, list[str]]:
    return {task.id: task.depends_on for _, _, task in plan_tasks(plan)}


@pytest.mark.parametrize(
    ("mutate", "warning", "tasks"),
    [
        (
            lambda p: p["checkpoints"][0]["task_groups"][0]["tasks"].append(
                {"id": "1.1.1", "title": "again"}
            ),
            "the task id '1.1.1' is used again; the later one is ignored",
            {"1.1.1": [], "1.1.2": ["1.1.1"]},
        ),
        (
            lambda p: p["checkpoints"][0]["task_groups"][0]["tasks"][0].update(
                depends_on=["9.9.9"]
            ),
            "task 1.1.1 depends on unknown task 9.9.9; that dependency is ignored",
            {"1.1.1": [], "1.1.2": ["1.1.1"]},
        ),
        (
            lambda p: p["checkpoints"][0]["task_groups"][0]["tasks"][0].update(
                depends_on=["1.1.2"]
            ),
            "task 1.1.2 depending on 1.1.1 closes a cycle; that dependency is ignored",
            {"1.1.1": ["1.1.2"], "1.1.2": []},
        ),
        (
            lambda p: p["checkpoints"][0]["task_groups"][0]["tasks"][1].pop("id"),
            "checkpoints.0.task_groups.0.tasks.1: id: Field required; "
            "checkpoints.0.task_groups.0.tasks.1 is ignored",
            {"1.1.1": []},
        ),
        (
            lambda p: p["checkpoints"][0]["task_groups"][0]["tasks"][1].update(status=3),
            "checkpoints.0.task_groups.0.tasks.1.status: Input should be a valid string (got 3)",
            {"1.1.1": [], "1.1.2": ["1.1.1"]},
        ),
    ],
    ids=["duplicate-id", "unknown-dependency", "cycle", "task-without-id", "status-number"],
)
def test_what_a_plan_cannot_use_is_left_out_with_a_warning(mutate, warning: str, tasks) -> None:
    raw = json.loads(json.dumps(PLAN))
    mutate(raw)
    plan = parse_plan(raw)
    assert [w for w in plan.warnings if warning in w] and len(plan.warnings) == 1, plan.warnings
    assert plan.warnings[0].startswith("plan.json: ")
    assert tasks_of(plan) == tasks


def test_checkpoints_that_cannot_be_read_leave_the_plan_unmirrored() -> None:
    plan = parse_plan({**PLAN, "checkpoints": {"1": {"id": 1}}})
    assert plan.checkpoints is None and plan_tasks(plan) == []
    assert plan.warnings[0].startswith("plan.json: checkpoints: Input should be a valid list")
    # null says "no checkpoints": an empty plan, not an unreadable one
    assert parse_plan({**PLAN, "checkpoints": None}).checkpoints == []


def test_a_task_without_a_title_and_odd_ids_are_kept() -> None:
    raw = json.loads(json.dumps(PLAN))
    raw["checkpoints"][0]["id"] = "one"
    raw["checkpoints"][0]["task_groups"][0]["tasks"][0].pop("title")
    plan = parse_plan(raw)
    (checkpoint, _, untitled), _ = plan_tasks(plan)
    assert (checkpoint.id, untitled.id, untitled.title) == ("one", "1.1.1", None)
    assert plan.warnings == []


@pytest.mark.parametrize("raw", [[PLAN], "plan", None], ids=["list", "string", "null"])
def test_a_plan_that_is_not_an_object_is_refused(raw: object) -> None:
    with pytest.raises(FormatError, match="not a plan object"):
        parse_plan(raw)


def test_the_json_schemas_in_the_repository_are_current(tmp_path) -> None:
    from importlib.resources import files

    shipped = files("session_db.sync").joinpath("schemas")
    for name, schema in json_schemas().items():
        on_disk = json.loads(shipped.joinpath(name).read_text())
        assert on_disk == schema, f"{name} is stale: run python -m session_db.sync.formats"
    written = write_json_schemas(tmp_path)
    assert sorted(path.name for path in written) == sorted(json_schemas())


def test_the_v2_schema_is_what_the_writers_write_with_the_seeds_marker() -> None:
    schema = json_schemas()["state.v2.schema.json"]
    assert set(schema["required"]) == {"session_id", "topic", "created_at", "updated_at"}
    assert schema["properties"]["$schema"]["default"] == STATE_V2_SCHEMA
    assert schema["properties"]["current_phase"]["$ref"].endswith("Phase")
    assert schema["$defs"]["BuildProgress"]["properties"]["checkpoints_total"]["default"] is None
