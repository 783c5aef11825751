"""Pure TAO math and logic: imports torch and the standard library only, never Ray, vLLM or DeepSpeed."""
