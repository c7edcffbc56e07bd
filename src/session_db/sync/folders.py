"""Session folders on disk: where they are, whether they changed, and their bytes.

A project keeps its sessions in `{project_root}/agents/sessions/{slug}/`. Everything
here is filesystem work with no database, shared by the sync and the sync pool.
"""

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from session_db.errors import PathEscapeError
from session_db.sync.formats import PLAN_FILE, STATE_FILE, FormatError, check_slug

SESSIONS_DIR = ("agents", "sessions")
_WATCHED = (STATE_FILE, PLAN_FILE)


def sessions_dir(project_root: Path) -> Path:
    """The folder holding a project's session folders."""
    return project_root.joinpath(*SESSIONS_DIR)


def resolve_project_root(project_root: str | os.PathLike[str]) -> Path:
    """The project root as an absolute path with symlinks resolved.

    Raises:
        FileNotFoundError: The folder does not exist.
        NotADirectoryError: It is not a folder.
    """
    try:
        root = Path(project_root).expanduser().resolve(strict=True)
    except FileNotFoundError:
        raise FileNotFoundError(f"project root {project_root} does not exist") from None
    if not root.is_dir():
        raise NotADirectoryError(f"project root {root} is not a folder")
    return root


def resolve_session_dir(root: Path, session: str | os.PathLike[str]) -> Path:
    """The folder of one session of the project at `root` (resolved), refusing escapes.

    Args:
        root: The resolved project root.
        session: A slug, or a path (absolute, or relative to the root) to the folder.

    Returns:
        `root/agents/sessions/{slug}`, spelled through the root even when reached by a
        symlink inside the tree.

    Raises:
        PathEscapeError: The folder is not directly under `agents/sessions/`, or a
            the parent folder differs only through a symlink that leads elsewhere.
    """
    given = Path(session)
    if not given.is_absolute():
        given = sessions_dir(root) / given if len(given.parts) == 1 else root / given
    folder = Path(os.path.normpath(given))
    try:
        check_slug(folder.name, "a session folder")
    except FormatError as error:
        raise PathEscapeError(session, str(error)) from None
    if folder.parent != sessions_dir(root):
        # A folder reached through a symlinked root spells another prefix; accept it
        # when it lands on the same place.
        if folder.parent.resolve() != sessions_dir(root).resolve():
            raise PathEscapeError(session, f"is not a folder directly under {sessions_dir(root)}")
        folder = sessions_dir(root) / folder.name
    return folder


def fingerprint(folder: Path) -> str:
    """(mtime, size) of the files a sync reads: cheap to take, changes when they do."""
    parts = []
    for name in _WATCHED:
        try:
            stat = (folder / name).stat()
        except (FileNotFoundError, NotADirectoryError):
            parts.append("-")
        else:
            parts.append(f"{stat.st_mtime_ns}:{stat.st_size}")
    return "|".join(parts)


@dataclass(frozen=True)
class FolderContent:
    """The bytes of a session folder's files, read once, with their hash."""

    state: bytes | None
    plan: bytes | None
    content_hash: str


def read_folder(root: Path, folder: Path) -> FolderContent:
    """Read `state.json` and `plan.json` (either may be missing) and hash them together.

    Raises:
        PathEscapeError: The folder or one of its files is a link to a place outside
            the project root.
        OSError: A file exists but cannot be read.
    """
    if not folder.resolve().is_relative_to(root):
        raise PathEscapeError(folder, "is a link to a place outside the project root")
    contents: list[bytes | None] = []
    digest = hashlib.sha256()
    for name in _WATCHED:
        path = folder / name
        if path.is_symlink() and not path.resolve().is_relative_to(root):
            raise PathEscapeError(path, "is a link to a place outside the project root")
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            data = None
        contents.append(data)
        # Length-prefixed, so moving bytes from one file to the other changes the hash.
        framed = b"\0%d\0" % len(data) + data if data is not None else b"\0-\0"
        digest.update(name.encode() + framed)
    return FolderContent(state=contents[0], plan=contents[1], content_hash=digest.hexdigest())


def list_session_folders(root: Path) -> list[Path]:
    """Every session folder of a project, sorted by name (hidden folders skipped)."""
    base = sessions_dir(root)
    if not base.is_dir():
        return []
    return sorted(
        base / entry.name
        for entry in os.scandir(base)
        if entry.is_dir() and not entry.name.startswith(".")
    )


def project_root_of(session_dir: str | os.PathLike[str]) -> Path:
    """The project root of a folder laid out as `{root}/agents/sessions/{slug}`.

    Raises:
        PathEscapeError: The folder is not laid out that way.
    """
    folder = Path(os.path.normpath(Path(session_dir).absolute()))
    if len(folder.parents) < 3 or (folder.parents[1].name, folder.parent.name) != SESSIONS_DIR:
        raise PathEscapeError(session_dir, "is not a folder under agents/sessions/")
    return folder.parents[2]
