from tao_ray.actors.cpu_cores import embedder_threads, reserved_scheduler_cores


def test_small_nodes_reserve_no_core_for_the_engine_scheduler():
    assert reserved_scheduler_cores(2, None) == "0"
    assert reserved_scheduler_cores(4, None) == "0"


def test_big_nodes_and_a_user_setting_keep_vllms_choice():
    assert reserved_scheduler_cores(64, None) is None
    assert reserved_scheduler_cores(2, "1") is None


def test_the_embedder_uses_a_small_nodes_cores_and_the_actors_share_elsewhere():
    assert embedder_threads(2, 1) == 2
    assert embedder_threads(64, 1) == 1
    assert embedder_threads(64, 4) == 4
