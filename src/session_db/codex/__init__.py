"""Codex CLI: rollout files (`sessions/YYYY/MM/DD/rollout-*.jsonl`) imported as sessions."""
