"""Run files and command-line overrides: the one TOML/JSON reader and the one `--section.key=value` parser.

pretrain, finetune and study all read their run files and overrides through here, so a broken file, a bad value or
a malformed override is the same one-line error everywhere.

    raw = read_run_file("configs/small.toml")                       # {"model": {...}, "train": {...}}
    raw = apply_overrides(raw, ["--train.steps=100"], hint_of)      # typed by hint_of(section, key)
"""
from __future__ import annotations

import json
import typing
from pathlib import Path
from typing import Any, Callable

from electra.errors import ElectraError
from electra.files import read_utf8


def tomllib():
    """The standard TOML reader (tomli before Python 3.11)."""
    try:
        import tomllib as toml
    except ModuleNotFoundError:  # Python < 3.11
        import tomli as toml
    return toml


def read_run_file(path, what: str = "config file", where_to_look: str = "configs/") -> dict:
    """A TOML run file (or a `.json` one, e.g. a run's resolved config.json) as a dict of tables."""
    path = Path(path)
    if not path.is_file():
        raise ElectraError(f"{what} {path} not found (the shipped ones are in {where_to_look})")
    text = read_utf8(path)
    if path.suffix == ".json":
        try:
            raw = json.loads(text)
        except (ValueError, RecursionError) as e:
            raise ElectraError(f"{path}: not valid JSON ({e})") from None
    else:
        toml = tomllib()
        try:
            raw = toml.loads(text)
        except (toml.TOMLDecodeError, RecursionError) as e:  # RecursionError: nested too deeply
            raise ElectraError(f"{path}: not valid TOML ({e})") from None
    if not isinstance(raw, dict):
        raise ElectraError(f"{path} must hold a table of sections, not {type(raw).__name__}")
    return raw


def parse_value(text: str, hint: Any, path: str):
    """A command-line string typed by a field's hint: str stays str; bools accept true/false/1/0/yes/no; int and
    float must parse. Without a hint (None) the text is read as a TOML value (numbers, booleans, lists, quoted
    strings) and is a bare string otherwise."""
    if hint is None:
        toml = tomllib()
        try:
            return toml.loads(f"v = {text}")["v"]
        except toml.TOMLDecodeError:
            return text
    if typing.get_origin(hint) is typing.Union:
        hint = [a for a in typing.get_args(hint) if a is not type(None)][0]
    if hint is str:
        return text
    if hint is bool:
        table = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
        if text.lower() in table:
            return table[text.lower()]
        raise ElectraError(f"--{path}={text}: expected true or false")
    if hint in (int, float):
        try:
            return hint(text)
        except ValueError:
            raise ElectraError(f"--{path}={text}: expected {hint.__name__}") from None
    return parse_value(text, None, path)


def split_override(item: str, example: str = "--train.steps=1000") -> tuple[str, str, str]:
    """'--section.key=value' -> (section, key, value); ElectraError for anything else."""
    body = item[2:] if item.startswith("--") else item
    path, sep, value = body.partition("=")
    section, dot, key = path.partition(".")
    if not sep or not dot or not section or not key:
        raise ElectraError(f"override '{item}' must look like --section.key=value (e.g. {example})")
    return section, key, value


def apply_overrides(raw: dict, overrides, hint_of: Callable[[str, str], Any] | None = None,
                    example: str = "--train.steps=1000") -> dict:
    """A copy of `raw` with each `--section.key=value` applied. `hint_of(section, key)` returns the key's type (and
    raises ElectraError, with a suggestion, for an unknown section or key); without it values are read as TOML."""
    raw = {k: dict(v) if isinstance(v, dict) else v for k, v in raw.items()}
    for item in overrides:
        section, key, value = split_override(item, example)
        hint = hint_of(section, key) if hint_of is not None else None
        raw.setdefault(section, {})[key] = parse_value(value, hint, f"{section}.{key}")
    return raw
