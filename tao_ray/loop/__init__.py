"""The TAO loop: the driver (the only owner of run state) and the stages it calls: rollouts, the batch drawn
ahead, evaluation and checkpointing. May import core/, data/, rewards/, sync/, runtime/, run/ and config/."""
