"""A real virtual sound card for tests: a private PulseAudio daemon with a null sink.

Containers have no sound hardware and no snd-aloop module, so the tests run their own
PulseAudio server (user mode, private socket, no D-Bus, no realtime) with one null sink,
``peerbot_null``. Whatever is played into the sink comes out of its monitor source,
``peerbot_null.monitor``, which is also the default source. PortAudio reaches the daemon through
ALSA's ``pulse`` PCM (libasound2-plugins), so the device name to give peerbot is ``"pulse"``.

    with virtual_audio_device() as audio:
        with audio.play_tone(440):
            mic = Microphone(audio.device)      # records the monitor: the 440 Hz tone
        samples = audio.record(1.0)             # or read the monitor directly with parec

``echo_path()`` adds the room between a speaker and a microphone: a second null sink,
``peerbot_room``, whose monitor becomes the default source, fed by a loopback of the speaker's
sink (delayed, quieter) and by whatever is played into it as the near end (``play_tone(sink=ROOM)``).

Missing tools raise ``VirtualAudioUnavailable`` naming the Debian package to install.
"""

from __future__ import annotations

import contextlib
import ctypes.util
import glob
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import wave
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

SINK = "peerbot_null"
MONITOR = f"{SINK}.monitor"
PORTAUDIO_DEVICE = "pulse"  # ALSA's PulseAudio PCM, as PortAudio lists it
SINK_RATE = 48000
ROOM = "peerbot_room"  # what the microphone hears once echo_path() is set up
START_TIMEOUT = 10.0

# tool -> Debian package that provides it
_TOOLS = {"pulseaudio": "pulseaudio", "pactl": "pulseaudio-utils", "paplay": "pulseaudio-utils", "parec": "pulseaudio-utils"}
DEBIAN_PACKAGES = ("pulseaudio", "pulseaudio-utils", "libasound2-plugins", "libportaudio2")

_CONFIG = """\
load-module module-native-protocol-unix socket={socket} auth-anonymous=1
load-module module-null-sink sink_name={sink} rate={rate} channels=2 sink_properties=device.description={sink}
set-default-sink {sink}
set-default-source {sink}.monitor
"""


class VirtualAudioUnavailable(RuntimeError):
    """The virtual device cannot be set up; the message says what to install or what failed."""


