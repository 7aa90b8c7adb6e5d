"""Config files: TOML written by `rnncli train --print-config` and read by `--config`.

    text = to_toml(resolve(preset="best"))   # [data], [model], [train], one key per line
    flat = load_toml(Path("run.toml"))       # {"cell": "gru", ...}, checked by config.apply
    python -m rnncli.config                  # the table of config file keys (docs/config.md)

TOML has no null: an unset (None) key is written as a comment. Writing needs no library:
a setting holds a str, int, float, bool or a list of them.
"""

from __future__ import annotations

import json
import typing
from pathlib import Path
from typing import Any

from rnncli.errors import UsageError


def type_name(annotation: Any, article: bool = True) -> str:
    names = {int: "an integer", float: "a number", str: "a string", bool: "a boolean"}
    if typing.get_origin(annotation) is list:
        item = type_name(typing.get_args(annotation)[0]).partition(" ")[2]
        return f"{'a ' if article else ''}list of {item}s"
    kinds = [names[t] for t in typing.get_args(annotation) or (annotation,)
             if t is not type(None)]
    return " or ".join(k if article else k.partition(" ")[2] for k in kinds)


def toml_parser():
    """tomllib, or on Python 3.10 the same parser from PyPI (tomli)."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10: the same parser, from PyPI
        import tomli as tomllib  # type: ignore[no-redef]
    return tomllib


def load_toml(path: Path, table: dict, keys_doc: str) -> dict[str, Any]:
    """The settings of a TOML file, flat; sections ([data], [model], [train]) are optional,
    but a key given inside one must belong to it. A run's config.json is read too (its
    "dataset" entry is a record of the data, not a setting). `table` holds every key's
    Setting (config/settings.py), whose section it checks."""
    tomllib = toml_parser()
    sections = {s.section for s in table.values()}
    try:
        with open(path, "rb") as f:
            if Path(path).suffix == ".json":
                raw = {k: v for k, v in json.load(f).items() if k in sections}
            else:
                raw = tomllib.load(f)
    except FileNotFoundError:
        raise UsageError(f"No config file at {path}: check --config.") from None
    except IsADirectoryError:
        raise UsageError(f"{path} is a folder: --config takes a TOML file such as "
                         f"{Path(path) / 'config.toml'}.") from None
    except OSError as exc:
        raise UsageError(f"Cannot read config file {path} ({exc.strerror}): check --config "
                         "and its permissions.") from None
    except (UnicodeDecodeError, ValueError, AttributeError, RecursionError) as exc:
        # TOMLDecodeError and JSONDecodeError are ValueErrors; a JSON list has no .items;
        # both parsers recurse once per nested array or table, so `x = [[[[...]]]]` ten
        # thousand deep exhausts the stack.
        kind = "JSON" if Path(path).suffix == ".json" else "TOML"
        reason = ("not UTF-8" if isinstance(exc, UnicodeDecodeError)
                  else "nested too deeply" if isinstance(exc, RecursionError) else str(exc))
        raise UsageError(f"Invalid {kind} in {path} ({reason}): fix the file, or write one "
                         "with `rnncli train --print-config`.") from None
    flat: dict[str, Any] = {}
    for k, v in raw.items():
        if not isinstance(v, dict):
            flat[k] = v
            continue
        if k not in sections:
            raise UsageError(f"Unknown section [{k}] in {path}: use [data], [model] or [train] "
                             f"(keys: {keys_doc}).")
        for key, value in v.items():
            home = table[key].section if key in table else k
            if home != k:
                raise UsageError(f"{key} belongs in [{home}], not [{k}], in {path}: move it.")
            flat[key] = value
    return flat


def toml_value(value: Any) -> str:
    """A TOML literal for a str, int, float or bool, or a list of them (the types a setting
    holds)."""
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)  # 0.001, 1e-05, inf, nan: all valid TOML
    # A JSON string is a TOML basic string once DEL, which JSON leaves raw, is escaped.
    return json.dumps(str(value), ensure_ascii=False).replace("\x7f", "\\u007f")


def to_toml(cfg, table: dict, keys_doc: str) -> str:
    """The config as a TOML file that `--config` reads back to the same settings. TOML has
    no null: an unset (None) key is written as a comment, so the file still lists it."""
    lines = ["# rnncli run settings: rnncli train --config THIS_FILE",
             f"# Every key: {keys_doc}."]
    by_section: dict[str, list] = {}
    for s in table.values():
        by_section.setdefault(s.section, []).append(s)
    for section, items in by_section.items():
        lines += ["", f"[{section}]"]
        values = getattr(cfg, section)
        for s in items:
            value = getattr(values, s.name)
            entry = (f"{s.name} = {toml_value(value)}" if value is not None
                     else f"# {s.name} = (unset)")
            lines.append(f"{entry:<32} # {s.help}")
    return "\n".join(lines) + "\n"


def keys_table(table: dict) -> str:
    """The documented table of config keys (docs/config.md), from the settings `table`."""
    rows = ["| key | section | type | default | meaning |", "|---|---|---|---|---|"]
    for s in table.values():
        default = "unset" if s.default is None else toml_value(s.default)  # [] for a list
        kind = type_name(s.type, article=False)
        rows.append(f"| `{s.name}` | {s.section} | {kind} | `{default}` | {s.help} |")
    return "\n".join(rows) + "\n"

