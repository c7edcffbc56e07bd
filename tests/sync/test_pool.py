"""SyncPool on both engines: background syncs, coalescing, bounds, drain, and outages."""

import asyncio
import contextlib
import socket
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from faults import Saboteur, faulty_engine
from sqlalchemy import event
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select
from support import isolated_settings
from sync_support import PLAN, write_plan

from session_db import crud
from session_db.database import create_engine, get_async_session
from session_db.errors import ConfigurationError, PathEscapeError
from session_db.models import SyncState
from session_db.sync import StateManager, SyncPool, sync_project
from session_db.sync.pool import SyncPoolClosedError


def make_pool(url: URL | str, **options: object) -> SyncPool:
    options.setdefault("initial_backoff", 0.05)
    settings = options.pop("settings", isolated_settings())
    return SyncPool(settings=settings, url=url, **options)  # type: ignore[arg-type]


def sessions_dir(tmp_path: Path) -> Path:
    return tmp_path / "project" / "agents" / "sessions"


async def wait_idle(pool: SyncPool, seconds: float = 30) -> None:
    assert await asyncio.to_thread(pool.wait_until_idle, seconds), pool.stats()


def wait_for(condition: Callable[[], bool], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


async def phases(engine: AsyncEngine) -> dict[str, str]:
    async with get_async_session(engine) as db:
        return {s.session_slug: s.phase for s in await crud.list_sessions(db)}


async def test_saves_are_mirrored_in_the_background(
    db_url: URL, engine: AsyncEngine, tmp_path: Path
) -> None:
    results = []
    with make_pool(db_url, on_result=results.append) as pool:
        manager = StateManager.create(
            sessions_dir(tmp_path) / "alpha", topic="Alpha", on_save_callback=pool.submit
        )
        manager.transition_to("plan")
        await wait_idle(pool)
        assert await phases(engine) == {"alpha": "plan"}
        manager.transition_to("build")
        await wait_idle(pool)
        assert await phases(engine) == {"alpha": "build"}
        stats = pool.stats()
    assert stats.synced == stats.submitted - stats.coalesced >= 2
    assert (stats.failed, stats.pending) == (0, 0)
    assert all(result.session_dir == manager.session_dir for result in results)


async def test_repeated_submits_of_one_folder_coalesce(
    db_url: URL, engine: AsyncEngine, tmp_path: Path
) -> None:
    with make_pool(db_url, concurrency=1) as pool:
        folders = [
            StateManager.create(sessions_dir(tmp_path) / f"s{n}", topic=f"S{n}").session_dir
            for n in range(5)
        ]
        for _ in range(40):
            for folder in folders:
                pool.submit(folder)
        await wait_idle(pool)
        stats = pool.stats()
    assert stats.submitted == 200
    # Each submit either joined a waiting sync or caused one: nothing ran twice for nothing.
    assert stats.synced == stats.submitted - stats.coalesced
    assert stats.synced <= 2 * len(folders), stats
    assert len(await phases(engine)) == 5


async def test_close_drains_everything_queued(
    db_url: URL, engine: AsyncEngine, tmp_path: Path
) -> None:
    pool = make_pool(db_url)
    for n in range(30):
        StateManager.create(
            sessions_dir(tmp_path) / f"s{n:02}", topic=f"S{n}", on_save_callback=pool.submit
        )
    assert await asyncio.to_thread(pool.close) is True
    assert pool.stats().synced == 30
    assert len(await phases(engine)) == 30
    with pytest.raises(SyncPoolClosedError):
        pool.submit(sessions_dir(tmp_path) / "s00")
    assert pool.close() is True  # closing twice is harmless


async def test_concurrency_is_bounded(db_url: URL, engine: AsyncEngine, tmp_path: Path) -> None:
    in_use, peak = 0, 0
    lock = threading.Lock()

    def counting_engine() -> AsyncEngine:
        counted = create_engine(isolated_settings(), url=db_url)

        @event.listens_for(counted.sync_engine, "checkout")
        def checkout(*_: object) -> None:
            nonlocal in_use, peak
            with lock:
                in_use += 1
                peak = max(peak, in_use)

        @event.listens_for(counted.sync_engine, "checkin")
        def checkin(*_: object) -> None:
            nonlocal in_use
            with lock:
                in_use -= 1

        return counted

    with SyncPool(engine_factory=counting_engine, concurrency=2) as pool:
        for n in range(24):
            StateManager.create(
                sessions_dir(tmp_path) / f"s{n:02}", topic="S", on_save_callback=pool.submit
            )
        await wait_idle(pool)
    assert peak == 2, f"{peak} connections were in use at once"
    assert len(await phases(engine)) == 24


async def test_submit_is_safe_from_many_threads(
    db_url: URL, engine: AsyncEngine, tmp_path: Path
) -> None:
    folders = [
        StateManager.create(sessions_dir(tmp_path) / f"s{n}", topic="S").session_dir
        for n in range(8)
    ]
    with make_pool(db_url) as pool:

        def hammer() -> None:
            for _ in range(50):
                for folder in folders:
                    pool.submit(folder)

        threads = [threading.Thread(target=hammer) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        await wait_idle(pool)
        stats = pool.stats()
    assert stats.submitted == 4 * 50 * 8
    assert stats.synced == stats.submitted - stats.coalesced and stats.failed == 0
    assert len(await phases(engine)) == 8


async def test_permanent_errors_are_counted_and_the_pool_moves_on(
    db_url: URL, engine: AsyncEngine, tmp_path: Path
) -> None:
    with make_pool(db_url) as pool:
        pool.submit(sessions_dir(tmp_path) / "never-existed")
        StateManager.create(
            sessions_dir(tmp_path) / "fine", topic="F", on_save_callback=pool.submit
        )
        await wait_idle(pool)
        with pytest.raises(PathEscapeError):
            pool.submit(tmp_path / "not-a-session-folder")
        stats = pool.stats()
    assert (stats.failed, stats.synced, stats.retried) == (1, 1, 0)
    assert await phases(engine) == {"fine": "spec"}


def test_a_bad_url_fails_at_construction() -> None:
    with pytest.raises(ConfigurationError):
        SyncPool(settings=isolated_settings(), url="mysql://user:secret@host/db")


def unreachable_url(db_url: URL, tmp_path: Path) -> str:
    if db_url.get_backend_name() == "sqlite":
        # A folder where the file should be: the engine is made, every connection fails.
        blocker = tmp_path / "a-folder.sqlite"
        blocker.mkdir()
        return f"sqlite+aiosqlite:///{blocker}"
    return db_url.set(port=closed_port()).render_as_string(hide_password=False)


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def test_saves_go_on_while_the_database_is_unreachable_and_one_sync_catches_up(
    db_url: URL, engine: AsyncEngine, tmp_path: Path
) -> None:
    pool = make_pool(unreachable_url(db_url, tmp_path), max_attempts=3, initial_backoff=0.01)
    managers = [
        StateManager.create(
            sessions_dir(tmp_path) / f"s{n}", topic="S", on_save_callback=pool.submit
        )
        for n in range(3)
    ]
    for manager in managers:
        manager.transition_to("plan")
    managers[0].transition_to("build")
    for manager in managers:  # every save landed on disk
        assert StateManager(manager.session_dir).load()["current_phase"] in ("plan", "build")
    await asyncio.to_thread(pool.close, 10)
    stats = pool.stats()
    assert stats.retried > 0 and stats.failed > 0 and stats.synced == 0, stats
    report = await sync_project(tmp_path / "project", engine=engine)
    assert report.counts["synchronized"] == 3
    assert await phases(engine) == {"s0": "build", "s1": "plan", "s2": "plan"}


@contextlib.asynccontextmanager
async def proxy_to(target: URL, port: int) -> AsyncIterator[None]:
    """Forward 127.0.0.1:port to the PostgreSQL server of `target`: the server 'comes back'."""

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(
            target.host, target.port or 5432
        )
        await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))

    server = await asyncio.start_server(handle, "127.0.0.1", port)
    try:
        yield
    finally:
        server.close()


