"""Claude Code integration: hook capture, delivery and transcript import."""
