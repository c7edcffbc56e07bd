"""One canonical name per model, whichever provider or release date an id carries.

Claude Code reports `claude-sonnet-4-5-20250929`, the API accepts `claude-sonnet-4-5`,
Bedrock calls the same model `us.anthropic.claude-sonnet-4-5-20250929-v1:0` and Vertex
`claude-sonnet-4-5@20250929`. Reports group all of them under `claude-sonnet-4-5`, the
name a person uses. Ids of other vendors lose only their provider prefix and date stamp
(`gpt-4o-2024-08-06` → `gpt-4o`, `models/gemini-2.5-pro` → `gemini-2.5-pro`).
"""

import re

__all__ = ["canonical_model_name"]

# Bedrock's cross-region inference profiles put the geography first.
_REGION = re.compile(r"^(?:us|eu|apac|jp|au|ca|us-gov|global)\.")
# Bedrock (`anthropic.`), OpenRouter-style (`anthropic/`) and the Gemini API (`models/`).
_PROVIDER = re.compile(r"^(?:anthropic|openai|google|models)[./]")
_BEDROCK_VERSION = re.compile(r"-v\d+(?::\d+)?$")
_VERTEX_VERSION = re.compile(r"@(?:\d{8}|latest|\d{3})$")
_DATE = re.compile(r"-(?:\d{8}|\d{4}-\d{2}-\d{2})$")


def canonical_model_name(model_id: str) -> str:
    """The name reports group `model_id` under: no region, provider, version or date."""
    name = model_id.strip().lower()
    name = _REGION.sub("", name)
    name = _PROVIDER.sub("", name)
    name = _BEDROCK_VERSION.sub("", name)
    name = _VERTEX_VERSION.sub("", name)
    name = _DATE.sub("", name)
    return name or model_id
