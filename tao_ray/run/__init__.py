"""A run on disk: checkpoints, resume rules, tracking (console, W&B, summary.json) and the report. May import
core/ and config/; never Ray."""
