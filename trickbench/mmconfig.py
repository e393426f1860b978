"""Reading OpenMMLab-style config files and ``--cfg-options`` with errors that name the
file, the line or the key, and the fix.

mmengine reports a syntax error in a config as ``File "<unknown>"``, and merges a
misspelled ``--cfg-options`` key as a new key that nothing reads (so
``auto_scale_lr.enabled=True`` trains to the end with the setting ignored).
Here a key the config does not have is refused with the closest one it does have;
to add a key on purpose, write it ``+key=value`` (Hydra's convention).
"""
from __future__ import annotations

import ast
import difflib
from pathlib import Path
from typing import Any
from .errors import TrickBenchError


class ConfigFileError(TrickBenchError, ValueError):
    """A config file or option that cannot be used; the message names it and the fix."""


def read_config(path: str | Path, what: str = "config"):
    """``mmengine.Config.fromfile``, with a missing file, a syntax error (file and line)
    or an error raised while the file runs reported as :class:`ConfigFileError`.

    The config's text (``pretty_text``: logged, dumped to the work dir twice, stored in
    every checkpoint) is left unformatted: mmengine formats it with yapf each time, five
    calls per mmdet/mmseg run, 4.4 s of a demo detection job on a 2-core CPU. The text is the
    same Python, on fewer, longer lines. ``fromfile`` passes
    ``format_python_code`` on to lazy-import configs only (mmengine 0.10.7), so it is set on
    the config here; ``Runner`` deep-copies the config, and the copy keeps it."""
    from mmengine.config import Config

    path = Path(path)
    if not path.is_file():
        raise ConfigFileError(f"{what} file {path} does not exist")
    try:
        cfg = Config.fromfile(str(path), format_python_code=False)
    except SyntaxError as e:
        raise ConfigFileError(f"{what} file {_syntax_error_place(path, e)}: {e.msg}; fix the file") from None
    except Exception as e:  # a NameError in the file, a _base_ that does not exist, ...
        raise ConfigFileError(f"{what} file {path} cannot be read: {type(e).__name__}: {e}") from None
    object.__setattr__(cfg, "_format_python_code", False)   # Config.__setattr__ would set a config key
    return cfg


def _syntax_error_place(path: Path, error: SyntaxError) -> str:
    """``PATH, line N`` when the error is in ``path`` itself; mmengine loses the file name
    when it is in one of the ``_base_`` files."""
    try:
        ast.parse(path.read_text(), filename=str(path))
    except SyntaxError as own:
        return f"{path}, line {own.lineno}"
    return f"{path} (in one of its _base_ files: line {error.lineno})"


def dotted_keys(node: Any, prefix: str = "") -> list[str]:
    """Every key of a nested config as ``a.b.0.c`` (list items by index), leaves and inner nodes."""
    out = []
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, (list, tuple)) else ()
    for key, value in items:
        name = f"{prefix}{key}"
        out.append(name)
        out += dotted_keys(value, name + ".")
    return out


def _has_key(node: Any, parts: list[str]) -> bool:
    for part in parts:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, (list, tuple)) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return False
    return True


def check_options(cfg_dict: dict, options: dict[str, Any], source: str) -> dict[str, Any]:
    """The ``--cfg-options`` to merge: each key must exist in the config ``source``, or be
    written ``+key`` to add it. Returns the options with the ``+`` marks removed."""
    known = None
    out = {}
    for key, value in options.items():
        if key.startswith("+"):
            out[key[1:]] = value
            continue
        if not _has_key(cfg_dict, key.split(".")):
            known = known if known is not None else dotted_keys(cfg_dict)
            close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
            hint = f"did you mean {close[0]}?" if close else "no key of the config is close"
            raise ConfigFileError(f"--cfg-options {key}: {source} has no such key ({hint}); to add a new key on "
                                  f"purpose, write +{key}=...")
        out[key] = value
    return out
