"""`session-db db ...`: Alembic's upgrade, downgrade, current, history and check."""

import io
from contextlib import redirect_stdout
from typing import Annotated

import typer

from session_db.cli.common import print_json, run

app = typer.Typer(
    help="Migrate the database (Alembic, working from an installed package).",
    no_args_is_help=True,
)

SqlOption = Annotated[
    bool, typer.Option("--sql", help="Print the SQL instead of running it (the dry run).")
]
BackupOption = Annotated[
    bool,
    typer.Option(
        "--backup",
        help="Back the database up first (SQLite: a copy beside it; PostgreSQL: pg_dump).",
    ),
]


@app.command()
def upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
    sql: SqlOption = False,
    backup: BackupOption = False,
) -> None:
    """Upgrade the database to a revision (default: the newest)."""
    if sql:
        _print_sql("upgrade", revision)
        return
    run(_migrate("upgrade", revision, backup))


# `-1` looks like an option to click; kept as an argument, `db downgrade -1` works as
# written (so does `db downgrade -- -1`).
@app.command(context_settings={"ignore_unknown_options": True})
def downgrade(
    revision: Annotated[
        str, typer.Argument(help="Target revision: an id, -1 (one step back), or base.")
    ],
    sql: SqlOption = False,
    backup: BackupOption = False,
) -> None:
    """Downgrade the database to a revision (`base` removes every table)."""
    if revision.startswith("-") and not revision[1:].isdigit():
        # An unknown option, let through by ignore_unknown_options.
        raise typer.BadParameter(
            f"no such option {revision} (a revision is an id, -N or base)",
            param_hint="REVISION",
        )
    if sql:
        if ":" not in revision:
            start = run(_current()) or "base"
            revision = f"{start}:{revision}"
        _print_sql("downgrade", revision)
        return
    run(_migrate("downgrade", revision, backup))


@app.command()
def current(
    json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show the revision the database is at."""
    from session_db import migrate

    revision, head = run(_current()), migrate.head_revision()
    database = _configured_database()
    if json:
        print_json(
            {
                "database": database,
                "revision": revision,
                "head": head,
                "up_to_date": revision == head,
            }
        )
        return
    where = "not migrated" if revision is None else f"at revision {revision}"
    behind = "" if revision == head else f"; the newest is {head}"
    print(f"{database} is {where}{' (head)' if revision == head else behind}")


@app.command()
def history() -> None:
    """List the migrations, newest first."""
    from alembic import command

    from session_db.migrate import alembic_config

    command.history(alembic_config())


@app.command()
def check() -> None:
    """Fail if the models and the migrations disagree (the database must be at head)."""
    run(_check())
    print("no differences between the models and the migrations")


async def _current() -> str | None:
    from session_db import migrate
    from session_db.database import get_engine

    return await migrate.current_revision(get_engine())


def _configured_database() -> str:
    """The configured database's URL, password hidden, without opening an engine on it."""
    from session_db.config import get_settings

    return get_settings().database_url().render_as_string(hide_password=True)


def _migration_error(error: Exception, database: str) -> Exception:
    """Alembic's refusal, naming the database and where the revisions are listed."""
    from session_db.errors import MigrationError

    return MigrationError(f"{error} ({database}): `session-db db history` lists the revisions")


async def _migrate(direction: str, revision: str, backup: bool) -> None:
    from session_db import migrate
    from session_db.backup import backup_database
    from session_db.database import describe_url, get_engine
    from session_db.errors import MigrationError

    engine = get_engine()
    if backup:
        print(f"backup written to {await backup_database(engine)}")
    try:
        if direction == "upgrade":
            await migrate.upgrade(engine, revision)
        else:
            await migrate.downgrade(engine, revision)
    except MigrationError as error:
        raise _migration_error(error, describe_url()) from error
    now = await migrate.current_revision(engine)
    head = " (head)" if now == migrate.head_revision() else ""
    print(f"session_db: {describe_url()} is at revision {now or 'base'}{head}")


async def _check() -> None:
    from session_db import migrate
    from session_db.database import get_engine

    await migrate.check(get_engine())  # MigrationError: one line at the top


def _print_sql(direction: str, revision: str) -> None:
    from alembic import command
    from alembic.util.exc import CommandError

    from session_db.errors import MigrationError
    from session_db.migrate import alembic_config

    buffer = io.StringIO()
    try:
        with redirect_stdout(buffer):
            getattr(command, direction)(alembic_config(), revision, sql=True)
    except CommandError as error:
        first = MigrationError(str(error).strip().splitlines()[0])
        raise _migration_error(first, _configured_database()) from error
    print(buffer.getvalue(), end="")
