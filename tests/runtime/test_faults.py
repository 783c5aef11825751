from tao_ray.runtime.faults import port_was_taken


def test_only_a_taken_rendezvous_port_starts_the_learners_again():
    taken = RuntimeError("torch.distributed.DistNetworkError: The server socket has failed to listen on any local "
                         "network address. port: 33443, useIpv6: false, code: -98, name: EADDRINUSE, message: "
                         "address already in use")
    assert port_was_taken(taken)
    assert not port_was_taken(RuntimeError("CUDA out of memory"))
