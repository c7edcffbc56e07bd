"""The dashboard's Starlette application: routes, templates, static files, headers.

Every route answers GET (and HEAD) only, so the dashboard cannot change the database;
each request reads in one read-only session. Assets are the package's own files: the
Content-Security-Policy allows nothing from elsewhere, so a page that tried to load a
CDN script would fail in the browser, not silently work online.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from session_db.errors import InvalidInputError, NotFoundError
from session_db.web import format as fmt

STATIC = Path(__file__).resolve().parent / "static"
SECURITY_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        b"connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
]


class SecurityHeaders:
    """Adds SECURITY_HEADERS to every response (a plain ASGI wrapper: streams pass through)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on, adding the headers as the response starts."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, with_headers)


def make_templates() -> Jinja2Templates:
    """The page templates, autoescaped, with the number and money filters."""
    environment = Environment(
        loader=PackageLoader("session_db.web", "templates"),
        autoescape=select_autoescape(default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters.update(
        money=fmt.money,
        number=fmt.number,
        when=fmt.when,
        short=fmt.short,
    )
    return Jinja2Templates(env=environment)


def create_app(engine: AsyncEngine | None = None, *, poll_interval: float = 1.0) -> Starlette:
    """Build the dashboard application.

    Args:
        engine: The database to show; the default engine (SESSION_DB_URL, or the
            embedded SQLite file) when omitted.
        poll_interval: Seconds between the live event stream's looks for new events.

    Returns:
        A Starlette application serving GET routes only.
    """
    from session_db.web import pages, stream, usage

    def get(path: str, endpoint: Any, name: str) -> Route:
        return Route(path, endpoint, methods=["GET"], name=name)

    routes = [
        get("/", pages.overview, "overview"),
        get("/sessions", pages.sessions, "sessions"),
        get("/sessions/{slug:path}", pages.session, "session"),
        get("/usage", usage.usage, "usage"),
        get("/api/events/stream", stream.events_stream, "events_stream"),
        get("/healthz", healthz, "healthz"),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    app = Starlette(
        routes=routes,
        exception_handlers={
            NotFoundError: pages.not_found,
            InvalidInputError: pages.bad_request,
            404: pages.not_found,
        },
        lifespan=_lifespan(engine),
    )
    app.state.engine = engine
    app.state.templates = make_templates()
    app.state.poll_interval = poll_interval
    app.add_middleware(SecurityHeaders)
    return app


def _lifespan(engine: AsyncEngine | None) -> Any:
    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def lifespan(_: Starlette) -> Any:
        yield
        if engine is None:  # ours to close: the default engine
            from session_db.database import dispose_engine

            await dispose_engine()

    return lifespan


async def healthz(_: Request) -> Response:
    """Liveness: answers without touching the database."""
    return PlainTextResponse("ok")
