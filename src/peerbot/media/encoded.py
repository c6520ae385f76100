"""Pre-encoded audio: a source encoded to Opus once per process, replayed by any number of tracks.

A load test of hundreds of participants must not run hundreds of encoders: ``EncodedAudio``
encodes its source once into 20 ms Opus packets (shared, immutable ``bytes``), and each
``track()`` replays them in real time, looping, with timestamps of its own. aiortc's sender
accepts the ``av.Packet``s the track yields as they are (no encode); its sequence numbers and
SSRC are the sender's, per participant. The engine may also send a track's packets itself from
one shared clock (``Peer``'s ``rtp="lean"``), in which case the track is only read for its packets.
"""

from __future__ import annotations

import asyncio
import fractions
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from ..errors import ConfigurationError
from ._paced import FRAME_SECONDS, frames_missed

SAMPLE_RATE = 48000  # Opus's RTP clock, whatever the source's rate
FRAME_SAMPLES = int(SAMPLE_RATE * FRAME_SECONDS)
TIME_BASE = fractions.Fraction(1, SAMPLE_RATE)
DEFAULT_BITRATE = 32000  # bit/s: what browsers send for mono speech


class EncodedAudio:
    """20 ms Opus packets of a source (``payloads``), encoded once; ``track()`` replays them.

    Made with ``from_file(path)``, ``tone(hz)``, ``silence()`` or ``from_pcm(samples, rate)``.
    The replay loops: a tone of a whole number of cycles per ``seconds`` loops without a click.
    """

    def __init__(self, payloads: Sequence[bytes], *, channels: int = 1, description: str = "encoded audio") -> None:
        if not payloads or not all(isinstance(p, bytes) and p for p in payloads):
            raise ConfigurationError("EncodedAudio needs at least one non-empty Opus packet")
        self.payloads: tuple[bytes, ...] = tuple(payloads)
        self.channels = channels
        self.description = description

    def __repr__(self) -> str:
        return f"EncodedAudio({self.description}, {len(self.payloads)} packets, {self.bitrate / 1000:.0f} kbit/s)"

    def __len__(self) -> int:
        return len(self.payloads)

    @property
    def duration(self) -> float:
        """Seconds of audio before the replay loops."""
        return len(self.payloads) * FRAME_SECONDS

    @property
    def bitrate(self) -> float:
        """Mean Opus payload bit rate (RTP/UDP headers excluded), bit/s."""
        return sum(map(len, self.payloads)) * 8 / self.duration

    @classmethod
    def from_pcm(cls, samples: np.ndarray, sample_rate: int = SAMPLE_RATE, *, bitrate: int = DEFAULT_BITRATE,
                 description: str = "PCM") -> EncodedAudio:
        """Encode int16 samples, ``(n,)`` mono or ``(channels, n)``, at ``sample_rate``."""
        pcm = np.asarray(samples)
        if pcm.ndim == 1:
            pcm = pcm.reshape(1, -1)
        if pcm.ndim != 2 or pcm.shape[0] not in (1, 2) or pcm.shape[1] == 0:
            raise ConfigurationError(f"samples must be (n,) or (channels, n) with 1 or 2 channels, got {pcm.shape}")
        channels = int(pcm.shape[0])
        layout = "mono" if channels == 1 else "stereo"
        encoder = av.CodecContext.create("libopus", "w")
        encoder.sample_rate = SAMPLE_RATE
        encoder.layout = layout
        encoder.format = "s16"
        encoder.bit_rate = bitrate
        encoder.time_base = TIME_BASE
        encoder.options = {"application": "voip", "frame_duration": "20"}
        resampler = av.AudioResampler(format="s16", layout=layout, rate=SAMPLE_RATE, frame_size=FRAME_SAMPLES)
        source = av.AudioFrame.from_ndarray(np.ascontiguousarray(pcm.T.reshape(1, -1), dtype=np.int16),
                                            format="s16", layout=layout)
        source.sample_rate = sample_rate
        source.pts = 0
        source.time_base = fractions.Fraction(1, sample_rate)
        payloads: list[bytes] = []
        for frame in [*resampler.resample(source), *resampler.resample(None)]:
            payloads += [bytes(p) for p in encoder.encode(frame)]
        payloads += [bytes(p) for p in encoder.encode(None)]
        # The encoder's flush adds a packet for its look-ahead: dropped, so a loop keeps its length.
        frames = max(1, round(pcm.shape[1] * SAMPLE_RATE / sample_rate / FRAME_SAMPLES))
        return cls([p for p in payloads if p][:frames], channels=channels, description=description)

    @classmethod
    def from_file(cls, path: str | Path, *, bitrate: int = DEFAULT_BITRATE, channels: int = 1) -> EncodedAudio:
        """Decode a file's audio (any format PyAV reads) and encode it once; ``MediaError`` if unreadable."""
        from .file import decode_audio  # PyAV containers: only when a file is asked for

        pcm = decode_audio(path, SAMPLE_RATE, channels)
        if pcm.shape[1] == 0:
            raise ConfigurationError(f"{path} holds no audio")
        return cls.from_pcm(pcm, SAMPLE_RATE, bitrate=bitrate, description=Path(path).name)

    @classmethod
    def tone(cls, frequency: float = 440.0, *, seconds: float = 1.0, amplitude: float = 0.3,
             bitrate: int = DEFAULT_BITRATE) -> EncodedAudio:
        """A sine tone (as ``media.Tone``), ``seconds`` long before it loops."""
        if not 0 < frequency < SAMPLE_RATE / 2 or not 0 <= amplitude <= 1 or seconds < FRAME_SECONDS:
            raise ConfigurationError("tone: frequency must be in (0, 24000) Hz, amplitude in [0, 1],"
                                     f" seconds at least {FRAME_SECONDS}")
        t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
        wave = (amplitude * 32767 * np.sin(2 * np.pi * frequency * t)).astype(np.int16)
        return cls.from_pcm(wave, SAMPLE_RATE, bitrate=bitrate, description=f"tone {frequency:g} Hz")

    @classmethod
    def silence(cls, *, seconds: float = 1.0) -> EncodedAudio:
        """Digital silence (Opus makes tiny packets of it)."""
        return cls.from_pcm(np.zeros(max(FRAME_SAMPLES, int(seconds * SAMPLE_RATE)), np.int16), SAMPLE_RATE,
                            description="silence")

    def track(self) -> EncodedAudioTrack:
        """A new audio track replaying the packets in real time, from the first one."""
        return EncodedAudioTrack(self)


