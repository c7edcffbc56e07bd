"""`python -m session_db`: the `session-db` command line."""

import sys

from session_db.console import main

if __name__ == "__main__":
    sys.exit(main())
