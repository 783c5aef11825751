"""Ray actors: thin shells over library code, one file per role. Resources are set at launch (runtime/launch.py)."""