class EncodedAudioTrack(MediaStreamTrack):
    """One participant's replay of an ``EncodedAudio``: ``recv()`` yields ``av.Packet``s paced
    on the wall clock (20 ms each), with pts counted from 0 in 1/48000 s; far behind (a starved
    loop), the gap's packets are skipped and the pts jumps over it, as ``media.Tone`` does."""

    kind = "audio"

    def __init__(self, audio: EncodedAudio) -> None:
        super().__init__()
        self.audio = audio
        self.packets_sent = 0
        self._index = 0  # frames since the start, skipped ones included: the pts in frames
        self._start: float | None = None
        self._driven = False  # the engine sends the packets itself: recv() only parks aiortc's sender
        self._parked: asyncio.Future[None] | None = None

    def next_payload(self) -> tuple[bytes, int]:
        """The next packet's payload and its RTP offset in samples, for an engine sending it itself."""
        payload = self.audio.payloads[self._index % len(self.audio.payloads)]
        offset = self._index * FRAME_SAMPLES
        self._index += 1
        self.packets_sent += 1
        return payload, offset

    def skip(self, frames: int) -> None:
        """Skip ``frames`` packets (nobody could send them in time): the timestamps jump over them."""
        self._index += frames

    def drive(self) -> None:
        """The engine sends this track's packets itself (``next_payload``): aiortc's ``recv()`` waits
        until the track stops."""
        self._driven = True

    async def recv(self) -> av.Packet[Any]:
        if self.readyState != "live":
            raise MediaStreamError
        if self._driven:
            self._parked = self._parked or asyncio.get_running_loop().create_future()
            await self._parked
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        else:
            wait = self._start + self._index * FRAME_SECONDS - time.monotonic()
            self._index += frames_missed(wait, FRAME_SECONDS)
            wait = self._start + self._index * FRAME_SECONDS - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
        payload, offset = self.next_payload()
        packet = av.Packet(payload)
        packet.pts = offset
        packet.time_base = TIME_BASE
        return packet

    def stop(self) -> None:
        if self._parked is not None and not self._parked.done():
            self._parked.set_result(None)
        super().stop()
