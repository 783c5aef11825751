"""Loading a recipe: a YAML file (plus dotted command-line overrides) -> one frozen `Recipe` (sections.py).

In: the recipe path and overrides such as `training.lr=5e-6`. Out: a `Recipe`, or a `TaoError` whose one-line message
names the file, the line, the key and the fix. Nothing here touches Ray, a model or a prompt file; data/inputs.py
checks those before any actor starts.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from pathlib import Path
from typing import Any

import yaml

from tao_ray.config.sections import Recipe
from tao_ray.config.validation import Located, validate
from tao_ray.errors import TaoError


def _parse_yaml(path: Path, located: Located) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TaoError(f"{path}: recipe file not found") from None
    except UnicodeDecodeError as exc:
        raise TaoError(f"{path}: not UTF-8 text (byte {exc.start}); save the recipe as UTF-8") from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f": line {mark.line + 1}" if mark else ""
        raise TaoError(f"{path}{line}: invalid YAML ({getattr(exc, 'problem', exc)})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise TaoError(f"{path}: a recipe must be a mapping of sections (model:, data:, ...)")
    _record_lines(root, "", path, located)
    return data


def _record_lines(node: yaml.Node, prefix: str, path: Path, located: Located) -> None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            dotted = f"{prefix}{key_node.value}"
            located.lines[dotted] = f"{path}: line {key_node.start_mark.line + 1}"
            _record_lines(value_node, dotted + ".", path, located)


def _apply_override(data: dict[str, Any], override: str, located: Located) -> None:
    if "=" not in override:
        raise TaoError(f"command line: override {override!r} must look like section.key=value, "
                       "e.g. training.lr=5e-6")
    dotted, raw = override.split("=", 1)
    node = data
    *parents, leaf = dotted.strip().split(".")
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise TaoError(f"command line: {dotted} does not name a recipe key; use section.key=value")
    node[leaf] = yaml.safe_load(raw) if raw.strip() else None
    parts = dotted.strip().split(".")
    for depth in range(1, len(parts) + 1):  # errors about any prefix (an unknown section) point here too
        located.lines[".".join(parts[:depth])] = f"command line ({override})"


def _type_name(annotation: Any) -> str:
    if typing.get_origin(annotation) is typing.Literal:  # the values' type; validation checks the value itself
        return type(typing.get_args(annotation)[0]).__name__
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    return args[0].__name__ if args else getattr(annotation, "__name__", str(annotation))


def _coerce(value: Any, annotation: Any, key: str, located: Located) -> Any:
    """Accept a value for a field of type `annotation` or raise a one-line error naming the key."""
    optional = isinstance(annotation, types.UnionType) and type(None) in typing.get_args(annotation)
    base = _type_name(annotation)
    if value is None:
        if optional:
            return None
        raise TaoError(f"{located.where(key)}: key '{key}' must be a {base}, not empty")
    if base == "bool":
        if isinstance(value, bool):
            return value
    elif base == "int":
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif base == "float":
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads `5e-6` (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
    elif base == "str":
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
    raise TaoError(f"{located.where(key)}: key '{key}' must be a {base}, got {value!r}")


def _build_section(cls: type, values: Any, section: str, located: Located) -> Any:
    if not isinstance(values, dict):
        raise TaoError(f"{located.where(section)}: section '{section}' must be a mapping of keys")
    hints = typing.get_type_hints(cls)
    known = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for name, value in values.items():
        key = f"{section}.{name}"
        if name not in known:
            guess = difflib.get_close_matches(str(name), known, n=1)
            hint = f"did you mean '{section}.{guess[0]}'?" if guess else f"valid keys: {', '.join(known)}"
            raise TaoError(f"{located.where(key)}: unknown key '{key}'; {hint}")
        if dataclasses.is_dataclass(hints[name]):
            kwargs[name] = _build_section(hints[name], value or {}, key, located)
        else:
            kwargs[name] = _coerce(value, hints[name], key, located)
    return cls(**kwargs)


def load_recipe(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Recipe:
    """Load and validate a recipe. Raises TaoError with a one-line message on any problem."""
    path = Path(path)
    located = Located(str(path))
    data = _parse_yaml(path, located)
    for override in overrides:
        _apply_override(data, override, located)
    sections = {f.name: f for f in dataclasses.fields(Recipe) if f.name not in ("source", "overrides")}
    hints = typing.get_type_hints(Recipe)
    built = {}
    for name, values in data.items():
        if name not in sections:
            guess = difflib.get_close_matches(str(name), list(sections), n=1)
            hint = f"did you mean '{guess[0]}'?" if guess else f"sections: {', '.join(sections)}"
            raise TaoError(f"{located.where(str(name))}: unknown key '{name}'; {hint}")
        built[name] = _build_section(hints[name], values or {}, name, located)
    recipe = Recipe(**built, source=str(path), overrides=tuple(overrides))
    if not recipe.run.name:
        recipe = dataclasses.replace(recipe, run=dataclasses.replace(recipe.run, name=path.stem))
    validate(recipe, located)
    return recipe


def locate(recipe: Recipe, key: str) -> str:
    """Where `key` was set, for errors raised after loading (e.g. a missing database): 'recipe.yaml: line 12',
    'command line (key=value)', or the recipe file when the key took its default."""
    located = Located(recipe.source or "recipe")
    if recipe.source and Path(recipe.source).is_file():
        try:
            _parse_yaml(Path(recipe.source), located)
        except TaoError:
            pass
    for override in recipe.overrides:
        dotted = override.split("=", 1)[0].strip()
        if dotted == key or key.startswith(dotted + "."):
            located.lines[key] = f"command line ({override})"
    return located.where(key)



