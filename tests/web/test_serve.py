"""`session-db serve`: loopback only unless told otherwise, and a real server when run."""

from __future__ import annotations

import subprocess
import sys
import time

import httpx
import pytest
from sqlalchemy.engine import URL
from support import cli
from web_support import free_port

from session_db.cli.serve import is_loopback


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20", "example.com"])
def test_serve_refuses_a_reachable_address_without_allow_remote(
    capsys: pytest.CaptureFixture[str], host: str
) -> None:
    code, out, err = cli(capsys, "serve", "--host", host)
    assert code == 2
    assert "--host" in err and "--allow-remote" in err
    assert out == ""


def test_serve_refuses_a_port_out_of_range(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(capsys, "serve", "--port", "99999")
    assert code == 2 and "--port" in err


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("10.0.0.1", False),
        ("host.lan", False),
    ],
)
def test_only_loopback_addresses_count_as_local(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_serve_runs_the_dashboard_on_the_port_given(cli_db: URL) -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "session_db", "serve", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                reply = httpx.get(f"http://127.0.0.1:{port}/sessions", timeout=2)
                break
            except httpx.TransportError:
                assert process.poll() is None, process.communicate()[1]
                assert time.monotonic() < deadline, "the server did not answer"
                time.sleep(0.2)
        assert reply.status_code == 200 and "No sessions match." in reply.text
    finally:
        process.terminate()
        out, _ = process.communicate(timeout=20)
    assert out.startswith(f"session-db dashboard on http://127.0.0.1:{port}/")


BLOCK_UVICORN = """
import importlib.abc, sys

class NoUvicorn(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "uvicorn" or name.startswith("uvicorn."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, NoUvicorn())
from session_db.cli.app import main
sys.exit(main(["serve"]))
"""


def test_serve_without_the_web_extra_says_in_one_line_to_install_it(tmp_path) -> None:  # type: ignore[no-untyped-def]
    done = subprocess.run(
        [sys.executable, "-c", BLOCK_UVICORN],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "session-db: error: the dashboard needs the web extra: "
        "install session-db[web] (pip install 'session-db[web]')"
    ]
    assert done.stdout == ""