@dataclass
class VirtualAudioDevice:
    """A running private PulseAudio server. ``device`` is the name to pass to peerbot."""

    server: str  # PULSE_SERVER value, e.g. "unix:/tmp/peerbot-pulse-x/native"
    workdir: Path
    device: str = PORTAUDIO_DEVICE
    sink: str = SINK
    monitor: str = MONITOR
    _players: list[subprocess.Popen] = field(default_factory=list)

    def env(self) -> dict[str, str]:
        return {**os.environ, "PULSE_SERVER": self.server, "PULSE_COOKIE": str(self.workdir / "cookie")}

    @contextlib.contextmanager
    def play_tone(self, frequency: float, seconds: float = 30.0, amplitude: float = 0.5, *,
                  sink: str | None = None) -> Iterator[None]:
        """Play a sine into the null sink, or ``sink``, (via paplay) for the duration of the ``with`` block."""
        path = self.workdir / f"tone-{frequency:g}-{amplitude:g}.wav"
        _write_tone(path, frequency, seconds, amplitude)
        player = subprocess.Popen(
            ["paplay", f"--device={sink or self.sink}", str(path)],
            env=self.env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self._players.append(player)
        try:
            time.sleep(0.2)  # let paplay connect and fill the sink before anyone listens
            if player.poll() is not None:
                raise VirtualAudioUnavailable(f"paplay exited early: {player.stderr.read().decode(errors='replace')}")
            yield
        finally:
            _stop(player)
            self._players.remove(player)

    def record(self, seconds: float, rate: int = SINK_RATE) -> np.ndarray:
        """Record the sink's monitor (mono int16) with parec for ``seconds``."""
        wanted = int(seconds * rate) * 2
        recorder = subprocess.Popen(
            ["parec", f"--device={self.monitor}", "--raw", "--format=s16le", f"--rate={rate}", "--channels=1",
             "--latency-msec=20"],
            env=self.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        data = bytearray()
        try:
            while len(data) < wanted:
                block = recorder.stdout.read(min(65536, wanted - len(data)))
                if not block:
                    raise VirtualAudioUnavailable(f"parec stopped: {recorder.stderr.read().decode(errors='replace')}")
                data += block
        finally:
            _stop(recorder)
        return np.frombuffer(bytes(data), dtype="<i2").astype(np.int16)

    def pactl(self, *args: str) -> str:
        """Run ``pactl`` against this daemon; return its output."""
        done = subprocess.run(["pactl", *args], env=self.env(), capture_output=True, text=True, timeout=10)
        if done.returncode != 0:
            raise VirtualAudioUnavailable(f"pactl {' '.join(args)} failed: {done.stderr.strip()}")
        return done.stdout.strip()

    @contextlib.contextmanager
    def echo_path(self, delay_ms: int = 40, gain: float = 0.5) -> Iterator[str]:
        """A room for the ``with`` block: what is played into the speaker's sink reaches the default
        source ``delay_ms`` later at ``gain``, mixed with whatever is played into ``ROOM``.

        Yields the room's sink name. The microphone (``device``) then records ``ROOM``'s monitor;
        the speaker still plays into ``sink``.
        """
        room = self.pactl("load-module", "module-null-sink", f"sink_name={ROOM}", f"rate={SINK_RATE}", "channels=1",
                          f"sink_properties=device.description={ROOM}")
        pacer = None
        try:
            loop = self.pactl("load-module", "module-loopback", f"source={self.monitor}", f"sink={ROOM}",
                              f"latency_msec={delay_ms}", "source_dont_move=true", "sink_dont_move=true")
            # The loopback's own stream: its volume is the echo path's gain (pactl list: index, sink, module…).
            for line in self.pactl("list", "short", "sink-inputs").splitlines():
                fields = line.split()
                if len(fields) > 2 and fields[2] == loop:
                    self.pactl("set-sink-input-volume", fields[0], f"{round(gain * 65536)}")
            self.pactl("set-default-source", f"{ROOM}.monitor")
            pacer = _start_pacer(self, f"{ROOM}.monitor")  # as for the first sink: keep it ticking
            _reinitialize_portaudio()
            yield ROOM
        finally:
            if pacer is not None:
                _stop(pacer)
            with contextlib.suppress(VirtualAudioUnavailable):
                self.pactl("set-default-source", self.monitor)
                self.pactl("unload-module", room)  # also ends the loopback into it
            _reinitialize_portaudio()

    def unplug(self, kind: str = "source-output") -> int:
        """Kill this process's recording (``source-output``) or playback (``sink-input``) streams, as
        unplugging the device would: PortAudio's stream fails under the application. Returns how many."""
        killed = 0
        for index in self._streams_of(kind, os.getpid()):
            self._cli(f"kill-{kind} {index}")
            killed += 1
        return killed

    def _streams_of(self, kind: str, pid: int) -> list[str]:
        # The long listing names each stream's process: "Source Output #3" … application.process.id = "42".
        streams, current = [], None
        for line in self.pactl("list", f"{kind}s").splitlines():
            line = line.strip()
            if line.startswith(("Source Output #", "Sink Input #")):
                current = line.split("#", 1)[1]
            elif line == f'application.process.id = "{pid}"' and current is not None:
                streams.append(current)
        return streams

    def _cli(self, command: str) -> None:
        # pactl cannot kill a stream; the daemon's text protocol (what pacmd speaks) can.
        path = self.workdir / "cli"
        if not path.exists():
            self.pactl("load-module", "module-cli-protocol-unix", f"socket={path}")
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as cli:
            cli.settimeout(5)
            cli.connect(str(path))
            cli.sendall(f"{command}\n".encode())
            cli.shutdown(socket.SHUT_WR)  # the daemon runs the command, then hangs up at the end of input
            while cli.recv(4096):
                pass

    def close(self) -> None:
        for player in list(self._players):
            _stop(player)


def check_prerequisites() -> None:
    """Raise VirtualAudioUnavailable naming every Debian package that is missing."""
    missing = sorted({pkg for tool, pkg in _TOOLS.items() if shutil.which(tool) is None})
    if not glob.glob("/usr/lib/*/alsa-lib/libasound_module_pcm_pulse.so") and not glob.glob(
        "/usr/lib/alsa-lib/libasound_module_pcm_pulse.so"
    ):
        missing.append("libasound2-plugins")
    if ctypes.util.find_library("portaudio") is None:
        missing.append("libportaudio2")
    if missing:
        raise VirtualAudioUnavailable(
            "the virtual audio device needs PulseAudio, its ALSA plugin and PortAudio; "
            f"install: apt-get install {' '.join(missing)}"
        )


@contextlib.contextmanager
def virtual_audio_device() -> Iterator[VirtualAudioDevice]:
    """Start a private PulseAudio daemon with a null sink; point this process at it; tear down.

    Sets ``PULSE_SERVER`` (and ``PULSE_COOKIE``) in ``os.environ`` so libpulse inside PortAudio
    connects to this daemon, and re-initialises PortAudio so its device list includes ``pulse``.
    Both are restored on exit.
    """
    check_prerequisites()
    workdir = Path(tempfile.mkdtemp(prefix="peerbot-pulse-"))
    socket = workdir / "native"
    config = workdir / "peerbot.pa"
    config.write_text(_CONFIG.format(socket=socket, sink=SINK, rate=SINK_RATE))
    log = (workdir / "daemon.log").open("wb")
    daemon_env = {
        **os.environ,
        # Keep every file the daemon writes (cookie, state, runtime dir) in the private dir.
        "HOME": str(workdir),
        "XDG_RUNTIME_DIR": str(workdir),
        "XDG_CONFIG_HOME": str(workdir / "config"),
        "PULSE_RUNTIME_PATH": str(workdir / "runtime"),
        "PULSE_STATE_PATH": str(workdir / "state"),
    }
    daemon_env.pop("PULSE_SERVER", None)
    daemon = subprocess.Popen(
        daemon_command(config),
        env=daemon_env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # Ctrl-C on pytest must not reach the daemon before teardown
    )
    device = VirtualAudioDevice(server=f"unix:{socket}", workdir=workdir)
    saved = {k: os.environ.get(k) for k in ("PULSE_SERVER", "PULSE_COOKIE")}
    pacer = None
    try:
        _wait_ready(daemon, device, workdir / "daemon.log")
        pacer = _start_pacer(device)
        os.environ["PULSE_SERVER"] = device.server
        os.environ["PULSE_COOKIE"] = str(workdir / "cookie")
        _reinitialize_portaudio()
        yield device
    finally:
        device.close()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        _reinitialize_portaudio()
        if pacer is not None:
            _stop(pacer)
        _stop(daemon)
        log.close()
        shutil.rmtree(workdir, ignore_errors=True)


def daemon_command(config: Path) -> list[str]:
    """The exact daemon command line (user mode as root is fine: it only warns)."""
    return [
        "pulseaudio",
        "--daemonize=no",
        "--system=false",
        "--exit-idle-time=-1",
        "--use-pid-file=no",
        "--realtime=no",
        "--high-priority=no",
        "--disallow-exit=yes",
        "--log-target=stderr",
        "-n",  # no default.pa: load only the modules in our file
        "-F",
        str(config),
    ]


def _wait_ready(daemon: subprocess.Popen, device: VirtualAudioDevice, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if daemon.poll() is not None:
            raise VirtualAudioUnavailable(f"pulseaudio exited with {daemon.returncode}:\n{log.read_text()}")
        probe = subprocess.run(
            ["pactl", "list", "short", "sinks"], env=device.env(), capture_output=True, text=True
        )
        if probe.returncode == 0 and SINK in probe.stdout:
            return
        time.sleep(0.05)
    raise VirtualAudioUnavailable(f"pulseaudio did not come up within {START_TIMEOUT} s:\n{log.read_text()}")


def _start_pacer(device: VirtualAudioDevice, monitor: str | None = None) -> subprocess.Popen:
    """Keep a 50 ms reader on the monitor for the daemon's lifetime; return once it gets data.

    Without a client asking for low latency the null sink renders in 2 s blocks, and it only
    notices a new client's latency request when its current block ends: a stream opened by a
    test would then stall for up to 2 s (PortAudio's first input callback, or output after the
    prefill). A low-latency reader on the monitor keeps the sink ticking every ~50 ms (at
    10 ms PortAudio's ALSA output, which fills in ~35 ms periods, underran now and then).
    """
    pacer = subprocess.Popen(
        ["parec", f"--device={monitor or device.monitor}", "--raw", "--latency-msec=50", "--format=s16le",
         "--channels=1"],
        env=device.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    if not pacer.stdout.read(2):  # the first block: the sink now runs at the short latency
        _stop(pacer)
        raise VirtualAudioUnavailable("parec got no data from the null sink's monitor")
    # Drain it forever, or the pipe fills and parec blocks (and pulse drops its data anyway).
    threading.Thread(target=_drain_pipe, args=(pacer.stdout,), daemon=True).start()
    return pacer


def _drain_pipe(pipe) -> None:
    with contextlib.suppress(OSError, ValueError):
        while pipe.read(65536):
            pass


def _reinitialize_portaudio() -> None:
    # PortAudio enumerates devices once, at initialisation (sounddevice does it on import), and
    # ALSA's "pulse" PCM only shows up while a server is reachable: re-enumerate after changes.
    sd = sys.modules.get("sounddevice")
    if sd is not None:
        sd._terminate()
        sd._initialize()


def _write_tone(path: Path, frequency: float, seconds: float, amplitude: float) -> None:
    t = np.arange(int(seconds * SINK_RATE)) / SINK_RATE
    samples = (amplitude * 32767 * np.sin(2 * math.pi * frequency * t)).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SINK_RATE)
        out.writeframes(samples.tobytes())


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    for stream in (process.stdout, process.stderr):
        if stream is not None:
            stream.close()
