"""The prompt store (tao_ray/data/store.py) and the mix over its versions (tao_ray/data/mix.py), with a stand-in
embedder (character-trigram counts hashed into 512 dimensions, so texts that share most of their wording are close)
run in this process."""

import dataclasses
import datetime
import json
import math
import zlib

import pytest
import torch

from tao_ray.config import load_recipe
from tao_ray.data import mix
from tao_ray.data.decontamination import normalize
from tao_ray.data.embeddings import LocalEmbedding
from tao_ray.data.inputs import pin_store_version, prepare_inputs
from tao_ray.data.order import PromptOrder
from tao_ray.data.prompts import PromptRecord, load_prompts
from tao_ray.data.store import ingest
from tao_ray.data.store_layout import newest_version, prompts_file
from tao_ray.errors import TaoError

T0 = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)


def embed(texts):
    vectors = []
    for text in texts:
        vector = torch.zeros(512)
        padded = f"  {normalize(text)}  "
        for i in range(len(padded) - 2):
            vector[zlib.crc32(padded[i:i + 3].encode()) % 512] += 1.0
        vectors.append(vector / vector.norm())
    return vectors


EMBED = LocalEmbedding(embed, name="trigram-512")


def write(path, *prompts):
    path.write_text("".join(json.dumps(p if isinstance(p, dict) else {"prompt": p}) + "\n" for p in prompts))
    return path


def stored_prompts(path):
    """The prompts of a store's newest version, or of one version directory."""
    return [r.messages[-1]["content"] for r in load_prompts(prompts_file(path))]


A = [f"Explain how {thing} works, step by step, for a curious ten year old." for thing in
     ("a dishwasher", "a lock and key", "a hot air balloon", "a compass")]
B = [f"Write a short poem about {thing} in the style of a sea shanty." for thing in ("autumn", "a lighthouse")]


def test_two_overlapping_ingests_store_each_prompt_once(tmp_path):
    store = tmp_path / "store"
    first = ingest(store, write(tmp_path / "day1.jsonl", *A[:3]), EMBED, now=T0)
    second = ingest(store, write(tmp_path / "day2.jsonl", A[2], A[3], A[1].upper(), *B), EMBED,
                    now=T0 + datetime.timedelta(days=1))
    assert first.manifest["counts"] == {"read": 3, "added": 3, "exact_duplicates": 0, "near_duplicates": 0,
                                        "contaminated": 0, "total": 3}
    # A[2] again, and A[1] shouted: the same prompt after normalization (case, punctuation, spacing).
    assert second.manifest["counts"] == {"read": 5, "added": 3, "exact_duplicates": 2, "near_duplicates": 0,
                                         "contaminated": 0, "total": 6}
    assert sorted(stored_prompts(store)) == sorted(A + B)
    assert newest_version(store).name == "v0002" and json.loads((store / "store.json").read_text())["versions"] == 2


def test_every_version_keeps_all_prompts_with_provenance(tmp_path):
    store = tmp_path / "store"
    log1 = write(tmp_path / "day1.jsonl", {"id": "req-7", "prompt": A[0], "metadata": {"team": "search"}})
    ingest(store, log1, EMBED, now=T0)
    ingest(store, write(tmp_path / "day2.jsonl", B[0]), EMBED, now=T0 + datetime.timedelta(hours=5))
    v1 = load_prompts(store / "versions" / "v0001")
    v2 = load_prompts(store / "versions" / "v0002")
    assert [r.id for r in v1] == [v2[0].id] and len(v2) == 2  # older versions stay as they were
    first, second = v2
    assert first.metadata == {"team": "search", "source_id": "req-7", "source": str(log1.resolve()), "source_line": 1,
                              "arrived_at": "2026-01-01T00:00:00+00:00", "version": 1}
    assert second.metadata["version"] == 2 and second.metadata["arrived_at"] == "2026-01-01T05:00:00+00:00"
    assert first.id.startswith("s-") and first.id != second.id
    manifest = json.loads((store / "versions" / "v0002" / "manifest.json").read_text())
    assert manifest["previous"] == "v0001" and manifest["source"]["file"].endswith("day2.jsonl")
    assert len(manifest["source"]["sha256"]) == 64 and manifest["created_at"] == "2026-01-01T05:00:00+00:00"
    assert not [p for p in (store / "versions").iterdir() if p.name.startswith(".")]  # no temporary left


