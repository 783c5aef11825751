"""User-written Python rewards, named in a recipe as "package.module:function".

In: a target string such as "my_project.rewards:exact_match"; the module must be importable from the directory
`tao-ray run` is started in, or from PYTHONPATH.
Out: the function, after checking that it exists and can be called as a reward.

The contract a reward function must follow:

    def my_reward(record: dict, response: str) -> float:
        ...

`record` is the prompt as a plain dict: {"id", "messages": [{"role", "content"}, ...], "constraints": [...],
"metadata": {...}, "answer": str | None, "reference_sql": str | None, "reference_response": str | None};
`response` is the generated text. Return a score (normally in [0, 1]). Raising means "this sample failed": the
caller excludes it from the update and counts it, and the run continues.
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from collections.abc import Callable

RewardFn = Callable[[dict, str], float]


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__


def _ensure_cwd_importable() -> None:
    # `tao-ray` is a console script, so sys.path[0] is its bin directory, not the user's project. Appended rather
    # than prepended so a stray file in the project cannot shadow an installed package.
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.append(cwd)


def _is_missing(error: ModuleNotFoundError, module_name: str) -> bool:
    # True only when the target module (or one of its parent packages) does not exist; a module that exists
    # but imports something missing is a different, user-side error and is reported as such.
    missing = error.name or ""
    return bool(missing) and (module_name == missing or module_name.startswith(missing + "."))


def _import(module_name: str, target: str):
    _ensure_cwd_importable()
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if _is_missing(error, module_name):
            raise ValueError(
                f"reward {target!r}: cannot import module {module_name!r}; it must be importable from the current "
                f"directory ({os.getcwd()}) or PYTHONPATH"
            ) from None
        raise ValueError(f"reward {target!r}: importing {module_name} raised {_one_line(error)}") from error
    except Exception as error:
        raise ValueError(f"reward {target!r}: importing {module_name} raised {_one_line(error)}") from error


def _accepts_record_and_response(fn: Callable) -> bool:
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return True  # some builtins and C callables have no signature; let the first call decide
    try:
        signature.bind(None, None)
    except TypeError:
        return False
    return True


def load_function(target: str) -> RewardFn:
    """Resolve "package.module:function" to the reward function, or raise ValueError with a one-line fix."""
    module_name, sep, attr = target.partition(":")
    if not sep or ":" in attr or not module_name.strip() or not attr.strip():
        raise ValueError(f"reward {target!r} must look like package.module:function")
    module_name, attr = module_name.strip(), attr.strip()
    obj = _import(module_name, target)
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ValueError(f"reward {target!r}: module {module_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ValueError(f"reward {target!r}: {attr!r} is a {type(obj).__name__}, not a function")
    if not _accepts_record_and_response(obj):
        params = inspect.signature(obj).replace(return_annotation=inspect.Signature.empty)
        raise ValueError(f"reward {target!r}: {attr}{params} must accept (record, response)")
    return obj
