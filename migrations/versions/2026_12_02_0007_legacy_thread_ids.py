"""Seed 004's legacy migration: a session's bare thread id becomes a thread with a system message.

Seed 004 replaced `session.threadId`, a bare text reference to an Amp thread, with
structured threads: "each session with a `threadId` gets a new thread record; a system
message is created referencing the legacy `threadId`", and the old value stays where it
was. Our schema never had that column: sessions that came from such a system carry the
value in their metadata, `session_metadata.threadId` (text), which is what this reads.

For each session whose metadata holds a non-empty text `threadId` and that has no legacy
thread yet, it creates a thread named `Legacy thread <threadId>` with one system message
at idx 0, `Legacy thread id: <threadId>`, both dated by the session's creation. The
metadata is left as it is. Pure SQL, one statement per table, so `upgrade --sql` prints it
without a database. The new rows' keys are random (version 4) UUIDs made by the
database, the one place keys are not version 7.

The downgrade removes exactly what the upgrade made: the legacy threads that still hold
only their system message. A thread that was written to since (its messages are someone's
work) is left in place, with its legacy message.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 03:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

THREAD_PREFIX = "Legacy thread "
MESSAGE_PREFIX = "Legacy thread id: "

# Per dialect: the legacy id of the session `s` (NULL unless non-empty text), and a new id.
_POSTGRESQL = {
    "legacy": (
        "(CASE WHEN jsonb_typeof(s.session_metadata -> 'threadId') = 'string' "
        "THEN NULLIF(s.session_metadata ->> 'threadId', '') END)"
    ),
    "new_id": "gen_random_uuid()",
}
_SQLITE = {
    "legacy": (
        "(CASE WHEN json_valid(s.session_metadata) "
        "AND json_type(s.session_metadata, '$.threadId') = 'text' "
        "THEN NULLIF(json_extract(s.session_metadata, '$.threadId'), '') END)"
    ),
    # 32 hex digits (how SQLite stores a UUID here), with the version 4 and variant bits.
    "new_id": (
        "lower(hex(randomblob(4)) || hex(randomblob(2)) || '4' || "
        "substr(hex(randomblob(2)), 2) || substr('89ab', 1 + (abs(random()) % 4), 1) || "
        "substr(hex(randomblob(2)), 2) || hex(randomblob(6)))"
    ),
}


def _sql() -> dict[str, str]:
    return _POSTGRESQL if op.get_context().dialect.name == "postgresql" else _SQLITE


def _legacy_threads(sql: dict[str, str]) -> str:
    """(thread id, legacy id) of every legacy thread: named after its session's thread id."""
    legacy = sql["legacy"]
    return (
        f"SELECT t.id AS thread_id, {legacy} AS legacy FROM threads t "
        f"JOIN sessions s ON s.id = t.session_id "
        f"WHERE {legacy} IS NOT NULL AND t.name = substr('{THREAD_PREFIX}' || {legacy}, 1, 255)"
    )


def upgrade() -> None:
    sql = _sql()
    legacy = sql["legacy"]
    op.execute(
        "INSERT INTO threads (id, session_id, name, status, created_at, updated_at) "
        f"SELECT {sql['new_id']}, s.id, substr('{THREAD_PREFIX}' || {legacy}, 1, 255), "
        "'active', s.created_at, s.created_at FROM sessions s "
        f"WHERE {legacy} IS NOT NULL AND NOT EXISTS (SELECT 1 FROM threads t "
        f"WHERE t.session_id = s.id AND t.name = substr('{THREAD_PREFIX}' || {legacy}, 1, 255))"
    )
    # Each legacy thread without messages (just made) gets its one system message.
    op.execute(
        "INSERT INTO thread_messages (id, thread_id, role, content, idx, created_at) "
        f"SELECT {sql['new_id']}, t.id, 'system', '{MESSAGE_PREFIX}' || {legacy}, 0, "
        "t.created_at FROM threads t JOIN sessions s ON s.id = t.session_id "
        f"WHERE {legacy} IS NOT NULL AND t.name = substr('{THREAD_PREFIX}' || {legacy}, 1, 255) "
        "AND NOT EXISTS (SELECT 1 FROM thread_messages m WHERE m.thread_id = t.id)"
    )


def downgrade() -> None:
    sql = _sql()
    # The legacy threads holding nothing but the message the upgrade wrote.
    untouched = (
        f"SELECT legacy_threads.thread_id FROM ({_legacy_threads(sql)}) legacy_threads "
        "JOIN thread_messages m ON m.thread_id = legacy_threads.thread_id "
        f"WHERE m.idx = 0 AND m.role = 'system' AND m.content = '{MESSAGE_PREFIX}' || "
        "legacy_threads.legacy AND NOT EXISTS (SELECT 1 FROM thread_messages other "
        "WHERE other.thread_id = legacy_threads.thread_id AND other.idx > 0)"
    )
    # Messages first: SQLite runs migrations with foreign keys (and so cascades) off.
    op.execute(f"DELETE FROM thread_messages WHERE thread_id IN ({untouched})")
    # Then the legacy threads left empty.
    op.execute(
        f"DELETE FROM threads WHERE id IN (SELECT thread_id FROM ({_legacy_threads(sql)}) lt) "
        "AND NOT EXISTS (SELECT 1 FROM thread_messages m WHERE m.thread_id = threads.id)"
    )
