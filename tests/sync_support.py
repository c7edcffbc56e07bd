"""Session folders the sync tests share: a plan.json with groups, tasks and dependencies."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

PLAN = {
    "session_id": "parent",
    "status": "approved",
    "checkpoints": [
        {
            "id": 1,
            "title": "Storage",
            "goal": "tables",
            "prerequisites": [],
            "status": "in_progress",
            "task_groups": [
                {
                    "id": "1.1",
                    "title": "Schema",
                    "objective": "models and migration",
                    "status": "in_progress",
                    "tasks": [
                        {"id": "1.1.1", "title": "models", "status": "completed"},
                        {
                            "id": "1.1.2",
                            "title": "migration",
                            "status": "pending",
                            "depends_on": ["1.1.1"],
                            "file_path": "migrations/0001.py",
                            "actions": ["write"],
                        },
                    ],
                }
            ],
        },
        {
            "id": 2,
            "title": "API",
            "task_groups": [
                {
                    "id": "2.1",
                    "title": "Routes",
                    "tasks": [
                        {"id": "2.1.1", "title": "routes", "status": "wip", "depends_on": ["1.1.2"]}
                    ],
                }
            ],
        },
    ],
}


def write_plan(folder: Path, plan: dict[str, Any]) -> None:
    (folder / "plan.json").write_text(json.dumps(plan))
