"""Amp: thread files (`threads/T-<uuid>.json`) imported as sessions, threads and usage."""