def test_near_duplicates_are_dropped_against_the_store_and_the_same_log(tmp_path):
    store = tmp_path / "store"
    ingest(store, write(tmp_path / "day1.jsonl", A[0]), EMBED, now=T0)
    reworded = A[0].replace("ten year old", "ten-year-old child")
    result = ingest(store, write(tmp_path / "day2.jsonl", reworded, B[0], B[0] + " Please."), EMBED,
                    near_duplicate_distance=0.1, now=T0)
    assert result.manifest["counts"]["near_duplicates"] == 2 and result.manifest["counts"]["added"] == 1
    assert [d["line"] for d in result.dropped] == [1, 3]


def test_a_near_copy_of_a_heldout_prompt_is_never_stored(tmp_path):
    heldout = write(tmp_path / "heldout.jsonl", "Describe what a lighthouse keeper does on a stormy winter night.",
                    "Summarize the plot of a detective story set in a small mountain village in exactly three "
                    "sentences without naming the detective.")
    log = write(tmp_path / "log.jsonl",
                "Describe what the lighthouse keeper does on stormy winter nights.",  # a near copy: embedding
                "Please summarize the plot of a detective story set in a small mountain village in exactly three "
                "sentences, thanks.",  # shares a 13-gram with the second held-out prompt
                A[0])
    # 0.13: the stand-in embedder puts this near copy at 0.12 and unrelated prompts above 0.7
    result = ingest(tmp_path / "store", log, EMBED, decontaminate=[heldout], contamination_distance=0.13, now=T0)
    counts = result.manifest["counts"]
    assert counts["contaminated"] == 2 and counts["added"] == 1
    assert result.manifest["contaminated_by"] == {str(heldout): 2}
    assert [(d["line"], d["by"]) for d in result.dropped] == [(1, "embedding"), (2, "ngram")]
    assert stored_prompts(tmp_path / "store") == [A[0]]
    assert result.manifest["decontaminated_against"][0]["file"] == str(heldout.resolve())


def test_an_ingest_that_adds_nothing_writes_no_version(tmp_path):
    store = tmp_path / "store"
    ingest(store, write(tmp_path / "day1.jsonl", A[0]), EMBED, now=T0)
    again = ingest(store, write(tmp_path / "day2.jsonl", A[0]), EMBED, now=T0)
    assert again.version_dir is None and "no version written" in again.summary()
    assert newest_version(store).name == "v0001"


def test_a_bad_log_line_is_one_error_naming_file_and_line(tmp_path):
    log = tmp_path / "log.jsonl"
    log.write_text('{"prompt": "fine"}\n{"promt": "typo"}\n')
    with pytest.raises(TaoError, match=rf"{log}: line 2: unknown key 'promt'"):
        ingest(tmp_path / "store", log, EMBED)
    assert not (tmp_path / "store" / "store.json").exists()


def test_a_directory_that_is_not_a_store_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(TaoError, match="not a prompt store"):
        ingest(tmp_path, write(tmp_path / "log.jsonl", A[0]), EMBED)


def test_stored_prompts_are_never_embedded_again_and_the_index_grows(tmp_path):
    store, calls = tmp_path / "store", []
    counting = LocalEmbedding(lambda texts: calls.append(len(texts)) or embed(texts), name="trigram-512")
    ingest(store, write(tmp_path / "day1.jsonl", *A), counting, now=T0)
    ingest(store, write(tmp_path / "day2.jsonl", *B), counting, now=T0)
    assert calls == [4, 2]  # day 2 embedded its own 2 prompts only, not the 4 stored ones
    pointer = json.loads((store / "store.json").read_text())
    assert pointer["shards"] == ["v0001-000.parquet", "v0002-000.parquet"] and pointer["index"] == "index/v0002.faiss"
    assert sorted(p.name for p in (store / "index").iterdir()) == ["v0002.faiss"]  # the older index replaced
    from tao_ray.data.vector_index import VectorIndex

    assert len(VectorIndex.load(store / pointer["index"], 512)) == 6
    v1 = json.loads((store / "versions" / "v0001" / "manifest.json").read_text())
    assert v1["shards"] == ["v0001-000.parquet"] and v1["embedder"] == {"name": "trigram-512", "dim": 512}


