"""Scorer throughput on this machine: items/s for each scorer kind, through the same ScorerActor a run uses (so
per-sample isolation and composition overheads are included). Prints JSON with the hardware.

- constraints: the demo's held-out prompts and canned responses (inline verifier).
- sql: a small SQLite shop database; each response a query compared against a reference query (child process).
- math: math-verify on boxed answers (child process).
- http: a local reward service on 127.0.0.1 (a real HTTP round trip per batch).
- reward_model: the 135M demo backbone with a scalar head, batch 16.
- judge: a vLLM JudgeActor with the demo model, pointwise, 32-token verdicts.

    python -m benchmarks.scoring [--items 256] [--judge-items 32] [--kinds constraints,sql,...]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sqlite3
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

KINDS = ("constraints", "sql", "math", "http", "reward_model", "judge")


class _LengthService(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 (http.server's naming)
        items = json.loads(self.rfile.read(int(self.headers["Content-Length"])))["items"]
        body = json.dumps({"scores": [min(len(i["response"]) / 100, 1.0) for i in items]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def _shop(directory: Path) -> Path:
    path = directory / "shop.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, price REAL, stock INTEGER)")
        conn.executemany("INSERT INTO items (name, price, stock) VALUES (?, ?, ?)",
                         [(f"item-{i}", round(i * 1.37 % 50, 2), i % 13) for i in range(2000)])
    return path


def _workload(kind: str, items: int, records: list[dict]) -> tuple[list[dict], list[list[str]]]:
    """(records, one group of 4 responses per record) adding up to `items` responses."""
    groups = items // 4
    if kind == "sql":
        record = {**records[0], "reference_sql": "SELECT name FROM items WHERE price > 40 AND stock > 5"}
        queries = ["SELECT name FROM items WHERE price > 40 AND stock > 5", "SELECT name FROM items WHERE price > 45",
                   "```sql\nSELECT name FROM items WHERE stock > 5 AND price > 40\n```", "SELEC nonsense"]
        return [record] * groups, [queries] * groups
    if kind == "math":
        record = {**records[0], "answer": "\\frac{3}{4}"}
        return [record] * groups, [["The answer is \\boxed{0.75}.", "So we get \\boxed{3/4}", "\\boxed{1/2}",
                                    "I am not sure."]] * groups
    responses = ["here is a short lowercase answer without commas.", "Here Is One, With Commas.",
                 "- one\n- two\n- three", "A longer answer. It has two sentences and mentions tea."]
    picked = [records[i % len(records)] for i in range(groups)]
    return picked, [responses] * groups


def _reward_model_dir(directory: Path, backbone: str) -> str:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(backbone, num_labels=1, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(backbone)
    model.config.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    model.save_pretrained(directory / "rm")
    tokenizer.save_pretrained(directory / "rm")
    return str(directory / "rm")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=256, help="responses per scorer kind")
    parser.add_argument("--judge-items", type=int, default=32)
    parser.add_argument("--kinds", default=",".join(KINDS))
    args = parser.parse_args()
    import ray

    from tao_ray.actors.judge import JudgeActor
    from tao_ray.actors.scorer import ScorerActor
    from tao_ray.config import ScoringSection
    from tao_ray.data.demo_model import materialize
    from tao_ray.data.prompts import load_prompts
    from tao_ray.run.tracking import hardware

    records = [p.as_dict() for p in load_prompts("prompts/demo/heldout.jsonl")]
    backbone = str(materialize())
    results = {}
    server = ThreadingHTTPServer(("127.0.0.1", 0), _LengthService)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    # log_to_driver=False: the engine logs would interleave with the JSON on stdout.
    ray.init(num_cpus=2, include_dashboard=False, logging_level="warning", log_to_driver=False)
    try:
        with tempfile.TemporaryDirectory(prefix="tao-ray-bench-") as tmp:
            scoring = dataclasses.asdict(ScoringSection())
            scoring["sql"]["database"] = str(_shop(Path(tmp)))
            scoring["http"]["url"] = f"http://127.0.0.1:{server.server_address[1]}/score"
            for kind in args.kinds.split(","):
                judges = None
                if kind == "reward_model":
                    scoring["reward_model"]["path"] = _reward_model_dir(Path(tmp), backbone)
                if kind == "judge":
                    judges = [ray.remote(num_cpus=1)(JudgeActor).remote(backbone, "float32", 2048, 0.25, 0.5, 0, 1,
                                                                        True, "pointwise", None, 32)]
                    ray.get(judges[0].ready.remote())
                scorer = ray.remote(num_cpus=1)(ScorerActor).remote(kind, scoring, False, "cpu", judges)
                count = args.judge_items if kind == "judge" else args.items
                batch_records, responses = _workload(kind, count, records)
                ray.get(scorer.score.remote(batch_records[:1], responses[:1]))  # warm-up: model load, child start
                started = time.perf_counter()
                result = ray.get(scorer.score.remote(batch_records, responses))
                seconds = time.perf_counter() - started
                scores, failed = result.raw, result.failed
                scored = sum(len(group) for group in scores)
                results[kind] = {"items": scored, "seconds": seconds, "items_per_s": scored / seconds,
                                 "failed": failed, "mean_score": sum(x for g in scores for x in g if x is not None)
                                 / max(scored - failed, 1)}
                print(json.dumps({kind: results[kind]}), file=sys.stderr, flush=True)
                for actor in [scorer, *(judges or [])]:
                    ray.kill(actor)
    finally:
        ray.shutdown()
        server.shutdown()
    print(json.dumps({"benchmark": "scoring", "results": results, "hardware": hardware()}, indent=2))


if __name__ == "__main__":
    main()
