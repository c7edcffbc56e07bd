"""`session-db serve`: the read-only dashboard on a local port.

The web stack is an optional extra, imported only here and only when the command runs.
The server listens on the loopback address: the pages show prompts, paths and costs, so
serving them to other machines takes an explicit `--allow-remote`.
"""

import ipaddress
import sys
from typing import Annotated

import typer

DEFAULT_PORT = 8321
# What the web extra installs (import names).
WEB_PACKAGES = {"starlette", "jinja2", "markupsafe", "sse_starlette", "uvicorn"}


def is_loopback(host: str) -> bool:
    """Whether `host` names this machine only (127.0.0.0/8, ::1 or localhost)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def serve(
    port: Annotated[
        int, typer.Option("--port", "-p", min=1, max=65535, help="The port to listen on.")
    ] = DEFAULT_PORT,
    host: Annotated[
        str, typer.Option(help="The address to listen on (loopback unless --allow-remote).")
    ] = "127.0.0.1",
    allow_remote: Annotated[
        bool,
        typer.Option("--allow-remote", help="Allow a --host other machines can reach (no login!)."),
    ] = False,
) -> None:
    """Serve the read-only dashboard: overview, sessions, live events (needs the web extra)."""
    if not is_loopback(host) and not allow_remote:
        raise typer.BadParameter(
            f"{host} is reachable from other machines and the dashboard has no login; "
            "pass --allow-remote to serve it anyway",
            param_hint="'--host' (see --allow-remote)",
        )
    try:
        import uvicorn

        from session_db.web import create_app
    except ImportError as error:
        if (error.name or "").partition(".")[0] not in WEB_PACKAGES:
            raise  # a bug of ours, not a missing extra
        print(
            "session-db: error: the dashboard needs the web extra: "
            "install session-db[web] (pip install 'session-db[web]')",
            file=sys.stderr,
        )
        raise typer.Exit(1) from None
    from session_db.database import describe_url

    shown = f"[{host}]" if ":" in host else host
    print(f"session-db dashboard on http://{shown}:{port}/ ({describe_url()}); Ctrl-C stops")
    sys.stdout.flush()
    uvicorn.run(create_app(), host=host, port=port, log_level="warning", access_log=False)