def test_a_reworded_copy_that_breaks_every_13_gram_is_still_contaminated(tmp_path):
    reference = ("Write a detailed letter to the city council asking them to build a new public library near "
                 "the old train station and explain why the town needs it")
    heldout = write(tmp_path / "heldout.jsonl", reference)
    # Two words changed, ten words apart: no 13-word run survives, most 5-word runs do.
    copy = reference.replace("detailed letter", "detailed note").replace("town needs", "village needs")
    result = ingest(tmp_path / "store", write(tmp_path / "log.jsonl", copy, A[0]), EMBED, decontaminate=[heldout],
                    contamination_distance=0.0, now=T0)
    assert [(d["line"], d["reason"], d["by"]) for d in result.dropped] == [(1, "contaminated", "ngram")]


def test_a_different_embedder_is_one_clear_error(tmp_path):
    store = tmp_path / "store"
    ingest(store, write(tmp_path / "day1.jsonl", A[0]), EMBED, now=T0)
    other = LocalEmbedding(embed, name="another-model")
    with pytest.raises(TaoError, match="embedded with trigram-512, this ingest embeds with another-model"):
        ingest(store, write(tmp_path / "day2.jsonl", B[0]), other, now=T0)


def test_an_interrupted_ingest_leaves_the_newest_version_intact_and_the_next_one_cleans_up(tmp_path, monkeypatch):
    from tao_ray.data import store as store_module

    store = tmp_path / "store"
    ingest(store, write(tmp_path / "day1.jsonl", *A), EMBED, now=T0)
    monkeypatch.setattr(store_module, "write_atomic", lambda path, text: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError, match="disk full"):
        ingest(store, write(tmp_path / "day2.jsonl", *B), EMBED, now=T0)
    monkeypatch.undo()
    assert newest_version(store).name == "v0001" and sorted(stored_prompts(store)) == sorted(A)
    result = ingest(store, write(tmp_path / "day2.jsonl", *B), EMBED, now=T0)
    assert result.manifest["version"] == "v0002" and sorted(stored_prompts(store)) == sorted(A + B)
    assert "versions/v0002" in result.manifest["removed_unreferenced"]  # the half-written one, replaced


def test_a_store_of_jsonl_versions_is_read_and_moved_into_shards_at_its_next_ingest(tmp_path):
    store = tmp_path / "store"
    (store / "versions" / "v0001").mkdir(parents=True)
    old_rows = [{"id": f"s-{i}", "prompt": text, "metadata": {"version": 1}} for i, text in enumerate(A)]
    (store / "versions" / "v0001" / "prompts.jsonl").write_text("".join(json.dumps(r) + "\n" for r in old_rows))
    (store / "versions" / "v0001" / "manifest.json").write_text("{}")
    (store / "store.json").write_text(json.dumps({"format": 1, "newest": "v0001", "versions": 1}))
    assert sorted(stored_prompts(store)) == sorted(A)  # read as it is
    result = ingest(store, write(tmp_path / "day2.jsonl", A[0], *B), EMBED, now=T0)
    assert result.manifest["migrated_from_format"] == 1 and result.manifest["counts"]["exact_duplicates"] == 1
    assert result.manifest["counts"]["total"] == 6 and sorted(stored_prompts(store)) == sorted(A + B)
    assert sorted(stored_prompts(store / "versions" / "v0001")) == sorted(A)  # the old version stays readable
    assert [r.metadata["version"] for r in load_prompts(prompts_file(store))] == [1, 1, 1, 1, 2, 2]


# ---- data.mix over versions ----

def versioned(*versions):
    return [PromptRecord(id=f"p{i}", messages=({"role": "user", "content": "x"},), metadata={"version": v})
            for i, v in enumerate(versions)]


def test_mix_all_recent_and_upweight_recent():
    records = versioned(1, 1, 2, 3, 3)
    assert mix.select(records, "all") == (records, None)
    assert [r.id for r in mix.select(records, "recent", recent_versions=1)[0]] == ["p3", "p4"]
    assert [r.id for r in mix.select(records, "recent", recent_versions=2)[0]] == ["p2", "p3", "p4"]
    kept, weights = mix.select(records, "upweight_recent", half_life_versions=1.0)
    assert kept == records and weights == [0.25, 0.25, 0.5, 1.0, 1.0]  # halves with each version of age
    assert mix.select(records, "upweight_recent", half_life_versions=2.0)[1][0] == pytest.approx(0.5)


