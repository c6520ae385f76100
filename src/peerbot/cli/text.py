"""Text from the far side (event types, transcripts, reasons, server messages) made safe to print.

A server may send anything: terminal escape sequences (``ESC[2J`` clears the screen), other control
characters, bidi overrides, lone surrogates (which no encoder writes) and, for rich, ``[markup]``.
``terminal_safe`` escapes what a terminal would act on or an encoder would refuse, so that the text
is shown, never obeyed, and printing it never raises.
"""

from __future__ import annotations

import sys
import unicodedata

from rich.markup import escape

__all__ = ["shown", "terminal_safe"]

_LIMIT = 2000  # characters: a hostile message must not flood the terminal either


def terminal_safe(text: object, encoding: str | None = None, *, limit: int = _LIMIT) -> str:
    """``text`` (any object, as ``str()``) with control characters, format characters (bidi
    overrides…), surrogates and whatever ``encoding`` (default: stderr's) cannot write shown as
    ``\\xNN`` / ``\\uNNNN`` escapes; cut at ``limit`` characters."""
    try:
        value = text if isinstance(text, str) else str(text)
    except Exception:  # a hostile __str__
        value = f"<{type(text).__name__}>"
    encoding = encoding or getattr(sys.stderr, "encoding", None) or "utf-8"
    cut = len(value) > limit
    out = []
    for char in value[:limit] if cut else value:
        out.append(char if _printable(char, encoding) else _escaped(char))
    return "".join(out) + ("…" if cut else "")


def shown(text: object) -> str:
    """``terminal_safe`` text for ``rich``'s ``Console.print``: its ``[markup]`` escaped too."""
    return escape(terminal_safe(text))


def _printable(char: str, encoding: str) -> bool:
    if char == " ":
        return True
    if unicodedata.category(char) in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"):
        return False
    try:
        char.encode(encoding)
    except (UnicodeEncodeError, LookupError):
        return False
    return True


def _escaped(char: str) -> str:
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"
