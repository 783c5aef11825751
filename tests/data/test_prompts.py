import json

import pytest

from tao_ray.data.order import PromptOrder
from tao_ray.data.prompts import load_prompts
from tao_ray.errors import TaoError


def write(tmp_path, text: str | bytes, name="p.jsonl"):
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def test_chat_and_plain_formats(tmp_path):
    path = write(tmp_path, json.dumps({"messages": [{"role": "system", "content": "be brief"},
                                                    {"role": "user", "content": "hi"}],
                                       "constraints": [{"type": "lowercase"}]}) + "\n\n"
                 + json.dumps({"prompt": "hello", "id": "x"}) + "\n")
    records = load_prompts(path)
    assert len(records) == 2
    assert records[0].messages[-1] == {"role": "user", "content": "hi"}
    assert records[1].messages == ({"role": "user", "content": "hello"},) and records[1].id == "x"


@pytest.mark.parametrize("content, expected", [
    ('{"prompt": "ok"}\n{"prompt": "broken"\n', "line 2: malformed JSON"),
    ('{"prompt": "ok", "label": 3}\n', "line 1: unknown key 'label'"),
    ('{"prompt": "ok", "reference_sql": ""}\n', "line 1: key 'reference_sql' must be a non-empty string"),
    ('{"prompt": "   "}\n', "line 1: key 'prompt' must be a non-empty string"),
    ('{"messages": []}\n', "line 1: key 'messages' must be a non-empty list"),
    ('{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}\n',
     "must end with a user message"),
    ('{"prompt": "a", "constraints": [{"type": "nope"}]}\n', "line 1: key 'constraints': unknown constraint type"),
    ('["a list"]\n', "line 1: each line must be a JSON object"),
    ("\n\n", "has no prompts"),
])
def test_bad_lines_name_file_and_line(tmp_path, content, expected):
    path = write(tmp_path, content)
    with pytest.raises(TaoError) as info:
        load_prompts(path)
    assert str(path) in str(info.value) and expected in str(info.value)
    assert "\n" not in str(info.value)


def test_not_utf8_and_missing_file(tmp_path):
    path = write(tmp_path, b'{"prompt": "ok"}\n{"prompt": "caf\xe9"}\n')
    with pytest.raises(TaoError, match="line 2: not UTF-8"):
        load_prompts(path)
    with pytest.raises(TaoError, match="not found"):
        load_prompts(tmp_path / "missing.jsonl")


def test_demo_prompt_sets_are_valid_and_disjoint():
    train = load_prompts("prompts/demo/train.jsonl")
    heldout = load_prompts("prompts/demo/heldout.jsonl")
    assert len(train) >= 200 and len(heldout) >= 50
    assert all(r.constraints for r in train + heldout)
    text = lambda records: {json.dumps(r.messages) for r in records}  # noqa: E731
    assert not text(train) & text(heldout)


def test_prompt_order_is_a_seeded_permutation_per_epoch_and_resumable():
    order = PromptOrder(5, seed=7)
    first_epoch = order.next_batch(3) + order.next_batch(2)
    assert sorted(first_epoch) == [0, 1, 2, 3, 4]
    crossing = order.next_batch(7)  # all of epoch 1, then two of epoch 2
    assert sorted(crossing[:5]) == [0, 1, 2, 3, 4] and order.state() == {"epoch": 2, "position": 2}
    resumed = PromptOrder(5, seed=7, **order.state())
    assert resumed.next_batch(3) == order.next_batch(3)


def test_output_dir_is_made_absolute_and_refused_relative_inside_a_ray_job(tmp_path, monkeypatch):
    from tao_ray.config import Recipe, RunSection
    from tao_ray.data.inputs import resolve_output_dir
    from tao_ray.errors import TaoError

    monkeypatch.delenv("RAY_JOB_CONFIG_JSON_ENV_VAR", raising=False)
    monkeypatch.chdir(tmp_path)
    recipe = Recipe(run=RunSection(name="r", output_dir="runs"))
    assert resolve_output_dir(recipe).run_dir == tmp_path / "runs" / "r"
    monkeypatch.setenv("RAY_JOB_CONFIG_JSON_ENV_VAR", '{"runtime_env": {"working_dir": "gcs://_ray_pkg_1.zip"}}')
    with pytest.raises(TaoError, match="key 'run.output_dir' is 'runs'.*absolute path"):
        resolve_output_dir(recipe)
    absolute = Recipe(run=RunSection(name="r", output_dir=str(tmp_path / "shared")))
    assert resolve_output_dir(absolute).run_dir == tmp_path / "shared" / "r"
