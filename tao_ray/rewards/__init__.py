"""Reward functions: (prompt record, response text) -> score in [0, 1], or an exception for a broken sample."""