def test_a_mix_needs_a_store():
    plain = [PromptRecord(id="p", messages=({"role": "user", "content": "x"},))]
    with pytest.raises(ValueError, match="needs a prompt store"):
        mix.select(plain, "recent")


def test_weighted_order_draws_recent_prompts_more_often_and_is_resumable():
    weights = [0.25, 1.0]
    order = PromptOrder(2, seed=3, weights=weights)
    drawn = order.next_batch(4000)
    assert drawn.count(1) / len(drawn) == pytest.approx(0.8, abs=0.03)  # 1 / (1 + 0.25)
    again = PromptOrder(2, seed=3, weights=weights)
    again.next_batch(1500)
    resumed = PromptOrder(2, seed=3, weights=weights, **again.state())
    assert resumed.next_batch(2500) == drawn[1500:]
    assert sorted(PromptOrder(5, seed=3).next_batch(5)) == list(range(5))  # unweighted: unchanged, a shuffle


# ---- a recipe naming a store ----

def test_a_recipe_can_name_a_store_and_its_run_is_pinned_to_the_newest_version(tmp_path):
    store = tmp_path / "store"
    ingest(store, write(tmp_path / "day1.jsonl", *A), EMBED, now=T0)
    ingest(store, write(tmp_path / "day2.jsonl", *B), EMBED, now=T0)
    recipe = load_recipe("recipes/demo-cpu.yaml", [f"data.train_prompts={store}", "data.mix=upweight_recent"])
    pinned = pin_store_version(recipe)
    assert pinned.data.train_prompts == str(store / "versions" / "v0002")
    inputs = prepare_inputs(pinned, check_lengths=False)
    assert len(inputs.train) == 6 and inputs.train_weights == [0.5] * 4 + [1.0] * 2
    recent = prepare_inputs(load_recipe("recipes/demo-cpu.yaml", [f"data.train_prompts={store}", "data.mix=recent"]),
                            check_lengths=False)
    assert sorted(r.messages[-1]["content"] for r in recent.train) == sorted(B) and recent.train_weights is None


def test_a_mix_on_a_plain_prompt_file_is_a_recipe_error():
    recipe = load_recipe("recipes/demo-cpu.yaml", ["data.mix=recent"])
    with pytest.raises(TaoError, match="key 'data.mix' is 'recent': mix recent needs a prompt store"):
        prepare_inputs(recipe, check_lengths=False)


@pytest.mark.parametrize("override, key", [("data.mix=newest", "data.mix"), ("data.recent_versions=0",
                                                                                "data.recent_versions"),
                                           ("data.half_life_versions=0", "data.half_life_versions")])
def test_mix_keys_are_validated(override, key):
    with pytest.raises(TaoError, match=key):
        load_recipe("recipes/demo-cpu.yaml", [override])


def test_weights_halve_per_half_life():
    assert math.isclose(mix.select(versioned(1, 5), "upweight_recent", half_life_versions=4.0)[1][0], 0.5)


def test_a_new_version_changes_the_pinned_path_so_resume_refuses_it(tmp_path):
    from tao_ray.run import resume

    store = tmp_path / "store"
    ingest(store, write(tmp_path / "day1.jsonl", *A), EMBED, now=T0)
    overrides = [f"data.train_prompts={store}", f"run.output_dir={tmp_path / 'runs'}"]
    before = pin_store_version(load_recipe("recipes/demo-cpu.yaml", overrides))
    ingest(store, write(tmp_path / "day2.jsonl", *B), EMBED, now=T0)
    after = pin_store_version(load_recipe("recipes/demo-cpu.yaml", overrides))
    changes = resume.compare(json.loads(json.dumps(dataclasses.asdict(before))), after)
    assert [c.key for c in changes.refused] == ["data.train_prompts"]
    assert str(changes.refused[0]).endswith(f'"{store}/versions/v0001" -> "{store}/versions/v0002"')
