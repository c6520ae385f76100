"""Offline text-to-speech through Debian's ``flite`` (preferred: its ``slt`` voice is what the
offline recognizer hears best) or ``espeak-ng``: text in, 16-bit mono PCM out."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ConfigurationError

__all__ = ["SynthesizedSpeech", "synthesize", "speech_engine"]

_TIMEOUT_S = 30.0
MAX_TEXT_CHARS = 2000


@dataclass(frozen=True)
class SynthesizedSpeech:
    """Speech as int16 mono samples at ``sample_rate``."""

    samples: np.ndarray
    sample_rate: int
    engine: str

    @property
    def duration(self) -> float:
        """Seconds of audio."""
        return len(self.samples) / self.sample_rate


def speech_engine() -> str | None:
    """``"flite"`` or ``"espeak-ng"``, whichever is installed (flite first), or None."""
    for name in ("flite", "espeak-ng"):
        if shutil.which(name):
            return name
    return None


def synthesize(text: str, *, engine: str | None = None) -> SynthesizedSpeech:
    """Speak ``text`` with ``engine`` (default: :func:`speech_engine`).

    Raises ``ConfigurationError`` when the text is empty or too long, or no engine is installed
    (``apt-get install flite``).
    """
    text = " ".join(text.split())
    if not text:
        raise ConfigurationError("nothing to say: the text is empty")
    if len(text) > MAX_TEXT_CHARS:
        raise ConfigurationError(f"the text is {len(text)} characters; at most {MAX_TEXT_CHARS} are spoken")
    engine = engine or speech_engine()
    if engine is None or not shutil.which(engine):
        raise ConfigurationError("speaking text needs flite or espeak-ng: apt-get install flite")
    with tempfile.TemporaryDirectory(prefix="peerbot-tts-") as tmp:
        out = Path(tmp) / "speech.wav"
        if engine == "flite":
            command = [engine, "-voice", "slt", "-t", text, "-o", str(out)]
        else:
            command = [engine, "-v", "en-us", "-w", str(out), "--", text]
        try:
            subprocess.run(command, check=True, capture_output=True, timeout=_TIMEOUT_S)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
            raise ConfigurationError(f"{engine} could not speak the text: {exc}") from None
        with wave.open(str(out), "rb") as wav:
            if wav.getsampwidth() != 2:
                raise ConfigurationError(f"{engine} wrote {8 * wav.getsampwidth()}-bit audio; 16-bit expected")
            rate, channels = wav.getframerate(), wav.getnchannels()
            samples = np.frombuffer(wav.readframes(wav.getnframes()), dtype=np.int16)
    if channels > 1:
        samples = samples.reshape(-1, channels)[:, 0]
    return SynthesizedSpeech(samples.copy(), rate, engine)
