"""Media: sources that feed tracks, sinks that consume frames, and frame streams.

Importing this package never loads PortAudio: ``Microphone`` and ``Speaker`` open the audio
stack only when they are created.
"""

from .app_source import AudioSource
from .devices import format_devices, list_devices
from .encoded import EncodedAudio, EncodedAudioTrack
from .file import File, decode_audio
from .frames import AudioFrame, VideoFrame
from .microphone import Microphone
from .recorder import Recorder
from .source import MediaSource, TrackSource
from .speaker import Speaker
from .synthetic import Silence, TestPattern, Tone, read_frame_counter

__all__ = [
    "AudioFrame", "AudioSource", "EncodedAudio", "EncodedAudioTrack", "File", "decode_audio", "format_devices", "list_devices", "MediaSource", "Microphone", "Recorder", "Silence", "Speaker",
    "TestPattern", "Tone", "TrackSource", "VideoFrame", "read_frame_counter",
]
