"""Reading Claude Code transcripts, checked against a real session (see the fixture's README)."""

from __future__ import annotations

import json
import math
import os
import shutil
from collections import defaultdict
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from support import SPOTTER

from session_db.claude import transcript
from session_db.claude.pricing import price_usage
from session_db.claude.transcript import (
    SessionFacts,
    SubagentLaunch,
    TranscriptFile,
    TranscriptKind,
    UsageEntry,
    classify,
    dedupe,
    default_projects_dir,
    discover,
    parse_subagent_launches,
    parse_usage,
    read_complete_lines,
    session_facts,
)

# A real Claude Code session directory (MIT licence, source in its README.md).
FIXTURE = SPOTTER
SESSION = "4d5611e5-241a-462a-8d15-5122611a9569"
MAIN = FIXTURE / f"{SESSION}.jsonl"
SUBAGENT = FIXTURE / SESSION / "subagents" / "agent-a2898e3.jsonl"
COMPACT = FIXTURE / SESSION / "subagents" / "agent-acompact-e1f845.jsonl"
FILES = {"main": MAIN, "subagent": SUBAGENT, "compact": COMPACT}

OPUS = "claude-opus-4-6"
SONNET = "claude-sonnet-4-5-20250929"
COUNTS = ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")

# Established by hand (and by `reference_totals` below): per file, the assistant lines and the
# distinct (message.id, requestId) responses, and per model the deduplicated token totals
# (input, output, cache write, cache read) and number of responses.
ASSISTANT_LINES = {"main": 254, "subagent": 40, "compact": 1}
UNIQUE_RESPONSES = {"main": 139, "subagent": 12, "compact": 1}
PER_MODEL = {
    OPUS: (180, 28763, 488218, 11783397, 140),
    SONNET: (53, 136, 71257, 604156, 12),
}
# Summing every assistant line instead (what a naive importer does), main file only.
MAIN_NAIVE = (350, 29160, 1278400, 20500571)
# List prices: opus $5/$25/$6.25/$0.50 per million, sonnet 4.5 $3/$15/$3.75/$0.30.
PER_MODEL_COST = {OPUS: Decimal("9.663036"), SONNET: Decimal("0.45065955")}


def load(path: Path) -> list[dict[str, Any]]:
    """Every JSON line of a file, read without the code under test."""
    return [json.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


def reference_totals(path: Path) -> dict[tuple[str, str], tuple[str, tuple[int, ...]]]:
    """Per (message.id, requestId): the model and the counts of the line with the largest total."""
    best: dict[tuple[str, str], tuple[str, tuple[int, ...]]] = {}
    for record in load(path):
        if record.get("type") != "assistant":
            continue
        message = record["message"]
        key = (message["id"], record["requestId"])
        counts = tuple(message["usage"][name] for name in COUNTS)
        if key not in best or sum(counts) > sum(best[key][1]):
            best[key] = (message["model"], counts)
    return best


def entries_of(path: Path) -> list[UsageEntry]:
    """The deduplicated usage entries of one transcript, via the code under test."""
    lines, _ = read_complete_lines(path, 0)
    parsed = (parse_usage(json.loads(raw)) for _, raw in lines if raw.strip())
    return dedupe(entry for entry in parsed if entry is not None)


# --- Where transcripts live -----------------------------------------------------------------


def test_default_projects_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_projects_dir({}) == tmp_path / ".claude" / "projects"
    assert default_projects_dir({"CLAUDE_CONFIG_DIR": ""}) == tmp_path / ".claude" / "projects"
    assert default_projects_dir({"CLAUDE_CONFIG_DIR": "~/cfg"}) == tmp_path / "cfg" / "projects"
    assert default_projects_dir({"CLAUDE_CONFIG_DIR": "/opt/c"}) == Path("/opt/c/projects")
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", "/from/env")
    assert default_projects_dir() == Path("/from/env/projects")


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (MAIN, (SESSION, None, TranscriptKind.MAIN)),
        (SUBAGENT, (SESSION, "a2898e3", TranscriptKind.SUBAGENT)),
        (COMPACT, (SESSION, "acompact-e1f845", TranscriptKind.COMPACT)),
        (FIXTURE / "LICENSE", None),
        (FIXTURE / SESSION / "subagents" / "notes.jsonl", None),
        (FIXTURE / SESSION / "subagents" / "agent-.jsonl", None),
        (FIXTURE / SESSION / "subagents" / "agent-a1.txt", None),
    ],
)
def test_classify(path: Path, expected: tuple[str, str | None, TranscriptKind] | None) -> None:
    result = classify(path)
    if expected is None:
        assert result is None
    else:
        assert result == TranscriptFile(path, *expected)


