"""session_db: record what AI coding agents do.

Importing the package does nothing else: no settings are read, no engine is built and no
model is imported until you ask (`session_db.database`, `session_db.models`).
"""

__version__ = "0.1.0"
