"""The learner's DeepSpeed/peft library: process groups, model loading, LoRA, background checkpoint writes. No
Ray, so a plain process can drive it. May import core/ and sync/."""
