"""A participant's media mode: what it sends and how it receives. Pluggable, so a cheaper mode
(pre-encoded send, count-only receive) is one more entry of :data:`MEDIA_MODES`.

Modes: ``plain`` (a session as an application writes it) and ``encoded`` (pre-encoded send,
count-only receive: the cheap participant). A mode is made once per worker process
(``mode = factory(config)``), so it may share work between the worker's participants (an encoded
source, say); per participant it gives the sources to send (``sources()``), any extra session
options (``session_options()``), and ``receive(session, first_audio)``, which consumes what the
participant receives until the session ends or the task is cancelled, calling ``first_audio()``
once when audio first arrives.

``--decode-sample`` (:mod:`peerbot.load.decoded`): a mode that supports it has
``for_participant(index)``, the mode participant ``index`` uses (a ``DecodedSample`` of itself for
a sampled participant, else itself); a per-participant mode with ``decoded_figures()``
(``Decoding``) adds what it measured of the decoded audio to the participant's figures.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from ..errors import ConfigurationError, PeerbotError
from .decoded import DecodedSample
from .messages import Figures

if TYPE_CHECKING:
    from .config import LoadConfig

__all__ = ["MEDIA_MODES", "Decoding", "EncodedMedia", "MediaMode", "PlainMedia", "media_mode", "participant_media"]


class MediaMode(Protocol):
    name: str

    def sources(self) -> tuple[Any, Any]:
        """The (audio, video) sources of one participant, new for each."""

    def session_options(self) -> dict[str, Any]:
        """Extra keyword arguments for the session (e.g. a receive mode of the engine)."""

    async def receive(self, session: Any, first_audio: Callable[[], None]) -> None:
        """Consume what ``session`` receives; call ``first_audio()`` at its first audio."""


@runtime_checkable
class Decoding(Protocol):
    """A participant's mode that measures the audio it decodes (``--decode-sample``)."""

    def decoded_figures(self) -> Figures:
        """``peerbot.load.decoded.DECODED_FIGURES`` so far."""


def _source_tone(spec: str) -> float | None:
    """The frequency ``--source`` sends, when it is a tone (what a reflected call brings back)."""
    from ..cli.sources import _tone_hz

    return _tone_hz(spec) if spec.startswith("tone") else None


class PlainMedia:
    """Plain sessions, as an application writes them: live Opus encode of ``--source``, aiortc's
    decode of what comes back. The first decoded frame is read (time to first audio), then the
    stream is closed: the session's playout meter still counts coverage and concealment without
    a reader, so no numpy conversion is paid per frame. Every participant decodes: a decode sample
    of 100 % (the only other one ``LoadConfig`` allows) also measures each one's decoded audio."""

    name = "plain"

    def __init__(self, config: LoadConfig) -> None:
        if config.source == "mic":
            raise ConfigurationError("a load test cannot share the microphone: --source tone, silence or a file")
        self._source, self._video = config.source, config.video
        self._measure = config.decode_sample_percent >= 100
        for source in self.sources():  # a missing file or a bad tone is refused now, not per participant
            if source is not None:
                source.stop()

    def sources(self) -> tuple[Any, Any]:
        from ..cli.sources import audio_source, video_source

        return audio_source(self._source), video_source(self._video)

    def session_options(self) -> dict[str, Any]:
        return {}

    def for_participant(self, index: int) -> MediaMode:
        return DecodedSample(self, _source_tone(self._source)) if self._measure else self

    async def receive(self, session: Any, first_audio: Callable[[], None]) -> None:
        frames = session.audio_frames()
        try:
            async for _ in frames:
                first_audio()
                break
        except PeerbotError:  # the session ended first
            return
        finally:
            frames.close()


