"""`session-db demo`: a small, realistic project on disk, synced, with costs and a thread.

The folders are written the way the seeds' own system writes them (StateManager for
version 2, a hand-written version 1 for the legacy session); the costs, tokens and the
conversation thread are recorded through the CRUD layer, as an agent runtime would.
"""

import json
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import typer

from session_db.cli.common import plural, run

MARKER = ".session-db-demo"
PARENT = "2026-02-14_search-feature_k2m9qx"
SUBAGENTS = ("2026-02-14_search-ranking-research_p4t7wz", "2026-02-14_search-index-research_r8v3nc")
EARLIER = "2026-02-10_auth-hardening_a1b2c3"
LEGACY = "2026-01-20_login-flow_h5j6k7"
DRAFT = "2026-02-16_billing-export_m3n4p5"

# When each session started: on its slug's date, so what the database records agrees
# with the names (the legacy state file carries its own times, on its date too).
STARTS = {
    EARLIER: datetime(2026, 2, 10, 14, 5, tzinfo=UTC),
    PARENT: datetime(2026, 2, 14, 9, 30, tzinfo=UTC),
    SUBAGENTS[0]: datetime(2026, 2, 14, 10, 40, tzinfo=UTC),
    SUBAGENTS[1]: datetime(2026, 2, 14, 10, 55, tzinfo=UTC),
    DRAFT: datetime(2026, 2, 16, 16, 20, tzinfo=UTC),
}
STEP = timedelta(minutes=12)  # between two recorded moments of a session
_TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z")

PLAN = {
    "session_id": PARENT,
    "status": "approved",
    "checkpoints": [
        {
            "id": 1,
            "title": "Index",
            "goal": "Documents are searchable",
            "prerequisites": [],
            "status": "complete",
            "task_groups": [
                {
                    "id": "1.1",
                    "title": "Schema",
                    "objective": "Store the search index",
                    "status": "complete",
                    "tasks": [
                        {
                            "id": "1.1.1",
                            "title": "Add the search_documents table",
                            "file_path": "migrations/0007_search.py",
                            "status": "completed",
                        },
                        {
                            "id": "1.1.2",
                            "title": "Index documents on save",
                            "file_path": "app/search/indexer.py",
                            "status": "completed",
                            "depends_on": ["1.1.1"],
                        },
                    ],
                }
            ],
        },
        {
            "id": 2,
            "title": "Query",
            "goal": "Users can search",
            "prerequisites": [1],
            "status": "in_progress",
            "task_groups": [
                {
                    "id": "2.1",
                    "title": "API",
                    "objective": "A ranked search endpoint",
                    "status": "in_progress",
                    "tasks": [
                        {
                            "id": "2.1.1",
                            "title": "Rank results with BM25",
                            "file_path": "app/search/rank.py",
                            "status": "completed",
                            "depends_on": ["1.1.2"],
                        },
                        {
                            "id": "2.1.2",
                            "title": "GET /search endpoint",
                            "file_path": "app/api/search.py",
                            "status": "pending",
                            "depends_on": ["2.1.1"],
                        },
                        {
                            "id": "2.1.3",
                            "title": "Document the endpoint",
                            "file_path": "docs/api/search.md",
                            "status": "pending",
                            "depends_on": ["2.1.2"],
                        },
                    ],
                }
            ],
        },
    ],
}

# (session, agent type, model, input, output, cache read tokens, cost in USD)
USAGE = [
    (EARLIER, "spec", "claude-sonnet-4-5", 41_000, 6_200, 120_000, "0.2493"),
    (EARLIER, "build", "claude-sonnet-4-5", 180_000, 31_000, 900_000, "1.2750"),
    (PARENT, "spec", "claude-opus-4-1", 52_000, 7_900, 150_000, "1.6020"),
    (PARENT, "build", "claude-sonnet-4-5", 210_000, 38_500, 1_100_000, "1.5375"),
    (SUBAGENTS[0], "research", "claude-haiku-4-5", 64_000, 9_000, 200_000, "0.1290"),
    (SUBAGENTS[1], "research", "claude-haiku-4-5", 58_000, 8_100, 180_000, "0.1165"),
]


