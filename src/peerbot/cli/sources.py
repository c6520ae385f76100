"""Turn CLI words (``mic``, ``tone``, ``pattern``, a path…) into media sources."""

from __future__ import annotations

from typing import Any

from ..errors import ConfigurationError


def audio_source(spec: str, mic_device: str | None = None, *, echo_cancellation: bool = False,
                 noise_suppression: bool = False, auto_gain: bool = False) -> Any:
    """``mic``, ``tone[:HZ]``, ``silence``, ``none`` or a media file path (``FILE`` or ``FILE:loop``);
    the processing flags go to the ``Microphone``."""
    from .. import media

    if spec == "none":
        return None
    if spec == "mic":
        return media.Microphone(device=_device(mic_device), echo_cancellation=echo_cancellation,
                                noise_suppression=noise_suppression, auto_gain=auto_gain)
    if spec == "silence":
        return media.Silence()
    if spec.startswith("tone"):
        return media.Tone(_tone_hz(spec))
    path, loop = _loop(spec)
    return media.File(path, loop=loop)


def video_source(spec: str) -> Any:
    """``pattern``, ``none`` or a media file path with video."""
    from .. import media

    if spec == "none":
        return None
    if spec == "pattern":
        return media.TestPattern()
    path, loop = _loop(spec)
    source = media.File(path, loop=loop)
    if source.video is None:
        raise ConfigurationError(f"{spec} has no video stream")
    return source


def _tone_hz(spec: str) -> float:
    """``tone`` is 440 Hz; ``tone:HZ`` must be audible at 48 kHz (below the 24 kHz Nyquist limit)."""
    _, _, hz = spec.partition(":")
    try:
        frequency = float(hz) if hz else 440.0
    except ValueError:
        frequency = float("nan")
    if not 0 < frequency < 24000:
        raise ConfigurationError(f"--source tone:HZ needs a frequency between 0 and 24000 Hz, got {spec!r}")
    return frequency


def _loop(spec: str) -> tuple[str, bool]:
    if spec.endswith(":loop"):
        return spec[: -len(":loop")], True
    return spec, False


def _device(spec: str | None) -> str | int | None:
    return int(spec) if spec is not None and spec.isdigit() else spec