async def test_the_pool_catches_up_by_itself_when_the_database_comes_back(
    db_url: URL, engine: AsyncEngine, tmp_path: Path
) -> None:
    resume: Callable[[], object]
    if db_url.get_backend_name() == "sqlite":
        # Down: another process holds the write lock longer than the pool will wait.
        holder = sqlite3.connect(db_url.database or "", check_same_thread=False)
        holder.execute("BEGIN EXCLUSIVE")
        pool_url: URL | str = db_url
        settings = isolated_settings().model_copy(update={"sqlite_busy_timeout_ms": 20})
        resume, back = holder.rollback, contextlib.nullcontext()
    else:
        port = closed_port()
        pool_url = db_url.set(port=port)
        settings = isolated_settings().model_copy(update={"connect_timeout": 2})
        resume, back = (lambda: None), proxy_to(db_url, port)
    pool = make_pool(
        pool_url, settings=settings, initial_backoff=0.05, max_backoff=0.2, max_attempts=200
    )
    try:
        manager = StateManager.create(
            sessions_dir(tmp_path) / "alpha", topic="A", on_save_callback=pool.submit
        )
        manager.transition_to("plan")
        await asyncio.to_thread(wait_for, lambda: pool.stats().retried >= 2)
        resume()
        async with back:
            await wait_idle(pool)
            stats = pool.stats()
    finally:
        await asyncio.to_thread(pool.close, 10)
        if db_url.get_backend_name() == "sqlite":
            holder.close()
    assert stats.synced >= 1 and stats.failed == 0, stats
    assert await phases(engine) == {"alpha": "plan"}
    async with get_async_session(engine) as db:
        state = (await db.exec(select(SyncState))).one()
    assert state.sync_status == "synchronized"