def demo(
    path: Annotated[Path, typer.Option(help="Where to create the example project.")] = Path(
        "session-db-demo"
    ),
) -> None:
    """Create an example project, sync it into the database, and say what to look at."""
    root = path.absolute()
    created = write_project(root)
    counts, where = run(_load(root))
    print(f"{'created' if created else 'refreshed'} an example project in {root}")
    synced = ", ".join(f"{plural(n, 'folder')} {outcome}" for outcome, n in counts.items())
    print(f"synced into {where}: {synced or 'nothing'}")
    print("\nLook around:")
    for command in (
        "session-db sessions list",
        f"session-db sessions tree {PARENT}",
        f"session-db sessions show {PARENT}",
        f"session-db tasks list {PARENT}",
        f"session-db threads show {PARENT}",
        "session-db cost --by model",
        f"session-db watch {path}",
    ):
        print(f"  {command}")


def write_project(root: Path) -> bool:
    """Write the example folders; True if new, False if an earlier demo's were rewritten.

    Raises:
        FileExistsError: The folder exists, is not empty, and is not an earlier demo.
    """
    from session_db.sync import StateManager

    if root.exists() and any(root.iterdir()) and not (root / MARKER).exists():
        raise FileExistsError(f"{root} exists and is not an earlier demo; pick --path")
    created = not (root / MARKER).exists()
    sessions = root / "agents" / "sessions"
    if sessions.exists():
        import shutil

        shutil.rmtree(sessions)
    root.mkdir(parents=True, exist_ok=True)
    (root / MARKER).write_text("made by `session-db demo`; safe to delete\n")
    # Like a virtualenv's: git ignores the whole example inside a repository.
    (root / ".gitignore").write_text("# made by `session-db demo`\n*\n")

    earlier = StateManager.create(
        sessions / EARLIER,
        topic="Harden authentication",
        description="Rate limits and lockout for the login API.",
    )
    for phase in ("plan", "build"):
        earlier.transition_to(phase)
    earlier.set_checkpoints_total(1)
    earlier.start_checkpoint(1)
    earlier.complete_checkpoint(1)
    earlier.record_commit("9c41e7b", "Add login rate limiting", checkpoint=1)
    earlier.transition_to("docs")
    earlier.transition_to("complete")

    parent = StateManager.create(
        sessions / PARENT,
        topic="Full-text search",
        description="Search documents by keyword, ranked.",
        prior_session=EARLIER,
    )
    parent.transition_to("plan")
    parent.transition_to("build")
    parent.set_git(branch="feat/search", base_branch="main")
    parent.set_checkpoints_total(2)
    parent.start_checkpoint(1)
    parent.record_commit("4f2a9c1", "Add the search index", checkpoint=1)
    parent.complete_checkpoint(1)
    parent.start_checkpoint(2)
    parent.record_agent(
        "spec", sdk_session_id="sdk-search-spec", model="claude-opus-4-1", status="complete"
    )
    parent.record_agent("build", sdk_session_id="sdk-search-build", model="claude-sonnet-4-5")
    (sessions / PARENT / "plan.json").write_text(json.dumps(PLAN, indent=2) + "\n")
    (sessions / PARENT / "spec.md").write_text("# Full-text search\n\nRanked keyword search.\n")

    for slug, topic in zip(
        SUBAGENTS, ("Compare ranking functions", "Survey index layouts"), strict=True
    ):
        sub = StateManager.create(
            sessions / slug, topic=topic, session_type="research", parent_session=PARENT
        )
        sub.transition_to("plan")
        sub.transition_to("build")
        sub.transition_to("docs")
        sub.transition_to("complete")

    StateManager.create(sessions / DRAFT, topic="Export invoices as CSV", session_type="quick")
    for slug, start in STARTS.items():
        backdate(sessions / slug / "state.json", start)

    legacy = sessions / LEGACY
    legacy.mkdir(parents=True)
    (legacy / "state.json").write_text(
        json.dumps(
            {
                "session_id": LEGACY,
                "topic": "Login flow",
                "created_at": "2026-01-20T09:12:00Z",
                "phases": {
                    "spec": {
                        "status": "finalized",
                        "started_at": "2026-01-20T09:12:00Z",
                        "finalized_at": "2026-01-20T10:02:00+00:00",
                    },
                    "plan": {"status": "finalized", "completed_at": "2026-01-20T11:30:00Z"},
                    "build": {"status": "in_progress", "started_at": "2026-01-20T11:31:00Z"},
                },
                "granularity": "coarse",
                "goals": ["Email and password login", "Remember me"],
                "key_decisions": ["Sessions in signed cookies"],
            },
            indent=2,
        )
        + "\n"
    )
    return created