def summary(files: list[TranscriptFile], root: Path) -> list[tuple[str, str, str | None, str]]:
    """(relative path, session, agent, kind) of each discovered file, in order."""
    return [(str(f.path.relative_to(root)), f.session_id, f.agent_id, f.kind.value) for f in files]


def test_discover_the_fixture_lists_subagents_before_their_parent() -> None:
    expected = [
        (f"{SESSION}/subagents/agent-a2898e3.jsonl", SESSION, "a2898e3", "subagent"),
        (f"{SESSION}/subagents/agent-acompact-e1f845.jsonl", SESSION, "acompact-e1f845", "compact"),
        (f"{SESSION}.jsonl", SESSION, None, "main"),
    ]
    assert summary(discover(FIXTURE), FIXTURE) == expected
    # The fixture folder seen as a project folder inside a projects dir gives the same files.
    assert summary(discover(FIXTURE.parent), FIXTURE) == expected
    assert discover(MAIN) == [TranscriptFile(MAIN, SESSION, None, TranscriptKind.MAIN)]
    assert discover(FIXTURE / "LICENSE") == []
    assert discover(FIXTURE / "missing") == []


def test_discover_a_projects_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    projects = tmp_path / "projects"
    alpha = projects / "-home-me-alpha"
    shutil.copytree(FIXTURE, alpha, ignore=shutil.ignore_patterns("LICENSE"))
    beta = projects / "-home-me-beta"
    beta.mkdir()
    (beta / "bbbb.jsonl").write_text("{}\n")
    (beta / "aaaa.jsonl").write_text("{}\n")
    # Session data that is not a transcript, and a project memory folder.
    (beta / "aaaa" / "tool-results").mkdir(parents=True)
    (beta / "aaaa" / "tool-results" / "x.jsonl").write_text("{}\n")
    (beta / "aaaa" / "subagents").mkdir()
    (beta / "aaaa" / "subagents" / "agent-b1.jsonl").write_text("{}\n")
    (beta / "aaaa" / "subagents" / "README.md").write_text("no\n")
    (alpha / "memory").mkdir()
    (alpha / "memory" / "notes.jsonl").write_text("{}\n")
    # A symlink leading outside the projects dir is skipped; one inside is followed.
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "cccc.jsonl").write_text("{}\n")
    (projects / "-home-me-linked").symlink_to(outside, target_is_directory=True)
    (beta / "dddd.jsonl").symlink_to(outside / "cccc.jsonl")
    (beta / "eeee.jsonl").symlink_to(beta / "bbbb.jsonl")
    (outside / "subagents").mkdir()
    (outside / "subagents" / "agent-out.jsonl").write_text("{}\n")
    (beta / "gggg").mkdir()
    (beta / "gggg" / "subagents").symlink_to(outside / "subagents", target_is_directory=True)
    # An unreadable project folder is skipped (simulated: the tests may run as root).
    locked = projects / "-home-me-locked"
    locked.mkdir()
    (locked / "ffff.jsonl").write_text("{}\n")
    real_scandir = os.scandir

    def scandir(path: Any = ".") -> Any:
        if Path(path) == locked:
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(transcript.os, "scandir", scandir)

    found = discover(projects)
    assert summary(found, projects) == [
        (f"-home-me-alpha/{SESSION}/subagents/agent-a2898e3.jsonl", SESSION, "a2898e3", "subagent"),
        (
            f"-home-me-alpha/{SESSION}/subagents/agent-acompact-e1f845.jsonl",
            SESSION,
            "acompact-e1f845",
            "compact",
        ),
        (f"-home-me-alpha/{SESSION}.jsonl", SESSION, None, "main"),
        ("-home-me-beta/aaaa/subagents/agent-b1.jsonl", "aaaa", "b1", "subagent"),
        ("-home-me-beta/aaaa.jsonl", "aaaa", None, "main"),
        ("-home-me-beta/bbbb.jsonl", "bbbb", None, "main"),
        ("-home-me-beta/eeee.jsonl", "eeee", None, "main"),
    ]
    # One project folder.
    assert summary(discover(beta), projects) == summary(found, projects)[3:]


