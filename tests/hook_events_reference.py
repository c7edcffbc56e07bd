"""Every hook event of Claude Code 2.1.33x, as payloads written from the hooks reference.

REFERENCE.md §2: the common fields, then each event's own; nothing here comes from what
session_db writes. One session goes through all 34 events in a plausible order.
"""

from __future__ import annotations

from typing import Any

SESSION = "7f0c3d2a-1b4e-4c8d-9e6f-0a1b2c3d4e5f"
AGENT = "b71c0de"
CWD = "/home/dev/webshop"


def common(hook_event_name: str, **fields: Any) -> dict[str, Any]:
    """A payload with the fields every event carries, then the event's own."""
    return {
        "session_id": SESSION,
        "transcript_path": f"/home/dev/.claude/projects/-home-dev-webshop/{SESSION}.jsonl",
        "cwd": CWD,
        "hook_event_name": hook_event_name,
        "permission_mode": "default",
        "prompt_id": "prompt-1",
        **fields,
    }


SESSION_EVENTS: list[dict[str, Any]] = [
    common("Setup", trigger="init"),
    common(
        "SessionStart",
        source="startup",
        model="claude-opus-4-5-20251101",
        session_title="New session",
        context_tokens=1200,
    ),
    common(
        "InstructionsLoaded",
        file_path=f"{CWD}/CLAUDE.md",
        memory_type="Project",
        load_reason="session_start",
    ),
    common(
        "UserPromptSubmit",
        prompt="Fix the login bug",
        source="user",
        session_title="Fix the login bug",
    ),
    common(
        "UserPromptExpansion",
        expansion_type="slash_command",
        command_name="review",
        command_args="",
        prompt="/review",
    ),
    # A Bash call the user refuses.
    common(
        "PreToolUse",
        tool_name="Bash",
        tool_input={"command": "rm -rf build"},
        tool_use_id="tu-bash",
    ),
    common(
        "PermissionRequest",
        tool_name="Bash",
        tool_input={"command": "rm -rf build"},
        permission_suggestions=[{"type": "addRules"}],
    ),
    common(
        "PermissionDenied",
        tool_name="Bash",
        tool_input={"command": "rm -rf build"},
        tool_use_id="tu-bash",
        reason="The user denied this command",
    ),
    # An MCP tool, with the CLI's own measure of its duration.
    common(
        "PreToolUse",
        tool_name="mcp__github__get_issue",
        tool_input={"number": 42},
        tool_use_id="tu-mcp",
        mcp_server="github",
    ),
    common(
        "PostToolUse",
        tool_name="mcp__github__get_issue",
        tool_input={"number": 42},
        tool_response={"title": "Login fails"},
        tool_use_id="tu-mcp",
        duration_ms=1234,
        mcp_server="github",
    ),
    # A failing Read.
    common(
        "PreToolUse", tool_name="Read", tool_input={"file_path": "/nope"}, tool_use_id="tu-read"
    ),
    common(
        "PostToolUseFailure",
        tool_name="Read",
        tool_input={"file_path": "/nope"},
        tool_use_id="tu-read",
        error="File does not exist.",
        is_interrupt=False,
        duration_ms=7,
    ),
    # Two calls in one batch: one reports its own outcome, the batch completes the other.
    common("PreToolUse", tool_name="Grep", tool_input={"pattern": "login"}, tool_use_id="tu-grep"),
    common(
        "PreToolUse", tool_name="Glob", tool_input={"pattern": "**/*.py"}, tool_use_id="tu-glob"
    ),
    common(
        "PostToolUse",
        tool_name="Grep",
        tool_input={"pattern": "login"},
        tool_response={"matches": 3},
        tool_use_id="tu-grep",
        duration_ms=5,
    ),
    common(
        "PostToolBatch",
        tool_calls=[
            {"tool_name": "Grep", "tool_input": {"pattern": "login"}, "tool_use_id": "tu-grep"},
            {
                "tool_name": "Glob",
                "tool_input": {"pattern": "**/*.py"},
                "tool_use_id": "tu-glob",
                "tool_response": {"filenames": ["app.py"]},
            },
        ],
    ),
    common(
        "PreSkillShellCommand",
        tool_name="Bash",
        tool_input={"command": "git log -1"},
        tool_use_id="tu-skill",
        command_name="release-notes",
        invoked_by="skill",
    ),
    common("SubagentStart", agent_id=AGENT, agent_type="Explore"),
    common(
        "SubagentStop",
        stop_hook_active=False,
        agent_id=AGENT,
        agent_type="Explore",
        agent_transcript_path=f"/home/dev/.claude/projects/-home-dev-webshop/{SESSION}/subagents/agent-{AGENT}.jsonl",
        last_assistant_message="Found it.",
    ),
    common(
        "Notification",
        message="Claude needs your permission",
        notification_type="permission_prompt",
    ),
    common("PreCompact", trigger="auto", custom_instructions=None),
    common("PostCompact", trigger="auto", compact_summary="The login form posts to /api/login."),
    common(
        "PreModelSwitch",
        from_model="claude-opus-4-5-20251101",
        to_model="claude-sonnet-4-5-20250929",
        requested_model="sonnet",
        source="user",
        context_tokens=50_000,
        cache_ttl="5m",
    ),
    common(
        "PostModelSwitch",
        from_model="claude-opus-4-5-20251101",
        to_model="claude-sonnet-4-5-20250929",
        requested_model="sonnet",
        source="user",
        context_tokens=50_000,
        cache_ttl="5m",
    ),
    common("TeammateIdle", teammate_name="ana", team_name="web"),
    common(
        "TaskCreated",
        task_id="t1",
        task_subject="Write the fix",
        teammate_name="ana",
        team_name="web",
    ),
    common("TaskCompleted", task_id="t1", task_subject="Write the fix"),
    common("Elicitation", mcp_server_name="github", message="Which repository?"),
    common("ElicitationResult", mcp_server_name="github", action="accept"),
    common("ConfigChange", source="user_settings", file_path="/home/dev/.claude/settings.json"),
    common("WorktreeCreate", name="login-fix"),
    common("WorktreeRemove", worktree_path=f"{CWD}/.claude/worktrees/login-fix"),
    common("CwdChanged", old_cwd=CWD, new_cwd=f"{CWD}/src"),
    common("FileChanged", file_path=f"{CWD}/src/app.py", event="change"),
    common("DirectoryAdded", directory="/home/dev/shared-lib", source="user"),
    common(
        "MessageDisplay", turn_id="turn-1", message_id="msg-1", index=0, final=True, delta="Done."
    ),
    common("Stop", stop_hook_active=False, last_assistant_message="Done."),
    common(
        "StopFailure",
        error="rate_limit",
        error_details="429 Too Many Requests",
        last_assistant_message=None,
    ),
    common("SessionEnd", reason="other"),
]

EVENT_NAMES = {payload["hook_event_name"] for payload in SESSION_EVENTS}
