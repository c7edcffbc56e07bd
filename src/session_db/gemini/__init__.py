"""Gemini CLI: chat files (`<projectHash>/chats/session-*.json[l]`) imported as sessions."""
