from tao_ray.runtime.faults import port_was_taken


def test_only_a_taken_rendezvous_port_starts_the_learners_again():
    taken = RuntimeError("torch.distributed.DistNetworkError: The server socket has failed to listen on any local "
                         "network address. port: 33443, useIpv6: false, code: -98, name: EADDRINUSE, message: "
                         "address already in use")
    assert port_was_taken(taken)
    assert not port_was_taken(RuntimeError("CUDA out of memory"))


def test_a_collective_that_lost_its_peer_is_told_from_a_bug():
    from tao_ray.runtime.faults import lost_a_peer

    assert lost_a_peer(RuntimeError("[../third_party/gloo/gloo/transport/tcp/pair.cc:553] Connection closed by peer "
                                    "[127.0.0.1]:32143"))
    assert lost_a_peer(RuntimeError("NCCL error in: ProcessGroupNCCL.cpp:1970, remote process exited"))
    assert not lost_a_peer(RuntimeError("mat1 and mat2 shapes cannot be multiplied (4x8 and 6x8)"))
    assert not lost_a_peer(KeyError("input_ids"))
