"""The far side of a local Orga call: an engine peer that echoes the caller's voice.

It plays the part of the Orga assistant honestly: it speaks the protocol's data-channel events,
plays the caller's own audio back after a delay, counts the video it receives, and, when asked
for transcription, reports how long each burst of speech lasted rather than pretending to
understand it.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable

import av
from aiortc.mediastreams import MediaStreamTrack

from ..engine import ParkedTrack
from ..engine.ice import IceServerEntry
from ..errors import SessionEndedError
from ..media.streams import Subscription
from ..orga.params import SessionParams
from ._assistant_call import SESSION_UPDATE, AssistantCall, error_message
from ._speech import SpeechBurstDetector
from .echo_track import DelayedEchoTrack

__all__ = ["EchoCall", "SESSION_UPDATE", "error_message"]


class EchoCall(AssistantCall):
    """One call answered by the echo assistant, over an engine ``Peer`` in the answerer's role.

    Counters (``audio_frames_received``, ``video_frames_received``, ``messages_received``,
    ``audio_frames_sent``) let tests check what crossed the wire. The call closes itself when its
    peer ends (the caller hung up or went silent, ICE failed) or never connects within
    ``connect_timeout``; ``on_closed`` then runs once.
    """

    def __init__(
        self,
        params: SessionParams,
        *,
        ice_servers: Iterable[IceServerEntry] = (),
        echo_delay: float = 0.2,
        connect_timeout: float = 30.0,
        on_closed: Callable[[AssistantCall], None] | None = None,
        reflect: bool = False,
    ) -> None:
        super().__init__(params, ice_servers=ice_servers, connect_timeout=connect_timeout, on_closed=on_closed,
                         reflect=reflect)
        # Reflecting (``LocalOrgaServer(reflect=True)``, the way an SFU forwards, so that a density
        # test measures the participants, not the server): the caller's RTP goes straight back,
        # nothing decoded; the audio track only holds the sender's place, the reflector sends.
        self.reflect = reflect
        self._echo = DelayedEchoTrack(echo_delay)
        self._parked = ParkedTrack("audio") if reflect else None

    @property
    def audio_frames_sent(self) -> int:
        """20 ms audio frames sent to the caller so far, echo and silence alike (reflected packets when reflecting)."""
        return self.packets_reflected if self.reflect else self._echo.frames_sent

    @property
    def packets_reflected(self) -> int:
        """RTP packets sent straight back to the caller (reflecting calls only)."""
        reflector = self._peer.reflector
        return reflector.packets_reflected if reflector is not None else 0

    @property
    def echoed_frames(self) -> int:
        """Sent frames that carried some of the caller's audio."""
        return self._echo.echoed_frames

    # --- media -----------------------------------------------------------------------

    def _prepare_media(self) -> MediaStreamTrack:
        if self._parked is not None:
            return self._parked
        self._spawn(self._echo_audio(self._peer.audio.hub.subscribe(maxsize=100)))
        return self._echo

    async def _stop_media(self) -> None:
        self._echo.stop()
        if self._parked is not None:
            self._parked.stop()

    async def _echo_audio(self, frames: Subscription[av.AudioFrame]) -> None:
        rate = self._echo.sample_rate
        resampler = av.AudioResampler(format="s16", layout="mono", rate=rate)
        speech = SpeechBurstDetector()
        with contextlib.suppress(SessionEndedError):  # the peer failed: what was heard still counts
            async for frame in frames:
                arrived_at = time.monotonic()
                for mono in resampler.resample(frame):
                    pcm = mono.to_ndarray().reshape(-1)
                    self._echo.push(pcm, arrived_at)
                    burst = speech.feed(pcm, rate)
                    if burst is not None:
                        await self._send_transcript(burst)
        burst = speech.flush()
        if burst is not None:
            await self._send_transcript(burst)

    async def _send_transcript(self, seconds: float) -> None:
        if not self.params.return_transcription:
            return
        # Placeholders that say what happened: this assistant hears energy, not words.
        transcript = f"({seconds:.1f} s of speech)"
        await self._send_heard(transcript)
        await self._send_reply_text(f"echo: {transcript}")
        self.transcripts_sent += 1