async def test_a_burst_of_saves_costs_one_sync_of_the_newest_files(
    db_url: URL, engine: AsyncEngine, tmp_path: Path
) -> None:
    with make_pool(db_url, delay=1.0) as pool:
        manager = StateManager.create(
            sessions_dir(tmp_path) / "alpha", topic="A", on_save_callback=pool.submit
        )
        for phase in ("plan", "build", "docs"):
            manager.transition_to(phase)
        await wait_idle(pool)
        stats = pool.stats()
    assert (stats.submitted, stats.synced, stats.coalesced) == (4, 1, 3)
    assert await phases(engine) == {"alpha": "docs"}


@pytest.mark.slow
async def test_faults_mid_sync_are_retried_and_every_folder_syncs_once(
    db_url: URL, engine: AsyncEngine, tmp_path: Path
) -> None:
    if db_url.get_backend_name() == "sqlite":
        # The write lock held at BEGIN; one folder at a time, so the faults stay put.
        breaks: dict[int, int | str] = {1: 1, 4: 1, 6: 1}
        concurrency = 1
    else:  # backends terminated before a statement, mid-mirror and at commit
        breaks = {1: 1, 3: "commit", 5: 12, 8: 20}
        concurrency = 2
    saboteurs: list[Saboteur] = []

    def sabotaged_engine() -> AsyncEngine:
        built = faulty_engine(db_url)
        saboteurs.append(Saboteur(built, breaks))
        return built

    folders = []
    for n in range(12):
        manager = StateManager.create(sessions_dir(tmp_path) / f"s{n:02}", topic=f"S{n}")
        write_plan(manager.session_dir, PLAN)
        folders.append(manager.session_dir)
    pool = SyncPool(
        engine_factory=sabotaged_engine,
        concurrency=concurrency,
        initial_backoff=0.01,
        max_backoff=0.05,
    )
    try:
        for folder in folders:
            pool.submit(folder)
        await wait_idle(pool)
        stats = pool.stats()
    finally:
        await asyncio.to_thread(pool.close, 10)
        for saboteur in saboteurs:
            saboteur.release()
    assert saboteurs[0].broken == sorted(breaks)  # every fault happened
    assert (stats.synced, stats.failed, stats.retried) == (12, 0, len(breaks)), stats
    async with get_async_session(engine) as db:
        states = (await db.exec(select(SyncState))).all()
        sessions = await crud.list_sessions(db)
    assert len(states) == 12 and {(s.sync_status, s.error_message) for s in states} == {
        ("synchronized", None)
    }
    assert len(sessions) == 12 and all(s.total_tasks == 3 for s in sessions)
