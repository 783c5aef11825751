import json

from tao_ray.run import checkpoints


def fake_checkpoint(run_dir, iteration, base_model):
    staging = checkpoints.staging_dir(run_dir, iteration)
    (staging / "model").mkdir()
    (staging / "learner").mkdir()
    return checkpoints.commit(staging, checkpoints.checkpoint_dir(run_dir, iteration), str(base_model),
                              {"iteration": iteration})


def test_commit_latest_prune_and_half_written_ones(tmp_path):
    base = tmp_path / "base"
    base.mkdir()
    (base / "tokenizer.json").write_text("{}")
    run_dir = tmp_path / "run"
    for iteration in (1, 2, 3):
        fake_checkpoint(run_dir, iteration, base)
    # A kill during a write leaves only a staging directory, which resume ignores.
    (checkpoints.staging_dir(run_dir, 4) / "model").mkdir()
    path, state = checkpoints.latest(run_dir)
    assert path.name == "iter-0003" and state == {"iteration": 3}
    assert (path / "model" / "tokenizer.json").is_file()

    checkpoints.prune(run_dir, keep_last=1, best_iteration=1)
    kept = sorted(p.name for p in checkpoints.root(run_dir).glob("iter-*"))
    assert kept == ["iter-0001", "iter-0003"]
    assert (checkpoints.model_dir(run_dir, 1)).is_dir() and not (run_dir / "checkpoints/iter-0001/learner").exists()
    assert [p.name for p in checkpoints.complete(run_dir)] == ["iter-0003"]
    assert json.loads((path / "driver.json").read_text())["iteration"] == 3


def test_a_new_run_sets_the_earlier_one_aside(tmp_path):
    base = tmp_path / "base"
    base.mkdir()
    assert checkpoints.set_aside(tmp_path / "run", resume=False) is None  # nothing there yet
    fake_checkpoint(tmp_path / "run", 1, base)
    assert checkpoints.set_aside(tmp_path / "run", resume=True) is None  # resuming keeps it in place
    moved = checkpoints.set_aside(tmp_path / "run", resume=False)
    assert moved.name.startswith("run.prev-") and not (tmp_path / "run").exists()
    assert [p.name for p in checkpoints.complete(moved)] == ["iter-0001"]  # nothing lost
    fake_checkpoint(tmp_path / "run", 1, base)
    assert checkpoints.set_aside(tmp_path / "run", resume=False) != moved  # a second one in the same second


def test_a_model_only_best_never_pushes_out_the_newest_resumable_checkpoint(tmp_path):
    """Between run.checkpoint_every iterations a new best is saved as its model only: retention counts resumable
    checkpoints, and a model-only one goes once it is no longer the best."""
    base = tmp_path / "base"
    base.mkdir()
    run_dir = tmp_path / "run"
    fake_checkpoint(run_dir, 2, base)
    for iteration in (3, 5):  # model-only bests
        staging = checkpoints.staging_dir(run_dir, iteration)
        (staging / "model").mkdir()
        checkpoints.commit(staging, checkpoints.checkpoint_dir(run_dir, iteration), str(base), {"iteration": iteration})
    checkpoints.prune(run_dir, keep_last=1, best_iteration=5)
    assert sorted(p.name for p in checkpoints.root(run_dir).glob("iter-*")) == ["iter-0002", "iter-0005"]
    assert checkpoints.latest(run_dir)[0].name == "iter-0002"
