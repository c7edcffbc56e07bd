"""The local dashboard (`session-db serve`): read-only pages over the database.

Needs the `web` extra (`pip install 'session-db[web]'`). `create_app(engine)` builds the
Starlette application; the command line serves it with uvicorn on 127.0.0.1.
"""

from session_db.web.app import create_app

__all__ = ["create_app"]
