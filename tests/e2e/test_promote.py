"""`tao-ray promote` as users run it, with real engines: a model cannot be promoted over itself."""

import json
import subprocess
import sys
from pathlib import Path

HELDOUT = Path(__file__).parents[2] / "prompts" / "demo" / "heldout.jsonl"


def tao_ray(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "tao_ray", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=600)


def test_the_demo_model_is_not_promoted_over_itself(tmp_path):
    prompts = tmp_path / "heldout.jsonl"
    prompts.write_text("".join(HELDOUT.read_text().splitlines(keepends=True)[:6]))
    result = tao_ray("promote", "demo", "--over", "demo", "--prompts", str(prompts), "--max-tokens", "32",
                     "--out", str(tmp_path / "decision.json"))
    # Exit 1 is the verdict "keep current", not a failure.
    assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-3000:]
    printed = json.loads(next(line for line in reversed(result.stdout.splitlines()) if line.startswith('{"candidate"')))
    decision = json.loads((tmp_path / "decision.json").read_text())
    assert decision == printed and decision["promote"] is False and decision["general"] is None
    # Greedy answers of one model are identical: every prompt is a tie, so the win rate and its CI are exactly 0.5,
    # which does not lie above 0.5; the lengths match, so the serving-cost guard passes.
    heldout = decision["heldout"]
    assert heldout["prompts"] == 6 and heldout["scored_pairs"] == 6 and heldout["reward"] == "constraints"
    assert heldout["win_rate"] == 0.5 and heldout["ci95"] == [0.5, 0.5] and heldout["mean_diff"] == 0.0
    assert decision["length"]["ratio"] == 1.0 and 0 < decision["length"]["mean_current"] <= 32
    assert decision["reasons"][0].startswith("fail: win rate 0.50, CI [0.50, 0.50] over 6 prompts")
    assert decision["reasons"][1].startswith("pass: mean response length")
    assert "promote: keep current (win rate 0.50" in result.stderr


def test_a_missing_prompt_file_is_one_line_and_exit_2(tmp_path):
    result = tao_ray("promote", "demo", "--over", "demo", "--prompts", str(tmp_path / "nope.jsonl"))
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "nope.jsonl: --prompts not found" in result.stderr and "Traceback" not in result.stderr
