"""Prompt files, the run's inputs, the flywheel's prompt store (Parquet shards, version manifests, the
nearest-neighbour index) and its mix, the prompt order, decontamination, expansion, the demo model and sentence
embeddings. No Ray: the store's Ray Data embedding pool lives in runtime/. May import core/, config/, rewards/."""
