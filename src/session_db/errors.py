"""The errors session_db raises; callers catch `SessionDBError` to catch them all."""

from __future__ import annotations


class SessionDBError(Exception):
    """Base of every error session_db raises on purpose."""


class ConfigurationError(SessionDBError):
    """The settings cannot work (bad URL, unsupported driver); the message hides secrets."""


class ResetRefusedError(SessionDBError):
    """`reset_db()` was called without an explicit request to delete everything."""