def test_discover_order_is_deterministic(tmp_path: Path) -> None:
    project = tmp_path / "p"
    for session in ("s2", "s1"):
        (project / session / "subagents").mkdir(parents=True)
        (project / f"{session}.jsonl").write_text("{}\n")
        for agent in ("agent-z.jsonl", "agent-acompact-1.jsonl", "agent-a.jsonl"):
            (project / session / "subagents" / agent).write_text("{}\n")
    assert [(f.session_id, f.agent_id) for f in discover(project)] == [
        ("s1", "a"),
        ("s1", "acompact-1"),
        ("s1", "z"),
        ("s1", None),
        ("s2", "a"),
        ("s2", "acompact-1"),
        ("s2", "z"),
        ("s2", None),
    ]


# --- Reading lines as they are written ------------------------------------------------------


def test_read_complete_lines_leaves_a_partial_line_for_later(tmp_path: Path) -> None:
    data = MAIN.read_bytes()
    path = tmp_path / "live.jsonl"
    cut = len(data) // 2
    assert data[cut - 1 : cut] != b"\n"  # the cut falls inside a line
    path.write_bytes(data[:cut])

    first, offset = read_complete_lines(path, 0)
    assert offset == data.rindex(b"\n", 0, cut) + 1
    assert first[0] == (0, data[: data.index(b"\n")])
    assert read_complete_lines(path, offset) == ([], offset)  # nothing new yet

    with path.open("ab") as handle:
        handle.write(data[cut:])
    second, end = read_complete_lines(path, offset)
    assert end == len(data)
    assert second[0][0] == offset
    lines = first + second
    assert [raw for _, raw in lines] == data.split(b"\n")[:-1]  # none lost, none twice
    assert len(lines) == 1512
    assert all(data[start : start + len(raw) + 1] == raw + b"\n" for start, raw in lines)
    assert read_complete_lines(path, end) == ([], end)


