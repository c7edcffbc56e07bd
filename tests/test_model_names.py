"""Model ids from Claude Code, the Anthropic API, Bedrock, Vertex, OpenAI and Gemini."""

import pytest

from session_db.model_names import canonical_model_name


@pytest.mark.parametrize(
    ("model_id", "canonical"),
    [
        ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
        ("claude-sonnet-4-5", "claude-sonnet-4-5"),
        ("anthropic.claude-sonnet-4-5-20250929-v1:0", "claude-sonnet-4-5"),
        ("us.anthropic.claude-sonnet-4-5-20250929-v1:0", "claude-sonnet-4-5"),
        ("global.anthropic.claude-opus-4-6-v1", "claude-opus-4-6"),
        ("claude-sonnet-4-5@20250929", "claude-sonnet-4-5"),
        ("claude-3-5-haiku@20241022", "claude-3-5-haiku"),
        ("claude-3-5-sonnet-v2@20241022", "claude-3-5-sonnet-v2"),
        ("claude-haiku-4-5-20251001", "claude-haiku-4-5"),
        ("gpt-4o-2024-08-06", "gpt-4o"),
        ("gpt-5-codex", "gpt-5-codex"),
        ("models/gemini-2.5-pro", "gemini-2.5-pro"),
        ("gemini-2.5-flash", "gemini-2.5-flash"),
        ("Claude-Opus-4-1-20250805", "claude-opus-4-1"),
    ],
)
def test_canonical_model_name_groups_provider_and_dated_ids(model_id: str, canonical: str) -> None:
    assert canonical_model_name(model_id) == canonical


def test_canonical_model_name_keeps_an_id_it_would_empty() -> None:
    assert canonical_model_name("models/") == "models/"
