"""`tao-ray ingest` as users run it: twice, with overlapping logs, into one store (a local Ray, the real embedder on
its Ray Data actor pool)."""

import json
import subprocess
import sys

from tao_ray.data.prompts import load_prompts


def tao_ray(*args):
    return subprocess.run([sys.executable, "-m", "tao_ray", *args], capture_output=True, text=True, timeout=300)


PROMPTS = [
    "Explain how a dishwasher cleans plates without scrubbing them.",
    "Write a short poem about autumn leaves falling on a quiet street.",
    "What should I pack for a three day hiking trip in the mountains?",
    "Give me three tips for keeping basil alive on a windowsill.",
    "Describe the smell of a bakery early in the morning.",
]


def write(path, prompts):
    path.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in prompts))
    return path


def test_two_overlapping_ingests_store_each_prompt_once(tmp_path):
    store, heldout = tmp_path / "store", write(tmp_path / "heldout.jsonl", ["How does a fridge keep food cold?"])
    day1 = write(tmp_path / "day1.jsonl", PROMPTS[:3])
    # Overlaps day 1 twice (once verbatim, once only in case and spacing), and paraphrases a held-out prompt.
    day2 = write(tmp_path / "day2.jsonl", [PROMPTS[2], "  " + PROMPTS[1].upper(), *PROMPTS[3:],
                                           "Explain how a refrigerator keeps food cold."])
    first = tao_ray("ingest", str(day1), "--store", str(store), "--decontaminate", str(heldout))
    assert first.returncode == 0, first.stderr
    assert "as v0001: 3 read, 3 added" in first.stdout
    second = tao_ray("ingest", str(day2), "--store", str(store), "--decontaminate", str(heldout))
    assert second.returncode == 0, second.stderr
    assert "as v0002: 5 read, 2 added, 2 exact duplicates, 0 near duplicates, 1 contaminated" in second.stdout
    stored = load_prompts(store / "versions" / "v0002")
    assert sorted(r.messages[-1]["content"] for r in stored) == sorted(PROMPTS)
    assert [r.metadata["version"] for r in stored] == [1, 1, 1, 2, 2]
    manifest = json.loads((store / "versions" / "v0002" / "manifest.json").read_text())
    assert manifest["contaminated_by"] == {str(heldout): 1} and manifest["dropped"][-1]["by"] == "embedding"
    assert sum(manifest["embedded_on"].values()) == 3 and "embedded on 1 node" in second.stdout


def test_a_bad_log_is_one_line_with_file_and_line(tmp_path):
    log = tmp_path / "log.jsonl"
    log.write_text('{"prompt": "fine"}\n{"messages": []}\n')
    result = tao_ray("ingest", str(log), "--store", str(tmp_path / "store"))
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert f"{log}: line 2: key 'messages'" in result.stderr and "Traceback" not in result.stderr