def test_read_complete_lines_edge_cases(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_bytes(b'{"a": 1')
    assert read_complete_lines(path, 0) == ([], 0)
    path.write_bytes(b'{"a": 1}\n\n{"b": 2}\r\n{"c"')
    assert read_complete_lines(path, 0) == ([(0, b'{"a": 1}'), (9, b""), (10, b'{"b": 2}\r')], 20)
    assert read_complete_lines(path, 100) == ([], 100)  # past the end: file truncated
    with pytest.raises(ValueError):
        read_complete_lines(path, -1)


# --- Usage ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["main", "subagent", "compact"])
def test_unique_responses_per_file(name: str) -> None:
    path = FILES[name]
    entries = entries_of(path)
    reference = reference_totals(path)
    assert len(entries) == len(reference) == UNIQUE_RESPONSES[name]
    lines = sum(1 for record in load(path) if record.get("type") == "assistant")
    assert lines == ASSISTANT_LINES[name]
    assert {(e.message_id, e.request_id) for e in entries} == set(reference)
    for entry in entries:
        model, counts = reference[(entry.message_id, entry.request_id)]
        assert entry.model == model
        assert (
            entry.input_tokens,
            entry.output_tokens,
            entry.cache_creation_tokens,
            entry.cache_read_tokens,
        ) == counts


def test_deduplication_matters_in_the_fixture() -> None:
    assert ASSISTANT_LINES["main"] > UNIQUE_RESPONSES["main"]
    assert ASSISTANT_LINES["subagent"] > UNIQUE_RESPONSES["subagent"]
    naive = [0, 0, 0, 0]
    for record in load(MAIN):
        if record.get("type") == "assistant":
            for i, name in enumerate(COUNTS):
                naive[i] += record["message"]["usage"][name]
    assert tuple(naive) == MAIN_NAIVE
    entries = entries_of(MAIN)
    deduped = (
        sum(e.input_tokens for e in entries),
        sum(e.output_tokens for e in entries),
        sum(e.cache_creation_tokens for e in entries),
        sum(e.cache_read_tokens for e in entries),
    )
    assert deduped == (177, 28755, 479537, 11618567)
    assert all(d < n for d, n in zip(deduped, MAIN_NAIVE, strict=True))
    # Keeping the first line of each response instead would keep streaming placeholders:
    # 45 responses have a later line with more output tokens.
    first = _first_lines(MAIN)
    assert sum(counts[1] for _, counts in first.values()) == 7933
    best = reference_totals(MAIN)
    assert sum(1 for key in best if best[key][1] != first[key][1]) == 45


def _first_lines(path: Path) -> dict[tuple[str, str], tuple[str, tuple[int, ...]]]:
    """Per response, the counts of its first line."""
    first: dict[tuple[str, str], tuple[str, tuple[int, ...]]] = {}
    for record in load(path):
        if record.get("type") == "assistant":
            message = record["message"]
            key = (message["id"], record["requestId"])
            first.setdefault(key, (message["model"], tuple(message["usage"][n] for n in COUNTS)))
    return first


def test_per_model_totals_and_cost_of_the_fixture() -> None:
    reference: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0, 0])
    for path in FILES.values():
        for model, counts in reference_totals(path).values():
            for i, count in enumerate(counts):
                reference[model][i] += count
            reference[model][4] += 1
    assert {model: tuple(v) for model, v in reference.items()} == PER_MODEL

    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0, 0])
    costs: dict[str, Decimal] = defaultdict(Decimal)
    for tf in discover(FIXTURE):
        for e in entries_of(tf.path):
            row = totals[e.model]
            row[0] += e.input_tokens
            row[1] += e.output_tokens
            row[2] += e.cache_creation_tokens
            row[3] += e.cache_read_tokens
            row[4] += 1
            cost = price_usage(e.model, e.usage, e.reported_cost_usd, at=e.occurred_at)
            assert (cost.source, cost.estimate) == ("computed", True)
            assert cost.amount is not None
            costs[e.model] += cost.amount
    assert {model: tuple(v) for model, v in totals.items()} == PER_MODEL
    assert dict(costs) == PER_MODEL_COST


def test_parse_usage_of_a_real_line() -> None:
    record = next(r for r in load(SUBAGENT) if r.get("type") == "assistant")
    assert record["timestamp"] == "2026-02-12T16:02:50.956Z"
    assert parse_usage(record) == UsageEntry(
        message_id="msg_016xcKQRzQXv2gLKoiSyUZxc",
        request_id="req_011CY4TSxK7aKeeVwvVX81aP",
        model=SONNET,
        input_tokens=3,
        output_tokens=3,
        cache_creation_tokens=13522,
        cache_read_tokens=0,
        usage={
            "input_tokens": 3,
            "cache_creation_input_tokens": 13522,
            "cache_read_input_tokens": 0,
            "cache_creation": {"ephemeral_5m_input_tokens": 13522, "ephemeral_1h_input_tokens": 0},
            "output_tokens": 3,
            "service_tier": "standard",
            "inference_geo": "not_available",
        },
        reported_cost_usd=None,
        occurred_at=datetime(2026, 2, 12, 16, 2, 50, 956000, tzinfo=UTC),
        session_id=SESSION,
        agent_id="a2898e3",
        line_uuid=record["uuid"],
        is_sidechain=True,  # a subagent's line
    )
    assert record["uuid"] and record["isSidechain"] is True


def assistant(usage: Any = None, **fields: Any) -> dict[str, Any]:
    """An assistant line with a message carrying `usage`, overridable field by field."""
    message = {"id": "msg_1", "model": "claude-opus-4-6", "usage": usage}
    message.update(fields.pop("message", {}))
    record = {
        "type": "assistant",
        "uuid": "u-1",
        "requestId": "req_1",
        "sessionId": "s-1",
        "timestamp": "2026-02-12T16:02:48.180Z",
        "message": message,
    }
    record.update(fields)
    return record


GOOD = {"input_tokens": 1, "output_tokens": 2}


