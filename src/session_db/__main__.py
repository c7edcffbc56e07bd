"""`python -m session_db`: create or upgrade the configured database and say where it is."""

import asyncio
import sys


async def _init() -> str:
    from session_db.database import describe_url, dispose_engine, get_engine, init_db
    from session_db.migrate import current_revision

    try:
        await init_db()
        revision = await current_revision(get_engine())
        return f"session_db: {describe_url()} is at revision {revision} (head)"
    finally:
        await dispose_engine()


def main() -> int:
    """Run `init_db()` on the configured database; print one line, exit non-zero on error."""
    from session_db.errors import SessionDBError

    try:
        print(asyncio.run(_init()))
    except (SessionDBError, OSError) as error:
        print(f"session_db: error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
