from tao_ray.actors.cpu_cores import reserved_scheduler_cores


def test_small_nodes_reserve_no_core_for_the_engine_scheduler():
    assert reserved_scheduler_cores(2, None) == "0"
    assert reserved_scheduler_cores(4, None) == "0"


def test_big_nodes_and_a_user_setting_keep_vllms_choice():
    assert reserved_scheduler_cores(64, None) is None
    assert reserved_scheduler_cores(2, "1") is None