class EncodedMedia:
    """Cheap participants (``media.encoded`` and the engine's count-only receive): ``--source``
    encoded to Opus once per worker process and replayed by every participant, what comes back
    counted and timed per RTP packet, never decoded (``receive="count"``), so coverage, loss and
    concealment are the packets'. Audio only. Time to first audio is the first RTP packet of audio.

    With a decode sample, the participants ``engine.receive_mode.decodes`` picks still send the
    shared packets but decode and measure what comes back (``DecodedSample``); time to first
    audio is then their first decoded frame."""

    name = "encoded"

    def __init__(self, config: LoadConfig) -> None:
        from ..media.encoded import EncodedAudio

        self._sample = config.decode_sample_percent / 100
        self._tone = _source_tone(config.source)
        if config.video != "none":
            raise ConfigurationError("the encoded media mode sends audio only: leave --video out (or --media plain)")
        spec = config.source
        if spec.startswith("tone"):
            from ..cli.sources import _tone_hz

            self.audio = EncodedAudio.tone(_tone_hz(spec))
        elif spec == "silence":
            self.audio = EncodedAudio.silence()
        elif spec in ("none", "mic"):
            raise ConfigurationError(f"the encoded media mode needs tone, silence or a file, not {spec!r}")
        else:
            self.audio = EncodedAudio.from_file(spec.removesuffix(":loop"))  # it always loops

    def sources(self) -> tuple[Any, Any]:
        return self.audio.track(), None

    def session_options(self) -> dict[str, Any]:
        return {"receive": "count"}

    def for_participant(self, index: int) -> MediaMode:
        from ..engine.receive_mode import decodes

        return DecodedSample(self, self._tone) if decodes(index, self._sample) else self

    async def receive(self, session: Any, first_audio: Callable[[], None]) -> None:
        # No frame to wait for: the engine's counters show the first packet (checked every 10 ms).
        while True:
            peer = session.peer
            if peer is not None and any(s.kind == "audio" and s.packetsReceived for s in peer.snapshot().inbound_rtp):
                first_audio()
                return
            await asyncio.sleep(0.01)


MEDIA_MODES: Mapping[str, Callable[[LoadConfig], MediaMode]] = {"plain": PlainMedia, "encoded": EncodedMedia}
"""The media modes by name (``--media``)."""


def media_mode(config: LoadConfig) -> MediaMode:
    """The mode ``config.media`` names: a key of :data:`MEDIA_MODES` or ``"module:attribute"``."""
    factory = MEDIA_MODES.get(config.media)
    plugged = factory is None and ":" in config.media
    if plugged:
        module, _, attribute = config.media.partition(":")
        if not module or not attribute:
            raise ConfigurationError(f"media mode {config.media!r}: expected module:attribute, e.g. mymodes:Quiet")
        try:
            factory = getattr(importlib.import_module(module), attribute)
        except (ImportError, AttributeError, ValueError) as exc:
            raise ConfigurationError(f"media mode {config.media!r} cannot be loaded: {exc}") from None
    if factory is None:
        raise ConfigurationError(f"unknown media mode {config.media!r}; known: {', '.join(MEDIA_MODES)}"
                                 " (or module:attribute)")
    if not plugged:
        mode = factory(config)
    else:  # someone else's code: whatever it raises is a bad --media, not a crash of the run
        try:
            mode = factory(config)
        except PeerbotError:
            raise
        except Exception as exc:
            raise ConfigurationError(f"media mode {config.media!r} cannot be made from the load config:"
                                     f" {type(exc).__name__}: {exc}") from None
        missing = [name for name in ("sources", "session_options", "receive") if not callable(getattr(mode, name, None))]
        if missing:
            raise ConfigurationError(f"media mode {config.media!r} is not a MediaMode: it has no {', '.join(missing)}"
                                     " (see peerbot.load.media)")
    if config.decode_sample_percent > 0 and not hasattr(mode, "for_participant"):
        raise ConfigurationError(f"media mode {config.media!r} has no decode sample (no for_participant):"
                                 " leave --decode-sample out")
    return mode


def participant_media(mode: MediaMode, index: int) -> MediaMode:
    """The mode participant ``index`` uses: ``mode.for_participant(index)``, or ``mode`` when it has none."""
    pick = getattr(mode, "for_participant", None)
    return mode if pick is None else pick(index)
