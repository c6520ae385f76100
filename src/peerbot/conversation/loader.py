"""Conversation scripts from TOML (``tomllib``) or JSON files: no dependency beyond Python's own.

::

    name = "weather"
    [defaults]                 # for every turn that does not say otherwise
    answer_silence = 1.0
    timeout = 15

    [[turns]]
    update = { instructions = "You are a weather bot." }

    [[turns]]
    say = "What is the weather like today?"
    expect = [{ event = "transcript", contains = "weather" }]

    [[turns]]
    say = "Tell me a long story."
    barge_in_after = 1.0       # the next turn talks over the answer 1 s into it

    [[turns]]
    audio = "stop.wav"         # relative to the script's directory

    [[turns]]
    silence = 2

The same in JSON: ``{"name": …, "defaults": {…}, "turns": [{…}, …]}``. Anything else (a wrong
type, an unknown key, a huge value, a file too big) is a ``ConfigurationError`` naming the turn and
the field.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import ConfigurationError
from .script import MAX_STEPS, Expect, Script, Step, Turn, Update

__all__ = ["MAX_SCRIPT_BYTES", "load_script", "parse_script"]

MAX_SCRIPT_BYTES = 1_000_000
_TOP = ("name", "defaults", "turns")
_TURN = ("name", "say", "audio", "silence", "answer_silence", "timeout", "barge_in_after", "expect")
_DEFAULTS = ("answer_silence", "timeout")
_EXPECT = ("event", "contains")
_UPDATE = ("voice", "model", "temperature", "instructions", "modalities")


def load_script(path: str | Path) -> Script:
    """Read a script from ``path``: ``.json`` is JSON, anything else TOML."""
    path = Path(path)
    try:
        with path.open("rb") as file:
            data = file.read(MAX_SCRIPT_BYTES + 1)
    except OSError as exc:
        raise ConfigurationError(f"cannot read the script {str(path)!r}: {exc.strerror or exc}") from None
    if len(data) > MAX_SCRIPT_BYTES:
        raise ConfigurationError(f"{path}: a script is at most {MAX_SCRIPT_BYTES // 1000} kB")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigurationError(f"{path}: not UTF-8 text") from None
    try:
        if path.suffix.lower() == ".json":
            document = json.loads(text)
        else:
            document = tomllib.loads(text)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and TOMLDecodeError are ValueErrors
        kind = "JSON" if path.suffix.lower() == ".json" else "TOML"
        raise ConfigurationError(f"{path}: not valid {kind}: {str(exc)[:200] or type(exc).__name__}") from None
    return parse_script(document, base=path.parent, source=path)


def parse_script(document: object, *, base: Path | None = None, source: Path | None = None) -> Script:
    """A ``Script`` from a decoded document (a dict as TOML or JSON gives it); audio paths are
    relative to ``base``."""
    where = f"{source}: " if source is not None else ""
    if not isinstance(document, Mapping):
        raise ConfigurationError(f"{where}a script is a table (object) with 'turns', got {type(document).__name__}")
    _known(document, _TOP, f"{where}the script")
    defaults = document.get("defaults", {})
    if not isinstance(defaults, Mapping):
        raise ConfigurationError(f"{where}'defaults' must be a table, got {type(defaults).__name__}")
    _known(defaults, _DEFAULTS, f"{where}defaults")
    turns = document.get("turns")
    if not isinstance(turns, list) or not turns:
        raise ConfigurationError(f"{where}a script needs 'turns': a list ([[turns]] in TOML) of at least one turn")
    if len(turns) > MAX_STEPS:
        raise ConfigurationError(f"{where}a script has at most {MAX_STEPS} turns, got {len(turns)}")
    steps = [_step(entry, number, defaults, base, where) for number, entry in enumerate(turns, 1)]
    name = document.get("name", source.stem if source is not None and source.stem else "conversation")
    try:
        return Script(tuple(steps), name=name, source=source)
    except ConfigurationError as exc:
        raise ConfigurationError(f"{where}{exc}") from None


def _step(entry: object, number: int, defaults: Mapping[str, Any], base: Path | None, where: str) -> Step:
    label = f"{where}turn {number}"
    if not isinstance(entry, Mapping):
        raise ConfigurationError(f"{label}: a turn is a table (object), got {type(entry).__name__}")
    if "update" in entry:
        return _update(entry, label)
    _known(entry, _TURN, label, also=("update",))
    fields = {**defaults, **entry}
    fields["expect"] = tuple(_expect(e, f"{label}: expect[{i}]") for i, e in enumerate(_list(entry, "expect", label)))
    audio = fields.get("audio")
    if isinstance(audio, str) and audio.strip():
        path = Path(audio)
        if base is not None and not path.is_absolute():
            path = base / path
        if not path.is_file():
            raise ConfigurationError(f"{label}: audio: no such file {str(path)!r}")
        fields["audio"] = path
    try:
        return Turn(**fields)
    except ConfigurationError as exc:
        raise ConfigurationError(f"{label}: {exc}") from None


def _update(entry: Mapping[str, Any], label: str) -> Update:
    if len(entry) != 1:
        others = ", ".join(sorted(k for k in entry if k != "update"))
        raise ConfigurationError(f"{label}: an update step holds only 'update', not also {others}")
    fields = entry["update"]
    if not isinstance(fields, Mapping):
        raise ConfigurationError(f"{label}: update must be a table of session fields, got {type(fields).__name__}")
    _known(fields, _UPDATE, f"{label}: update")
    try:
        return Update(**fields)
    except ConfigurationError as exc:
        raise ConfigurationError(f"{label}: update: {exc}") from None


def _expect(entry: object, label: str) -> Expect:
    if not isinstance(entry, Mapping):
        raise ConfigurationError(f"{label}: an expectation is a table like {{ event = \"transcript\","
                                 f" contains = \"weather\" }}, got {type(entry).__name__}")
    _known(entry, _EXPECT, label)
    try:
        return Expect(**entry)
    except ConfigurationError as exc:
        raise ConfigurationError(f"{label}: {exc}") from None


def _list(entry: Mapping[str, Any], key: str, label: str) -> list[Any]:
    value = entry.get(key, [])
    if not isinstance(value, list):
        raise ConfigurationError(f"{label}: {key} must be a list, got {type(value).__name__}")
    return value


def _known(table: Mapping[Any, Any], allowed: tuple[str, ...], label: str, also: tuple[str, ...] = ()) -> None:
    unknown = [k for k in table if k not in allowed and k not in also]
    if unknown:
        shown = ", ".join(repr(str(k)[:40]) for k in unknown[:5])
        raise ConfigurationError(f"{label}: unknown key{'s' if len(unknown) > 1 else ''} {shown};"
                                 f" known: {', '.join(allowed)}")
