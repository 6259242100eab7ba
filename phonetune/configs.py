"""Typed configs: dataclasses built from TOML tables, validated at load, unknown keys rejected.

Each concern (data, model, training, study) owns one dataclass. ``from_mapping`` turns a plain mapping (a TOML
table, or a checkpoint's stored dict) into that dataclass, and collects every problem before raising one
``ConfigError`` that lists them all, each naming the key and the source file. A dataclass may define
``problems(self) -> list[str]`` for range checks; those messages are collected the same way.

Example::

    @dataclass
    class Example:
        context_frames: int = 20  # frames of context on each side

    cfg = from_mapping(Example, {"context_frames": 15}, source="run.toml [data]")
"""

from __future__ import annotations

import dataclasses
import difflib
import sys
import types
import typing
from pathlib import Path
from typing import Any, Mapping, TypeVar

from phonetune.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised only on 3.10
    import tomli as tomllib

T = TypeVar("T")

_SCALARS = (bool, int, float, str)


def read_toml(path: str | Path) -> dict[str, Any]:
    """Parse a TOML file, turning a missing file or a syntax error into a ConfigError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file must exist, but {path} was not found")
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc


def did_you_mean(word: str, known: Any) -> str:
    """`` did you mean 'n_trials'?`` when ``word`` is close to one of ``known`` (a typo), else ""."""
    close = difflib.get_close_matches(word, [str(name) for name in known], n=1, cutoff=0.6)
    return f" did you mean {close[0]!r}?" if close else ""


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, where: str, problems: list[str]) -> Any:
    """Check ``value`` against the annotation ``tp``; ints are accepted where floats are expected."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(tp)
        if value is None and type(None) in options:
            return None
        for option in options:
            if option is type(None):
                continue
            trial: list[str] = []
            coerced = _coerce(value, option, where, trial)
            if not trial:
                return coerced
        problems.append(f"{where} must be {' or '.join(_type_name(o) for o in options)}, but got {value!r}")
        return value
    if origin is typing.Literal:
        allowed = typing.get_args(tp)
        if value not in allowed:
            problems.append(f"{where} must be one of {list(allowed)}, but got {value!r}")
        return value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            problems.append(f"{where} must be a list, but got {value!r}")
            return value
        (item_tp, *_rest) = typing.get_args(tp) or (Any,)
        items = [_coerce(item, item_tp, f"{where}[{i}]", problems) for i, item in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, Mapping):
            problems.append(f"{where} must be a table, but got {value!r}")
        return dict(value) if isinstance(value, Mapping) else value
    if tp is Any:
        return value
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            problems.append(f"{where} must be a table, but got {value!r}")
            return value
        return _build(tp, value, where, problems)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            problems.append(f"{where} must be a number, but got {value!r}")
            return value
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            problems.append(f"{where} must be an integer, but got {value!r}")
        return value
    if tp in _SCALARS:
        if not isinstance(value, tp):
            problems.append(f"{where} must be {_type_name(tp)}, but got {value!r}")
        return value
    return value


def _build(cls: type[T], mapping: Mapping[str, Any], where: str, problems: list[str]) -> T:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    for key in mapping:
        if key not in fields:
            known = ", ".join(sorted(fields))
            problems.append(f"{where}: unknown key {key!r};{did_you_mean(key, fields)} known keys are: {known}")
    kwargs: dict[str, Any] = {}
    for name, field in fields.items():
        if name in mapping:
            kwargs[name] = _coerce(mapping[name], hints[name], f"{where}.{name}", problems)
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            problems.append(f"{where}: required key {name!r} is missing")
    count_before = len(problems)
    if count_before:
        return None  # type: ignore[return-value]
    instance = cls(**kwargs)
    check = getattr(instance, "problems", None)
    if callable(check):
        problems.extend(f"{where}: {message}" for message in check())
    return instance


def from_mapping(cls: type[T], mapping: Mapping[str, Any] | None, source: str) -> T:
    """Build ``cls`` from ``mapping``; raise one ConfigError listing every problem, each naming ``source``."""
    problems: list[str] = []
    instance = _build(cls, mapping or {}, source, problems)
    raise_problems(problems)
    return instance


def collect_problems(cls: type[T], mapping: Any, source: str, problems: list[str]) -> T | None:
    """``from_mapping`` that appends its problems to ``problems`` instead of raising; None when there were any.

    For a file of several tables, so one ConfigError can list the problems of all of them.
    """
    if mapping is not None and not isinstance(mapping, Mapping):
        problems.append(f"{source} must be a table, but got {mapping!r}")
        return None
    try:
        return from_mapping(cls, mapping or {}, source)
    except ConfigError as exc:
        lines = str(exc).splitlines()
        problems.extend(line.strip().removeprefix("- ") for line in lines[1:] if line.strip())
        return None


def raise_problems(problems: list[str], heading: str = "invalid config") -> None:
    """Raise one ConfigError listing every problem, when there is any."""
    if problems:
        raise ConfigError(f"{heading}:\n  - " + "\n  - ".join(problems))


def to_mapping(instance: Any) -> dict[str, Any]:
    """Plain-dict form of a config dataclass, suitable for TOML, JSON and checkpoints."""
    return dataclasses.asdict(instance)


def parse_override(text: str) -> tuple[list[str], Any]:
    """Split ``section.key=value`` into its key path and a typed value (TOML literal, else a bare string)."""
    if "=" not in text:
        raise ConfigError(f"an override must look like section.key=value, but got {text!r}")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"an override must name a key before '=', but got {text!r}")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return key.split("."), value


def apply_overrides(mapping: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Return a copy of ``mapping`` with each ``section.key=value`` override set (tables created as needed).

    Unknown keys are not checked here: the dataclass load that follows rejects them with the full key name.
    """
    import copy

    result = copy.deepcopy(mapping)
    for text in overrides:
        path, value = parse_override(text)
        table = result
        for part in path[:-1]:
            nested = table.setdefault(part, {})
            if not isinstance(nested, dict):
                raise ConfigError(f"override {text!r}: {part!r} is a value, not a table")
            table = nested
        table[path[-1]] = value
    return result
