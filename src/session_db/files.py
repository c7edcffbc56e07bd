"""Files session_db creates are readable by their owner only, whatever the umask.

A database, its logs and its backups hold what agents did (prompts, tool output, paths),
so nothing we create is left readable by other users: a new file is made with mode 0600
before anything writes to it, never tightened afterwards.
"""

from __future__ import annotations

import os
from logging.handlers import RotatingFileHandler
from pathlib import Path
from typing import IO, Any

PRIVATE_FILE_MODE = 0o600


def create_private_file(path: str | os.PathLike[str]) -> bool:
    """Create `path` empty with mode 0600 unless it exists; return whether it was created."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, PRIVATE_FILE_MODE)
    except FileExistsError:
        return False
    os.close(fd)
    return True


class PrivateRotatingFileHandler(RotatingFileHandler):
    """A RotatingFileHandler whose log file, and each one rotation starts, is mode 0600."""

    def _open(self) -> IO[Any]:
        create_private_file(Path(self.baseFilename))
        return super()._open()


__all__ = ["PRIVATE_FILE_MODE", "PrivateRotatingFileHandler", "create_private_file"]
