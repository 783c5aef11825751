"""How `tao-ray ingest` grows with the log and with the store, against the bare embedder on the same texts.

For each log size (default 10k and 100k distinct synthetic prompts, made here from a seed):
- ingest: the whole command, `python -m tao_ray ingest LOG --store EMPTY` (local Ray start, the Ray Data embedding
  pool, checks, shards, index), wall seconds and the peak resident memory of its process tree;
- bare embedder: sentence-transformers encoding the same texts in one process, model load included (the limit on
  this machine: ingest cannot embed faster than its embedder);
- 1,000 new prompts into that store, against 1,000 into an empty store (a store must not be re-embedded);
and the exponent of ingest time against log size (log-log slope), both for the whole command and for its
embed-and-check stage alone (the manifest's seconds, without Ray's start-up).
Prints JSON and writes results-ingest-scale-cpu.json.

    python -m benchmarks.ingest_scale [--sizes 10000,100000] [--repeats 3]

Repeats: each small size is run `repeats` times (medians); a size over 50,000 prompts once (minutes per run here).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

OUT = Path(__file__).with_name("results-ingest-scale-cpu.json")
NEW_PROMPTS = 1000

_ASKS = ["Explain {topic} to {audience}", "Write a short story about {topic} for {audience}",
         "Give {audience} practical advice on {topic}", "Compare {topic} with {other} for {audience}",
         "Draft an email to {audience} about {topic}", "Summarize what {audience} should know about {topic}",
         "Write a poem about {topic} that {audience} would enjoy", "Plan a weekend project on {topic} for {audience}",
         "List common mistakes {audience} make with {topic}", "Describe how {topic} changed over the last century"]
_ADJECTIVES = ["ancient", "urban", "coastal", "mechanical", "seasonal", "digital", "wild", "medieval", "tiny",
               "floating", "northern", "forgotten", "electric", "rural", "underground", "tropical", "handmade",
               "volcanic", "nocturnal", "industrial", "musical", "desert", "arctic", "experimental", "family"]
_NOUNS = ["bridges", "gardens", "clocks", "markets", "lighthouses", "bakeries", "railways", "beehives", "libraries",
          "glaciers", "telescopes", "vineyards", "harbors", "bicycles", "kites", "mosaics", "windmills", "caves",
          "orchestras", "ferries", "lanterns", "quilts", "canals", "observatories", "greenhouses", "castles",
          "printing presses", "sailboats", "tea ceremonies", "chess clubs", "pottery", "radio stations", "mazes",
          "aquariums", "typewriters", "fire stations", "orchards", "puppet theaters", "salt mines", "tram lines"]
_AUDIENCES = ["a curious child", "a retired engineer", "first-year nursing students", "a small business owner",
              "tourists on a budget", "a skeptical teenager", "new parents", "a museum curator", "amateur cooks",
              "high school teachers", "a night-shift worker", "software interns", "a local historian",
              "marathon runners", "a city council", "beekeepers", "exchange students", "a book club"]
_CONSTRAINTS = ["Keep it under {n} words.", "Use exactly {k} bullet points.", "Do not use any commas.",
                "End with a question.", "Write it in {k} paragraphs.", "Mention the number {n} once.",
                "Answer in a formal tone.", "Avoid the letter z.", "Include a title in double angular brackets.",
                "Start every sentence with a verb."]


def synthetic_prompts(count: int, seed: int) -> list[str]:
    """`count` distinct prompts: a request, a topic (adjective + noun, sometimes two), an audience and a
    constraint drawn at random; repeats are drawn again."""
    rng, seen, out = random.Random(seed), set(), []
    while len(out) < count:
        topic = f"{rng.choice(_ADJECTIVES)} {rng.choice(_NOUNS)}"
        other = f"{rng.choice(_ADJECTIVES)} {rng.choice(_NOUNS)}"
        ask = rng.choice(_ASKS).format(topic=topic, other=other, audience=rng.choice(_AUDIENCES))
        text = f"{ask}. {rng.choice(_CONSTRAINTS).format(n=rng.randrange(20, 400), k=rng.randrange(2, 7))}"
        if text not in seen:
            seen.add(text)
            out.append(text)
    return out


def write_log(path: Path, texts: list[str]) -> Path:
    path.write_text("".join(json.dumps({"prompt": t}) + "\n" for t in texts))
    return path


def _tree_rss(pid: int) -> int:
    import psutil

    try:
        root = psutil.Process(pid)
        return sum(p.memory_info().rss for p in [root, *root.children(recursive=True)])
    except psutil.Error:
        return 0


def timed(command: list[str]) -> dict:
    """Wall seconds and peak resident memory (the process and its children, sampled every 0.2 s) of a command."""
    peak, done = [0], threading.Event()
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _tree_rss(process.pid))
            done.wait(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = process.communicate()
    seconds = time.perf_counter() - started
    done.set()
    sampler.join()
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{err[-3000:]}")
    return {"seconds": seconds, "peak_rss_gib": round(peak[0] / 2**30, 3), "stdout": out.strip()}


def ingest(log: Path, store: Path) -> dict:
    result = timed([sys.executable, "-m", "tao_ray", "ingest", str(log), "--store", str(store)])
    newest = json.loads((store / "store.json").read_text())["newest"]
    manifest = json.loads((store / "versions" / newest / "manifest.json").read_text())
    return {**result, "counts": manifest["counts"], "stages": manifest["seconds"]}


_BARE = """
import sys, time, json
started = time.perf_counter()
from tao_ray.data.embeddings import Embedder
texts = [json.loads(line)["prompt"] for line in open(sys.argv[1])]
Embedder("cpu", batch_size=128).matrix(texts)
print(time.perf_counter() - started)
"""


def bare_embedder(log: Path) -> dict:
    return timed([sys.executable, "-c", _BARE, str(log)])


def slope(points: list[tuple[int, float]]) -> float | None:
    """Least-squares slope of log(seconds) on log(size)."""
    if len(points) < 2:
        return None
    xs, ys = [math.log(n) for n, _ in points], [math.log(s) for _, s in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    return round(sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs), 3)


def run(sizes: list[int], repeats: int) -> dict:
    work = Path(tempfile.mkdtemp(prefix="ingest-scale-"))
    try:
        new_log = write_log(work / "new.jsonl", synthetic_prompts(NEW_PROMPTS, seed=999_999))
        into_empty = [ingest(new_log, work / f"empty-{i}")["seconds"] for i in range(repeats)]
        rows = []
        for size in sizes:
            log = write_log(work / f"log-{size}.jsonl", synthetic_prompts(size, seed=size))
            runs = repeats if size <= 50_000 else 1
            ingests, bares = [], []
            for i in range(runs):
                store = work / f"store-{size}-{i}"
                ingests.append(ingest(log, store))
                bares.append(bare_embedder(log))
            store = work / f"store-{size}-0"
            into_store = ingest(new_log, store)
            seconds = statistics.median(r["seconds"] for r in ingests)
            bare = statistics.median(r["seconds"] for r in bares)
            rows.append({
                "prompts": size, "runs": runs, "ingest_seconds": round(seconds, 2),
                "ingest_prompts_per_s": round(size / seconds, 1),
                "embed_and_check_seconds": statistics.median(r["stages"]["embed_and_check"] for r in ingests),
                "bare_embedder_seconds": round(bare, 2), "bare_embedder_prompts_per_s": round(size / bare, 1),
                "throughput_vs_bare": round(bare / seconds, 3),
                "ingest_peak_rss_gib": max(r["peak_rss_gib"] for r in ingests),
                "bare_peak_rss_gib": max(r["peak_rss_gib"] for r in bares),
                "counts": ingests[0]["counts"],
                "new_1000_into_this_store_seconds": round(into_store["seconds"], 2),
                "new_1000_into_this_store_stages": into_store["stages"],
                "new_1000_ratio_vs_empty_store": round(into_store["seconds"] / statistics.median(into_empty), 3),
            })
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
        import faiss
        import pyarrow

        return {
            "benchmark": "ingest_scale",
            "hardware": {"cpus": os.cpu_count(), "machine": platform.machine(), "processor": platform.processor(),
                         "python": platform.python_version(), "pyarrow": pyarrow.__version__,
                         "faiss": faiss.__version__},
            "new_1000_into_empty_store_seconds": [round(s, 2) for s in into_empty],
            "sizes": rows,
            "exponent_whole_command": slope([(r["prompts"], r["ingest_seconds"]) for r in rows]),
            "exponent_embed_and_check": slope([(r["prompts"], r["embed_and_check_seconds"]) for r in rows]),
            "exponent_bare_embedder": slope([(r["prompts"], r["bare_embedder_seconds"]) for r in rows]),
            "targets": {"throughput_vs_bare_at_100k": ">= 0.7", "exponent_10k_to_100k": "<= 1.1",
                        "new_1000_into_100k_vs_empty": "<= 1.5"},
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    result = run([int(s) for s in args.sizes.split(",")], args.repeats)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
