"""Audio devices as PortAudio sees them: listing, lookup by index or name, a text table.

sounddevice (and through it PortAudio) is imported only when a device is actually needed, so
``import peerbot`` and everything that does not touch a sound card works without them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Literal

from ..errors import AudioDeviceError

DeviceKind = Literal["input", "output"]

_INSTALL_PORTAUDIO = "install PortAudio: `apt-get install libportaudio2` (Debian/Ubuntu)"
_INSTALL_SOUNDDEVICE = "install sounddevice: `pip install sounddevice` (or `pip install peerbot[audio]`)"


@dataclass(frozen=True)
class AudioDevice:
    """One PortAudio device. A device may offer input, output, or both."""

    index: int
    name: str
    max_input_channels: int
    max_output_channels: int
    default_samplerate: float
    is_default_input: bool
    is_default_output: bool

    def channels(self, kind: DeviceKind) -> int:
        return self.max_input_channels if kind == "input" else self.max_output_channels


def import_sounddevice() -> ModuleType:
    """Import sounddevice, turning a missing module or PortAudio library into AudioDeviceError."""
    try:
        import sounddevice
    except ImportError as exc:
        raise AudioDeviceError(f"the sounddevice package is not installed; {_INSTALL_SOUNDDEVICE}") from exc
    except OSError as exc:
        # sounddevice raises OSError("PortAudio library not found") when libportaudio is absent.
        raise AudioDeviceError(f"PortAudio is not available ({exc}); {_INSTALL_PORTAUDIO}") from exc
    module: ModuleType = sounddevice
    return module


def call_in_loop(loop: asyncio.AbstractEventLoop | None, callback: Callable[[], None]) -> None:
    """From a PortAudio thread: run ``callback`` on ``loop``; nothing when there is none or it closed."""
    if loop is not None:
        with contextlib.suppress(RuntimeError):  # the loop closed
            loop.call_soon_threadsafe(callback)


def list_devices() -> list[AudioDevice]:
    """Every device PortAudio offers, in PortAudio's index order."""
    sd = import_sounddevice()
    try:
        infos = sd.query_devices()
        default_in, default_out = _default_indices(sd)
    except sd.PortAudioError as exc:
        raise AudioDeviceError(f"cannot query audio devices: {exc}") from exc
    return [
        AudioDevice(
            index=int(info["index"]),
            name=str(info["name"]),
            max_input_channels=int(info["max_input_channels"]),
            max_output_channels=int(info["max_output_channels"]),
            default_samplerate=float(info["default_samplerate"]),
            is_default_input=int(info["index"]) == default_in,
            is_default_output=int(info["index"]) == default_out,
        )
        for info in infos
    ]


def resolve_device(spec: str | int | None, kind: DeviceKind) -> int | None:
    """The PortAudio index for ``spec``: an index, or a case-insensitive (sub)string of a name.

    ``None`` means the system default and stays ``None``. An exact name wins over substring
    matches; several substring matches are ambiguous. Only devices with ``kind`` channels count.
    """
    if spec is None:
        return None
    candidates = [d for d in list_devices() if d.channels(kind) > 0]
    if isinstance(spec, int) or (isinstance(spec, str) and spec.strip().isdigit()):
        index = int(spec)
        for device in candidates:
            if device.index == index:
                return index
        raise AudioDeviceError(f"no audio {kind} device with index {index}; {_available(candidates, kind)}")
    wanted = spec.strip().lower()
    exact = [d for d in candidates if d.name.lower() == wanted]
    if exact:
        return exact[0].index
    partial = [d for d in candidates if wanted in d.name.lower()]
    if len(partial) == 1:
        return partial[0].index
    if partial:
        names = ", ".join(repr(d.name) for d in partial)
        raise AudioDeviceError(f"audio {kind} device name {spec!r} is ambiguous: it matches {names}")
    raise AudioDeviceError(f"no audio {kind} device matches {spec!r}; {_available(candidates, kind)}")


def device_info(index: int | None, kind: DeviceKind) -> AudioDevice:
    """The device behind a resolved index (``None``: the default ``kind`` device)."""
    devices = list_devices()
    if index is None:
        for device in devices:
            if (device.is_default_input if kind == "input" else device.is_default_output):
                return device
        raise AudioDeviceError(f"there is no default audio {kind} device; {_available(devices, kind)}")
    for device in devices:
        if device.index == index:
            return device
    raise AudioDeviceError(f"no audio device with index {index}")


def format_devices(devices: list[AudioDevice] | None = None) -> str:
    """A text table of devices, as printed by ``peerbot devices``. ``>``/``<`` mark defaults."""
    if devices is None:
        devices = list_devices()
    if not devices:
        return "no audio devices found"
    width = max(len("name"), *(len(d.name) for d in devices))
    lines = [f"{'':2} {'#':>3}  {'name':<{width}}  {'in':>3}  {'out':>3}  {'rate':>7}"]
    for d in devices:
        mark = (">" if d.is_default_input else " ") + ("<" if d.is_default_output else " ")
        lines.append(
            f"{mark} {d.index:>3}  {d.name:<{width}}  {d.max_input_channels:>3}  "
            f"{d.max_output_channels:>3}  {d.default_samplerate:>7.0f}"
        )
    lines.append("(> default input, < default output)")
    return "\n".join(lines)


def _default_indices(sd: ModuleType) -> tuple[int, int]:
    return _default_index(sd, "input"), _default_index(sd, "output")


def _default_index(sd: ModuleType, kind: DeviceKind) -> int:
    # query_devices(kind=...) honours sd.default.device and falls back to PortAudio's choice.
    try:
        return int(sd.query_devices(kind=kind)["index"])
    except (sd.PortAudioError, ValueError):
        return -1  # no default device of this kind


def _available(devices: list[AudioDevice], kind: DeviceKind) -> str:
    names = [d.name for d in devices if d.channels(kind) > 0]
    if not names:
        return f"there are no audio {kind} devices at all"
    return f"available {kind} devices: " + ", ".join(repr(n) for n in names)
