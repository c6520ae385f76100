"""Regenerate the sample media: ``python samples/make_samples.py``.

hello.wav   : espeak-ng speech, 16 kHz mono s16 (needs the ``espeak-ng`` program).
pattern.mp4 : 5 s of 320x240 15 fps H.264 moving colour bars plus a quiet 440 Hz AAC tone.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

HERE = Path(__file__).resolve().parent
SENTENCE = "Hello, this is peerbot, a headless participant in a realtime call."

WIDTH, HEIGHT, FPS, SECONDS = 320, 240, 15, 5
AUDIO_RATE, TONE_HZ, TONE_LEVEL = 48000, 440.0, 0.1  # 0.1 = -20 dBFS: audible, not loud


def make_hello(out: Path) -> None:
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        sys.exit("espeak-ng not found: apt-get install espeak-ng")
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "speech.wav"
        subprocess.run([espeak, "-v", "en-us", "-s", "175", "-w", str(raw), SENTENCE], check=True)
        _to_16k_mono(raw, out)


def _to_16k_mono(src: Path, out: Path) -> None:
    # espeak-ng writes 22.05 kHz; resample with PyAV so sox is not needed.
    resampler = av.AudioResampler(format="s16", layout="mono", rate=16000)
    with av.open(str(src)) as inp, av.open(str(out), "w", format="wav") as dst:
        stream = dst.add_stream("pcm_s16le", rate=16000, layout="mono")
        for frame in inp.decode(audio=0):
            for piece in resampler.resample(frame):
                dst.mux(stream.encode(piece))
        for piece in resampler.resample(None):
            dst.mux(stream.encode(piece))
        dst.mux(stream.encode(None))


def _picture(i: int) -> np.ndarray:
    """Diagonal colour bands scrolling right, with a white square bouncing across."""
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH]
    phase = (x + y // 2 + 8 * i) / 40.0
    rgb = np.stack([np.sin(phase), np.sin(phase + 2.1), np.sin(phase + 4.2)], axis=-1)
    img = ((rgb + 1) * 127.5).astype(np.uint8)
    sx = int((WIDTH - 40) * abs(((i / (FPS * 2.5)) % 2) - 1))
    img[100:140, sx:sx + 40] = 255
    return img


def make_pattern(out: Path) -> None:
    with av.open(str(out), "w", format="mp4") as dst:
        video = dst.add_stream("libx264", rate=FPS)
        video.width, video.height, video.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        video.options = {"crf": "28", "preset": "medium", "tune": "animation"}
        audio = dst.add_stream("aac", rate=AUDIO_RATE, layout="mono")
        audio.bit_rate = 48000

        for i in range(FPS * SECONDS):
            frame = av.VideoFrame.from_ndarray(_picture(i), format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, FPS)
            dst.mux(video.encode(frame))
        dst.mux(video.encode(None))

        t = np.arange(AUDIO_RATE * SECONDS) / AUDIO_RATE
        tone = (TONE_LEVEL * np.sin(2 * np.pi * TONE_HZ * t)).astype(np.float32)
        step = 1024  # the AAC frame size
        for start in range(0, len(tone), step):
            chunk = tone[start:start + step].reshape(1, -1)
            frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = AUDIO_RATE, start, Fraction(1, AUDIO_RATE)
            dst.mux(audio.encode(frame))
        dst.mux(audio.encode(None))


def main() -> None:
    make_hello(HERE / "hello.wav")
    make_pattern(HERE / "pattern.mp4")
    for name in ("hello.wav", "pattern.mp4"):
        print(f"{name}: {(HERE / name).stat().st_size} bytes")


if __name__ == "__main__":
    main()
