"""Reading the files session folders hold: state.json v1 and v2, plan.json, the schemas."""

import json
from datetime import UTC, datetime

import pytest

from session_db.sync.formats import (
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
    assert (state.version, state.phase, state.status) == (2, Phase.BUILD, Status.ACTIVE)
    assert state.created_at == datetime(2026, 2, 16, 10, tzinfo=UTC)
    assert state.updated_at == datetime(2026, 2, 16, 12, 30, tzinfo=UTC)
    assert state.phase_history["plan_completed_at"] is None
    assert state.phase_history["docs_started_at"] is None
    # Repeated ids count once; numbers and strings name the same checkpoint.
    assert (state.checkpoints_total, state.checkpoints_completed) == (3, 2)
    assert state.raw["reviewer_notes"] == "kept though unmapped"


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
            Phase.PLAN,
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
            Phase.COMPLETE,
        ),
        # An explicit current_phase wins; phases missing entirely.
        ({"session_id": "c", "current_phase": "docs"}, Phase.DOCS),
    ],
)
def test_version_1_variations_are_read(raw: dict, phase: Phase) -> None:
    state = parse_state(raw)
    assert state.version == 1 and state.phase == phase
    assert state.status == (Status.COMPLETE if phase == Phase.COMPLETE else Status.ACTIVE)
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
    ("change", "where"),
    [
        ({"current_phase": "shipping"}, "current_phase"),
        ({"status": "done"}, "status"),
        ({"build_progress": {"checkpoints_total": -1}}, "build_progress.checkpoints_total"),
        ({"build_progress": "three"}, "build_progress"),
        ({"created_at": "yesterday"}, "created_at"),
        ({"commits": [{"message": "no sha"}]}, "commits.0.sha"),
        ({"session_id": ""}, "session_id"),
        ({"parent_session": "../elsewhere"}, "parent_session"),
        ({"prior_session": "a/b"}, "prior_session"),
    ],
)
def test_wrong_types_and_values_name_the_field(change: dict, where: str) -> None:
    with pytest.raises(FormatError) as caught:
        parse_state({**V2, **change})
    assert not isinstance(caught.value, UnrecognisedFileError)
    assert where in str(caught.value)


def test_undecodable_bytes_say_where_they_broke() -> None:
    whole = json.dumps(V2).encode()
    with pytest.raises(FormatError, match=r"not valid JSON \(line 1"):
        load_json(whole[: len(whole) // 2], "state.json")
    with pytest.raises(FormatError, match="not UTF-8"):
        load_json(b'{"a": "\xff"}', "state.json")


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
    assert migration.model_extra == {"estimate": "2h"}


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (
            lambda p: p["checkpoints"][0]["task_groups"][0]["tasks"].append(
                {"id": "1.1.1", "title": "again"}
            ),
            "used twice",
        ),
        (
            lambda p: p["checkpoints"][0]["task_groups"][0]["tasks"][0].update(
                depends_on=["9.9.9"]
            ),
            "unknown task 9.9.9",
        ),
        (
            lambda p: p["checkpoints"][0]["task_groups"][0]["tasks"][0].update(
                depends_on=["1.1.2"]
            ),
            "cycle",
        ),
        (lambda p: p["checkpoints"][0].update(id="one"), "checkpoints.0.id"),
        (lambda p: p.update(checkpoints={"1": {}}), "checkpoints"),
        (lambda p: p["checkpoints"][0]["task_groups"][0]["tasks"][0].pop("title"), "title"),
    ],
    ids=["duplicate-id", "unknown-dependency", "cycle", "checkpoint-id", "wrong-type", "no-title"],
)
def test_broken_plans_are_refused_with_the_reason(mutate, message: str) -> None:
    plan = json.loads(json.dumps(PLAN))
    mutate(plan)
    with pytest.raises(FormatError, match=message):
        parse_plan(plan)


def test_the_json_schemas_in_the_repository_are_current(tmp_path) -> None:
    from importlib.resources import files

    shipped = files("session_db.sync").joinpath("schemas")
    for name, schema in json_schemas().items():
        on_disk = json.loads(shipped.joinpath(name).read_text())
        assert on_disk == schema, f"{name} is stale: run python -m session_db.sync.formats"
    written = write_json_schemas(tmp_path)
    assert sorted(path.name for path in written) == sorted(json_schemas())


def test_the_v2_schema_requires_the_marker_and_names_the_phases() -> None:
    schema = json_schemas()["state.v2.schema.json"]
    assert {"$schema", "session_id"} <= set(schema["required"])
    assert schema["properties"]["current_phase"]["$ref"].endswith("Phase")
