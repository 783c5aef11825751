"""Prompt files and the prompt order."""
