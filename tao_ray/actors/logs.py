"""Actor output into files in the run dir instead of the console.

vLLM engines, DeepSpeed and transformers print progress bars and warnings. The driver gives each actor a file
(`<run dir>/logs/<role>-<rank>.log`) through the TAO_RAY_ACTOR_LOG environment variable; the actor's first act is
to point its stdout and stderr there at the file-descriptor level, so the engine processes it starts write there too.
`tao-ray run --actor-logs` leaves them on the console instead.
"""

from __future__ import annotations

import os
import sys

LOG_FILE_ENV = "TAO_RAY_ACTOR_LOG"


def redirect_output() -> None:
    path = os.environ.get(LOG_FILE_ENV)
    if not path:
        return
    os.makedirs(os.path.dirname(path), exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