@pytest.mark.parametrize(
    "record",
    [
        {},
        None,
        "assistant",
        ["type", "assistant"],
        {"type": "user", "message": {"usage": GOOD}},
        {
            "type": "progress",
            "data": {"message": {"type": "assistant", "message": {"usage": GOOD}}},
        },
        {"type": "assistant"},
        {"type": "assistant", "message": "hello"},
        assistant(None),
        assistant("lots"),
        assistant([1, 2]),
        assistant(GOOD, message={"model": "<synthetic>"}),
    ],
)
def test_parse_usage_ignores_lines_without_usage(record: Any) -> None:
    assert parse_usage(record) is None


def test_parse_usage_is_lenient() -> None:
    usage = {
        "input_tokens": None,
        "output_tokens": -4,
        "cache_creation_input_tokens": "12",
        "cache_read_input_tokens": True,
    }
    entry = parse_usage(assistant(usage, timestamp="yesterday", costUSD="n/a"))
    assert entry is not None
    assert (
        entry.input_tokens,
        entry.output_tokens,
        entry.cache_creation_tokens,
        entry.cache_read_tokens,
        entry.total_tokens,
    ) == (0, 0, 0, 0, 0)
    assert entry.usage == usage
    assert entry.occurred_at is None
    assert entry.reported_cost_usd is None

    entry = parse_usage(assistant({"output_tokens": 7, "cache_read_input_tokens": 1.5}))
    assert entry is not None
    assert (entry.input_tokens, entry.output_tokens, entry.cache_read_tokens) == (0, 7, 0)

    for timestamp in (None, 12345, "", "2026-13-45T99:00:00Z"):
        entry = parse_usage(assistant(GOOD, timestamp=timestamp))
        assert entry is not None
        assert entry.occurred_at is None


def test_parse_usage_fields() -> None:
    record = assistant(
        GOOD,
        message={"id": None, "model": "us.anthropic.claude-opus-4-6-v1"},
        requestId=None,
        agentId="a9",
        costUSD=0.0123,
        timestamp="2026-02-12T18:02:48+02:00",
    )
    entry = parse_usage(record)
    assert entry is not None
    assert (entry.message_id, entry.request_id) == ("u-1", "")  # falls back to the line's uuid
    assert entry.model == "claude-opus-4-6"
    assert entry.reported_cost_usd == Decimal("0.0123")
    assert entry.occurred_at == datetime(2026, 2, 12, 16, 2, 48, tzinfo=UTC)
    assert entry.occurred_at is not None
    assert entry.occurred_at.tzinfo is UTC
    assert (entry.session_id, entry.agent_id, entry.line_uuid) == ("s-1", "a9", "u-1")

    naive = parse_usage(assistant(GOOD, timestamp="2026-02-12T16:02:48"))
    assert naive is not None
    assert naive.occurred_at == datetime(2026, 2, 12, 16, 2, 48, tzinfo=UTC)

    odd = parse_usage(assistant(GOOD, message={"model": None}, sessionId=7, uuid=None))
    assert odd is not None
    assert (odd.model, odd.session_id, odd.line_uuid, odd.message_id) == ("", None, None, "msg_1")


def entry(message_id: str, request_id: str, output: int, uuid: str) -> UsageEntry:
    """A usage entry with 10 input tokens and `output` output tokens."""
    return UsageEntry(
        message_id=message_id,
        request_id=request_id,
        model="claude-opus-4-6",
        input_tokens=10,
        output_tokens=output,
        cache_creation_tokens=0,
        cache_read_tokens=0,
        usage={"input_tokens": 10, "output_tokens": output},
        reported_cost_usd=None,
        occurred_at=None,
        session_id="s",
        agent_id=None,
        line_uuid=uuid,
    )


