"""The weight-sync protocol in one place: the wire format, the vLLM worker side, the learner (sender) side and the
driver side. Only the driver side talks to Ray."""
