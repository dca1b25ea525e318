"""Telegram adapter (in progress)."""