def test_dedupe_keeps_the_largest_total_in_first_seen_order() -> None:
    a_early = entry("m-a", "r-a", 1, "1")
    b = entry("m-b", "r-b", 5, "2")
    a_final = entry("m-a", "r-a", 300, "3")
    a_tie = entry("m-a", "r-a", 300, "4")
    a_other_request = entry("m-a", "r-x", 2, "5")
    b_smaller = entry("m-b", "r-b", 4, "6")
    anonymous_1 = entry("", "", 7, "7")
    anonymous_2 = entry("", "", 7, "8")
    result = dedupe(
        iter([a_early, b, a_final, a_tie, a_other_request, b_smaller, anonymous_1, anonymous_2])
    )
    assert [e.line_uuid for e in result] == ["3", "2", "5", "7", "8"]
    assert [e.total_tokens for e in result] == [310, 15, 12, 17, 17]
    assert dedupe([]) == []


# --- Subagents and session facts ------------------------------------------------------------


def test_the_explore_launch_is_paired_with_its_result() -> None:
    records = load(MAIN)
    launches = parse_subagent_launches(records)
    assert len(launches) == 1
    launch = launches[0]
    assert launch.tool_use_id == "toolu_017pLRuPHYTX5t99EnLyV53m"
    assert launch.agent_id == "a2898e3"
    assert launch.subagent_type == "Explore"
    assert launch.description == "Explore transcript rendering codebase"
    assert launch.prompt is not None
    assert launch.prompt.startswith("Very thorough exploration. I need to understand:")
    assert launch.total_tokens == 76365
    assert launch.total_duration_ms == 141871
    assert launch.final_usage is not None
    assert launch.final_usage["output_tokens"] == 5108
    assert (
        launch.final_usage["input_tokens"],
        launch.final_usage["cache_creation_input_tokens"],
        launch.final_usage["cache_read_input_tokens"],
    ) == (0, 475, 70782)
    # The subagent's own transcript ends with the same request, but its line holds a streaming
    # placeholder of 1 output token: the launch result is the only place with the true count.
    last = entries_of(SUBAGENT)[-1]
    assert (last.cache_creation_tokens, last.cache_read_tokens, last.output_tokens) == (
        475,
        70782,
        1,
    )

    # Before the result arrives the launch is known, without an agent id.
    result_at = next(
        i
        for i, r in enumerate(records)
        if isinstance(r.get("toolUseResult"), dict) and "agentId" in r["toolUseResult"]
    )
    pending = parse_subagent_launches(records[:result_at])
    assert pending == [
        SubagentLaunch(
            tool_use_id="toolu_017pLRuPHYTX5t99EnLyV53m",
            agent_id=None,
            subagent_type="Explore",
            description="Explore transcript rendering codebase",
            prompt=launch.prompt,
            final_usage=None,
            total_tokens=None,
            total_duration_ms=None,
        )
    ]


def test_parse_subagent_launches_of_made_up_records() -> None:
    def call(tool_id: str, name: str = "Agent", **tool_input: Any) -> dict[str, Any]:
        block = {"type": "tool_use", "id": tool_id, "name": name, "input": tool_input}
        return {"type": "assistant", "message": {"content": [block]}}

    def result(tool_id: str, tool_result: Any) -> dict[str, Any]:
        block = {"type": "tool_result", "tool_use_id": tool_id, "content": "done"}
        return {"type": "user", "message": {"content": [block]}, "toolUseResult": tool_result}

    records = [
        result("t-early", {"agentId": "x"}),  # a result before its launch is ignored
        call("t-early", subagent_type="general-purpose"),
        call("t-read", name="Read", file_path="/x"),  # not a launch
        call("t-2", description="second", prompt=None),
        {"type": "user", "message": {"content": "plain text"}},
        result("t-read", {"agentId": "not-a-launch"}),
        result("t-2", "Error: the agent failed"),  # not a dict: no agent id
        result("t-2", {"agentId": "b2", "totalTokens": "many", "usage": None}),
        result("t-2", {"agentId": "b3"}),  # a second result for the same launch is ignored
        None,
        {"type": "assistant", "message": {"content": [None, "text", {"type": "tool_use"}]}},
    ]
    assert [
        (x.tool_use_id, x.agent_id, x.subagent_type, x.description, x.prompt)
        for x in parse_subagent_launches(records)
    ] == [
        ("t-early", None, "general-purpose", None, None),
        ("t-2", "b2", None, "second", None),
    ]
    second = parse_subagent_launches(records)[1]
    assert (second.final_usage, second.total_tokens, second.total_duration_ms) == (None, None, None)


