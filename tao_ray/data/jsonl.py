"""Line-by-line JSONL reading shared by every input file (prompts, preference pairs).

In: a path. Out: (where, object) per non-blank line, `where` being "<file>: line N" for the caller's own checks;
a line that is not UTF-8 or not JSON raises a TaoError naming the file and line.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tao_ray.errors import TaoError


def read_objects(path: Path) -> Iterator[tuple[str, Any]]:
    with open(path, "rb") as f:
        for line_no, raw in enumerate(f, start=1):
            where = f"{path}: line {line_no}"
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise TaoError(f"{where}: not UTF-8 (byte {exc.start}); re-encode the file as UTF-8") from None
            if not text.strip():
                continue
            try:
                yield where, json.loads(text)
            except json.JSONDecodeError as exc:
                raise TaoError(f"{where}: malformed JSON ({exc.msg} at column {exc.colno})") from None