def backdate(state_file: Path, start: datetime) -> None:
    """Move the times a state file records (written just now) to `start`, `STEP` apart.

    The order of the times is kept: the n-th distinct one becomes `start + n * STEP`.
    """
    document = json.loads(state_file.read_text())
    found: set[str] = set()

    def collect(value: Any) -> None:
        if isinstance(value, dict):
            for item in value.values():
                collect(item)
        elif isinstance(value, list):
            for item in value:
                collect(item)
        elif isinstance(value, str) and _TIMESTAMP.fullmatch(value):
            found.add(value)

    collect(document)
    moved = {
        old: (start + n * STEP).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        for n, old in enumerate(sorted(found))
    }

    def rewrite(value: Any) -> Any:
        if isinstance(value, dict):
            return {key: rewrite(item) for key, item in value.items()}
        if isinstance(value, list):
            return [rewrite(item) for item in value]
        return moved.get(value, value) if isinstance(value, str) else value

    state_file.write_text(json.dumps(rewrite(document), indent=2, ensure_ascii=False) + "\n")


async def _load(root: Path) -> tuple[dict[str, int], str]:
    from session_db import crud
    from session_db.database import describe_url, get_async_session, get_engine, init_db
    from session_db.sync import sync_project

    await init_db()
    report = await sync_project(root, engine=get_engine(), force=True)
    async with get_async_session() as db:
        totals: dict[str, tuple[int, Decimal]] = {}
        for slug, agent_type, model, tokens_in, tokens_out, cached, cost in USAGE:
            session = await crud.get_session_by_slug(db, slug)
            agents = {a.agent_type: a for a in await crud.list_agents(db, session_id=session.id)}
            # The agents the state files do not name ran in the session's first minutes.
            began = STARTS[slug] + STEP / 2
            usage: dict[str, Any] = {
                "model": model,
                "input_tokens": tokens_in,
                "output_tokens": tokens_out,
                "cache_read_tokens": cached,
                "total_cost": Decimal(cost),
                "status": "complete",
            }
            if agent_type in agents:
                await crud.update_agent(db, agents[agent_type].id, usage)
            else:
                timed = {"started_at": began, "completed_at": began + STEP, **usage}
                await crud.create_agent(
                    db, {"session_id": session.id, "agent_type": agent_type, **timed}
                )
            tokens, spent = totals.get(slug, (0, Decimal(0)))
            totals[slug] = (tokens + tokens_in + tokens_out + cached, spent + Decimal(cost))
        for slug, (tokens, spent) in totals.items():
            session = await crud.get_session_by_slug(db, slug)
            await crud.update_session(db, session.id, {"total_tokens": tokens, "total_cost": spent})
        parent = await crud.get_session_by_slug(db, PARENT)
        for thread in await crud.list_session_threads(db, parent.id):
            await crud.delete_thread(db, thread.id)
        thread = await crud.create_thread(db, {"session_id": parent.id, "name": "planning"})
        said = [
            ("user", "Add keyword search over documents, ranked by relevance."),
            ("assistant", "Plan: index on save, rank with BM25, expose GET /search."),
            ("user", "Ship the index first; ranking can follow."),
        ]
        await crud.add_thread_messages(
            db,
            thread.id,
            [
                {"role": role, "content": text, "created_at": STARTS[PARENT] + n * STEP / 4}
                for n, (role, text) in enumerate(said)
            ],
        )
    # Named here, inside `run`: afterwards the default engine is disposed, and asking for
    # it again would leave a new one open (pointing at this database) behind.
    return {name: n for name, n in report.counts.items() if n}, describe_url()