def test_session_facts_of_the_fixture() -> None:
    assert session_facts(load(MAIN)) == SessionFacts(
        first_at=datetime(2026, 2, 12, 16, 2, 23, 545000, tzinfo=UTC),
        last_at=datetime(2026, 2, 12, 21, 3, 34, 206000, tzinfo=UTC),
        cwd="/home/USER/projects/spotter-worktrees/spotter-dov",
        git_branch="spotter-dov",
        version="2.1.39",
        slug="radiant-floating-music",
        models=(OPUS,),
    )
    assert session_facts(load(SUBAGENT)).models == (SONNET,)
    stamps = [r["timestamp"] for r in load(MAIN) if "timestamp" in r]
    assert min(stamps) == "2026-02-12T16:02:23.545Z"
    assert max(stamps) == "2026-02-12T21:03:34.206Z"


def test_session_facts_of_made_up_records() -> None:
    records = [
        {"type": "user", "timestamp": "2026-01-02T10:00:00Z", "cwd": "", "version": "2.0.1"},
        assistant(GOOD, message={"model": "claude-sonnet-4-5-20250929"}, cwd="/a", gitBranch=""),
        {"type": "user", "timestamp": "2026-01-01T09:00:00Z", "gitBranch": "main", "slug": "s1"},
        assistant(GOOD, message={"model": "us.anthropic.claude-opus-4-6-v1"}, version="2.0.2"),
        assistant(GOOD, message={"model": "claude-sonnet-4-5-20250929"}, cwd="/b", slug="s2"),
        assistant(GOOD, message={"model": "<synthetic>"}),
        {"type": "system", "timestamp": "not a time", "version": ""},
        None,
    ]
    facts = session_facts(iter(records))
    assert facts == SessionFacts(
        first_at=datetime(2026, 1, 1, 9, 0, tzinfo=UTC),
        last_at=datetime(2026, 2, 12, 16, 2, 48, 180000, tzinfo=UTC),
        cwd="/a",
        git_branch="main",
        version="2.0.2",
        slug="s1",
        models=("claude-sonnet-4-5-20250929", "claude-opus-4-6"),
    )
    assert session_facts([]) == SessionFacts(None, None, None, None, None, None, ())


# --- Parsing lines, and the one-pass scan -------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b'{"n": 18446744073709551616}', {"n": 2**64}),  # orjson would read a float
        (b'{"n": -9223372036854775809}', {"n": -(2**63) - 1}),
        (b'{"id": "0000000000000000000000"}', {"id": "0" * 22}),  # digits in a string: fine
        (b'{"x": NaN}', None),  # checked apart below: NaN != NaN
        (b'{"t": "\\ud800"}', {"t": "\ud800"}),  # a lone surrogate, as the stdlib reads it
        (b'\xef\xbb\xbf{"bom": 1}', None),  # a byte-order mark: not JSON for either
        (b"{not json", None),
        (b"[" * 5_000 + b"]" * 5_000, None),  # too deep for either parser
    ],
)
def test_parse_line_reads_what_the_stdlib_reads(raw: bytes, expected: Any) -> None:
    parsed = transcript.parse_line(raw)
    if raw == b'{"x": NaN}':
        assert math.isnan(parsed["x"])
        return
    assert parsed == expected
    if expected is not None:
        assert parsed == json.loads(raw)
        assert [type(v) for v in parsed.values()] == [type(v) for v in json.loads(raw).values()]


def test_scan_lines_reads_the_fixture_as_the_separate_readers_do() -> None:
    for path in FILES.values():
        raw = [line for line in path.read_bytes().splitlines() if line.strip()]
        records = [json.loads(line) for line in raw]
        scan = transcript.scan_lines(raw)
        assert (scan.lines, scan.bad_lines) == (len(raw), 0)
        assert scan.usage == dedupe(e for e in map(parse_usage, records) if e is not None)
        assert scan.facts == session_facts(records)
        assert scan.launches == parse_subagent_launches(records)
        assert scan.names == transcript.Names() and scan.cost_state is None


