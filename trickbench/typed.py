"""One loader for every typed config: a dict (read from a config or study file) into a
dataclass, with each key known and each value of its field's type.

:func:`build` serves the pretraining config (:mod:`trickbench.pretrain_config`) and the study
file (:mod:`trickbench.study.spec`) alike: an unknown or misspelled key is an error that
names it with the closest known key, and a value of the wrong type is an error that names
the key and the value (an ``int`` field takes no ``2.5`` and no ``True``; a ``float`` field
takes an ``int``). What a value must mean (a range, a file that exists) is the caller's
check, after the types.
"""
from __future__ import annotations

import dataclasses
import difflib
import types
from pathlib import Path
from typing import Any, Union, get_args, get_origin, get_type_hints

from .errors import TrickBenchError


class ConfigError(TrickBenchError, ValueError):
    """A config value or key that cannot be used; the message names the key and the fix."""


def _plural(noun: str, items: list[str]) -> str:
    return f"{noun}{'s' * (len(items) > 1)} {', '.join(items)}"


def check_keys(values: dict, known: set[str] | list[str], where: str = "", noun: str = "config key") -> None:
    """Every key of ``values`` is one of ``known``; else a :class:`ConfigError` naming the
    unknown ones (``where`` prefixes them: ``"optim."``) with the closest known key of each."""
    unknown = sorted(str(k) for k in set(values) - set(known))
    if not unknown:
        return
    close = {k: difflib.get_close_matches(k, list(known), n=1) for k in unknown}
    hints = "".join(f" (did you mean {where}{close[k][0]}?)" for k in unknown if close[k])
    raise ConfigError(f"unknown {_plural(noun, [where + k for k in unknown])}{hints}; known keys of "
                      f"{where.rstrip('.') or 'the file'}: {', '.join(sorted(known))}")


def check_type(value: Any, hint: Any, key: str) -> Any:
    """``value`` as the type ``hint`` says, or a :class:`ConfigError` naming ``key``."""
    if hint is Any:
        return value
    origin, args = get_origin(hint), get_args(hint)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        errors = []
        for option in options:
            try:
                return check_type(value, option, key)
            except ConfigError as e:
                errors.append(e)
        # a dict given where one option is a dataclass: that option's error names the key inside
        shaped = [e for o, e in zip(options, errors) if isinstance(value, dict) and dataclasses.is_dataclass(o)]
        raise errors[0] if len(errors) == 1 else shaped[0] if len(shaped) == 1 else ConfigError(
            f"{key} must be one of {', '.join(_type_name(o) for o in options)}, not {value!r}")
    if dataclasses.is_dataclass(hint):
        return build(hint, value, f"{key}.")
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key} must be a list, not {value!r}")
        item = args[0] if args else Any
        out = [check_type(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
        return out if origin is list else tuple(out)
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key} must be a dict, not {value!r}")
        kt, vt = args or (Any, Any)
        return {check_type(k, kt, f"{key} key"): check_type(v, vt, f"{key}.{k}") for k, v in value.items()}
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is Path:
        if not isinstance(value, (str, Path)) or not str(value):
            raise ConfigError(f"{key} must be a path, not {value!r}")
        return Path(value)
    if not isinstance(value, hint) or (hint is int and isinstance(value, bool)):
        raise ConfigError(f"{key} must be {'an' if hint is int else 'a'} {_type_name(hint)}, not {value!r}")
    return value


def _type_name(hint: Any) -> str:
    return getattr(hint, "__name__", str(hint))


def build(cls: type, values: Any, where: str = "", noun: str = "config key") -> Any:
    """``cls(**values)``, each value checked against its field's type (nested dataclasses,
    lists, tuples, dicts and optional fields included); a key ``values`` lacks takes the
    field's default. ``where`` is the dotted prefix of ``values`` in the file, for messages."""
    if not isinstance(values, dict):
        raise ConfigError(f"{where.rstrip('.') or 'the config'} must be a dict, not {values!r}")
    hints = get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    check_keys(values, names, where, noun)
    return cls(**{k: check_type(v, hints[k], f"{where}{k}") for k, v in values.items()})
