"""What the worker accepts on its pipe: bounded lines of UTF-8 JSON, requests checked field by field before any work.

Everything a request can carry is checked here, so that a malformed one is a
``ProtocolError`` reply naming the field, never a crash or an ``InternalError``
(docs/worker-protocol.md, "Malformed input").
"""

from __future__ import annotations

import json
import math
from dataclasses import fields
from typing import IO, Any

#: Longest request line read, in bytes; longer ones are skipped to their end and refused.
MAX_LINE = 1 << 20

#: Requests the worker knows.
REQUESTS = ("reconstruct", "cancel", "ping", "shutdown")

#: Types of the fields of a reconstruct request's "prompt" object.
PROMPT_TYPES = {
    "text": ("str",),
    "seed": ("int",),
    "steps": ("int", "None"),
    "model": ("str", "None"),
    "model_dir": ("str", "None"),
    "raw": ("bool", "None"),
    "width": ("int", "None"),
    "height": ("int", "None"),
}


class ProtocolError(Exception):
    """A line or request the worker does not understand; the message says what is wrong."""


def read_lines(stream: IO[bytes]):
    """Yield each line of ``stream`` as text, or a :class:`ProtocolError` in its place.

    A line longer than :data:`MAX_LINE` is read to its end in bounded pieces (never
    held whole) and yields an error; bytes that are not UTF-8 yield an error.
    """
    while True:
        line = stream.readline(MAX_LINE + 1)
        if not line:
            return
        if len(line) > MAX_LINE and not line.endswith(b"\n"):
            while line and not line.endswith(b"\n"):
                line = stream.readline(MAX_LINE)
            yield ProtocolError(f"Bad request (longer than {MAX_LINE:,} bytes).")
            continue
        try:
            yield line.decode("utf-8")
        except UnicodeDecodeError:
            yield ProtocolError("Bad request (not UTF-8 text).")


def parse(line: str) -> dict:
    """The request object of one line; raises :class:`ProtocolError`."""
    try:
        request = json.loads(line)
    except ValueError as exc:
        raise ProtocolError(f"Bad request (not JSON: {exc}).") from None
    except RecursionError:
        raise ProtocolError("Bad request (nested too deeply).") from None
    if not isinstance(request, dict):
        raise ProtocolError(f"Bad request (a JSON {_type(request)}, not an object).")
    return request


def request_id(request: dict) -> Any:
    """The id to answer with: the request's own when it is plain JSON, else null."""
    value = request.get("id")
    try:
        json.dumps(value, allow_nan=False)
    except (ValueError, TypeError, RecursionError):
        return None
    return value


def check(request: dict) -> str:
    """The request's kind, once every field it carries has the documented type."""
    kind = request.get("request")
    if kind not in REQUESTS:
        shown = json.dumps(kind)[:60] if isinstance(kind, str | int | float | bool) else _type(kind)
        raise ProtocolError(f"Unknown request {shown}: use {', '.join(REQUESTS)}.")
    if kind == "reconstruct":
        check_reconstruct(request)
    return kind


def check_reconstruct(request: dict) -> None:
    known = {"request", "id", "image", "output", "settings", "prompt", "picture"}
    unknown = sorted(str(k) for k in set(request) - known)
    if unknown:
        raise ProtocolError(f"Unknown field in a reconstruct request: {', '.join(unknown)}.")
    prompt = request.get("prompt")
    source = "picture" if prompt is not None else "image"
    for name in ("output", source):
        value = request.get(name)
        if value is None:
            raise ProtocolError(
                f'A reconstruct request needs "{name}": a path '
                '(and "image", or "prompt" and "picture").'
            )
        _path(name, value)
    settings = request.get("settings")
    if settings is not None:
        check_settings(settings)
    if prompt is not None:
        if not isinstance(prompt, dict):
            raise ProtocolError(f'"prompt" must be an object, not a JSON {_type(prompt)}.')
        for name, value in prompt.items():
            if name in PROMPT_TYPES:
                _typed(f"prompt.{name}", value, PROMPT_TYPES[name])


def check_settings(settings: Any) -> None:
    """Each field of a settings object has its Settings type (values are checked by Settings)."""
    from ..settings import Settings

    if not isinstance(settings, dict):
        raise ProtocolError(f'"settings" must be an object, not a JSON {_type(settings)}.')
    types = {f.name: tuple(t.strip() for t in str(f.type).split("|")) for f in fields(Settings)}
    for name, value in settings.items():
        if name in types:  # unknown names: Settings.from_dict's OptionError lists them
            _typed(f"settings.{name}", value, types[name])


def _typed(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    ok = (
        (value is None and "None" in allowed)
        or (isinstance(value, bool) and "bool" in allowed)
        or (
            isinstance(value, int)
            and not isinstance(value, bool)
            and ("int" in allowed or "float" in allowed)
            and abs(value) < 2**53
        )
        or (isinstance(value, float) and "float" in allowed and math.isfinite(value))
        or (isinstance(value, str) and "str" in allowed and "\x00" not in value)
    )
    if not ok:
        wanted = " or ".join("null" if t == "None" else _NAMES.get(t, t) for t in allowed)
        raise ProtocolError(f'"{name}" must be {wanted}, not {_shown(value)}.')


def _path(name: str, value: Any) -> None:
    if not isinstance(value, str) or not value.strip() or "\x00" in value or len(value) > 4096:
        raise ProtocolError(f'"{name}" must be a path (a non-empty string), not {_shown(value)}.')


_NAMES = {"int": "an integer", "float": "a number", "str": "a string", "bool": "true or false"}


def _type(value: Any) -> str:
    return {
        dict: "object",
        list: "array",
        str: "string",
        bool: "boolean",
        int: "number",
        float: "number",
        type(None): "null",
    }.get(type(value), type(value).__name__)


def _shown(value: Any) -> str:
    if isinstance(value, str):
        return "a string with a NUL character" if "\x00" in value else f"the string {value[:40]!r}"
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 2**53:
        return "a number that large"
    return f"a JSON {_type(value)}"