def test_scan_lines_keeps_an_integer_beyond_64_bits_in_usage() -> None:
    line = json.dumps(assistant({"input_tokens": 2**64, "output_tokens": 1})).encode()
    scan = transcript.scan_lines([line, b"\x00 not json", b'"a string"'])
    assert (scan.lines, scan.bad_lines) == (3, 2)
    assert scan.usage[0].input_tokens == 2**64 and type(scan.usage[0].input_tokens) is int


def test_scan_lines_takes_the_extremes_of_valid_timestamps_only() -> None:
    lines = [
        {"type": "user", "timestamp": "2026-13-45T99:00:00.000Z"},  # the form, not a time
        {"type": "user", "timestamp": "2026-02-12T16:02:23.545Z"},
        {"type": "user", "timestamp": "2026-02-12T18:02:24+02:00"},  # another form
        {"type": "user", "timestamp": "2026-02-12T16:00:00.000Z"},
    ]
    facts = transcript.scan_lines(json.dumps(line).encode() for line in lines).facts
    assert facts.first_at == datetime(2026, 2, 12, 16, 0, tzinfo=UTC)
    assert facts.last_at == datetime(2026, 2, 12, 16, 2, 24, tzinfo=UTC)


def sidechain(message_id: str, request_id: str, output: int, uuid: str) -> UsageEntry:
    """A usage entry written by a sidechain (a subagent or a /btw aside)."""
    return replace(entry(message_id, request_id, output, uuid), is_sidechain=True)


def test_dedupe_follows_ccusage_for_sidechain_lines() -> None:
    parent = entry("m-1", "r-1", 5, "1")
    replay = sidechain("m-1", "r-2", 900, "2")  # a known message under a new request id
    own = sidechain("m-2", "r-3", 1, "3")
    same_key_side = sidechain("m-4", "r-4", 900, "4")
    same_key_main = entry("m-4", "r-4", 1, "5")  # fewer tokens, but the main conversation's
    first_copy, larger_copy = sidechain("m-5", "r-5", 1, "6"), sidechain("m-5", "r-6", 2, "7")
    result = dedupe([parent, replay, own, same_key_side, same_key_main, first_copy, larger_copy])
    assert [e.line_uuid for e in result] == ["1", "3", "5", "7"]
    # The replay first, the parent's line later: the parent's line is the response.
    assert [e.line_uuid for e in dedupe([replay, parent])] == ["1"]


def test_parse_cost_state_normalises_model_ids_and_skips_what_it_cannot_use() -> None:
    line = {
        "type": "cost-state",
        "totalCostUSD": 2.5,
        "modelUsage": {
            "claude-opus-4-6": {"costUSD": 1.0, "inputTokens": 10, "outputTokens": 20},
            "claude-opus-4-6[1m]": {"costUSD": 0.5, "inputTokens": 1, "cacheReadInputTokens": 7},
            "us.anthropic.claude-sonnet-4-5-20250929-v1:0": {"costUSD": "0.25"},
            "claude-haiku-4-5": {"costUSD": -1},  # not a cost
            "claude-nan": {"costUSD": float("nan")},
            "<synthetic>": {"costUSD": 1},
            "claude-list": [1, 2],
        },
    }
    state = transcript.parse_cost_state(line, at=datetime(2026, 4, 1, tzinfo=UTC))
    assert state is not None
    assert state.total_cost_usd == Decimal("2.5")
    assert state.at == datetime(2026, 4, 1, tzinfo=UTC)  # the line has no timestamp
    assert state.models == {
        "claude-opus-4-6": transcript.ModelCost(Decimal("1.5"), 11, 20, 7, 0),
        "claude-sonnet-4-5-20250929": transcript.ModelCost(Decimal("0.25")),
    }
    assert transcript.parse_cost_state({"type": "cost-state", "modelUsage": "x"}) is None
    assert transcript.parse_cost_state({"type": "summary"}) is None


def test_names_rank_a_custom_title_over_an_ai_title_over_a_summary() -> None:
    names = transcript.Names(summary="s1").then(transcript.Names(ai_title="a1"))
    assert names.best == "a1"
    names = names.then(transcript.Names(custom_title="c1")).then(transcript.Names(ai_title="a2"))
    assert (names.best, names.ai_title, names.summary) == ("c1", "a2", "s1")
