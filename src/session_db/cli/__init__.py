"""The `session-db` command line (also `python -m session_db`)."""
