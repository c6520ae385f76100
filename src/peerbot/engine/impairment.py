"""Network impairment in user space, applied where aiortc's ICE transport sends and receives datagrams.

``Impairment`` is one direction's conditions (random and bursty loss, delay, jitter with or
without reordering, a rate limit with a bounded queue, outage windows), seeded so a run
replays; ``NetworkImpairment`` gives each direction its own. ``attach(pc, impairment)`` applies
them to every datagram of the peer's ICE sockets, host and relay alike (ICE, DTLS and SRTP),
from the first connectivity check on, and returns an ``ImpairedNetwork`` whose counters say
what happened to each direction. No root, no netem.

``Blackout`` is a total outage of one peer's network path both ways while it lasts, the
sockets staying open, so the far side and the peer itself see exactly what a dead link shows.

Spec strings (``--impair``): comma-separated ``key=value``, e.g.
``loss=5%,burst=1%/25%/100%,delay=80ms,jitter=20ms,reorder,rate=500kbps,queue=100ms,outage=5s+3s,seed=1``.
``burst`` is good→bad / bad→good transition probabilities per 20 ms slot and the loss in the bad
state (Gilbert–Elliott); ``queue`` is ``ms``/``s`` of backlog or ``B``/``kB``/``MB``; ``outage`` is
start+duration on the call's timeline, from the first attach (repeatable).

Bounds, so a typo fails at once rather than as an ICE failure later: ``delay`` and ``jitter`` at
most ``MAX_DELAY`` (10 s), ``rate`` from ``MIN_RATE_KBPS`` (8 kbps) to ``MAX_RATE_KBPS``, the
queue at most ``MAX_QUEUE_SECONDS`` of backlog, at most ``MAX_OUTAGES`` windows.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, fields
from types import TracebackType
from typing import TYPE_CHECKING, Any, NamedTuple, Self

from aiortc import RTCPeerConnection

from ..errors import ConfigurationError
from ._netsim import BURST_SLOT, ImpairedNetwork, ImpairmentClock, LinkCounters, attach_links

if TYPE_CHECKING:
    from .peer import Peer

__all__ = ["BURST_SLOT", "Blackout", "GilbertElliott", "ImpairedNetwork", "Impairment", "ImpairmentClock",
           "LinkCounters", "NetworkImpairment", "Outage", "attach"]

DEFAULT_QUEUE_MS = 100.0  # a rate limit's queue when neither queue_ms nor queue_bytes is given
MAX_DELAY = 10.0  # seconds, for delay and for jitter: beyond it no call sets up (ICE gives up first)
MIN_RATE_KBPS = 8.0  # slower, a DTLS flight takes seconds to serialise and set-up times out
MAX_RATE_KBPS = 10_000_000.0  # 10 Gbit/s: anything faster is no limit on loopback
MAX_QUEUE_SECONDS = 10.0  # of backlog at the rate limit, however the queue is given
MAX_OUTAGES = 100  # windows, each checked per datagram
_SHOWN = 40  # characters of a user's text echoed in an error


def _shown(text: object) -> str:
    """``repr(text)``, cut short: a hostile spec is not echoed in full."""
    shown = repr(text)
    return shown if len(shown) <= _SHOWN else f"{shown[:_SHOWN]}… ({len(shown)} characters)"


def _check(name: str, value: object, *, maximum: float = math.inf, allow_inf: bool = False,
           unit: str = "") -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise ConfigurationError(f"impairment: {name} must be a number, got {_shown(value)}")
    if value < 0:
        raise ConfigurationError(f"impairment: {name} must not be negative, got {value!r}")
    if value > maximum:
        space = "" if unit in ("", "%") else " "
        hint = ""
        if unit == "s" and value / 1000 <= maximum:  # Impairment(delay=80): milliseconds meant
            hint = f": seconds are the unit, did you mean {value / 1000:g}?"
        raise ConfigurationError(f"impairment: {name} must be at most {maximum:g}{space}{unit},"
                                 f" got {value:g}{space}{unit}{hint}")
    if math.isinf(value) and not allow_inf:
        raise ConfigurationError(f"impairment: {name} must be finite, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class GilbertElliott:
    """Bursty loss: a two-state Markov chain stepped once per ``BURST_SLOT`` (20 ms) of time (percent values).

    ``good_to_bad`` (p) and ``bad_to_good`` (r) are the transition probabilities per slot; in the
    bad state a datagram is lost with ``bad_loss`` percent (the good state loses none). A bad
    spell lasts ``100 / bad_to_good`` slots on average (``burst=1%/25%``: 80 ms, four audio
    packets); the long-run loss is ``bad_loss * good_to_bad / (good_to_bad + bad_to_good)`` percent.

    The chain moves with time, not with traffic, so a quiet link (ICE checks and DTLS during
    set-up, seconds apart) sees the same conditions as a busy one instead of being stuck in a
    burst for seconds. A datagram ``n`` slots after the previous one takes the chain's n-step
    transition in one draw (``bad_probability``), so each datagram still costs a fixed number of draws.
    """

    good_to_bad: float
    bad_to_good: float
    bad_loss: float = 100.0

    def __post_init__(self) -> None:
        for f in fields(self):
            object.__setattr__(self, f.name, _check(f"burst {f.name}", getattr(self, f.name), maximum=100, unit="%"))

    @property
    def bad_share(self) -> float:
        """The stationary probability of the bad state, π = p / (p + r) (0 when neither moves)."""
        p, r = self.good_to_bad / 100, self.bad_to_good / 100
        return p / (p + r) if p + r else 0.0

    def bad_probability(self, was_bad: bool, slots: int) -> float:
        """P(bad now | the state ``slots`` slots ago): with λ = 1 − p − r, π + (1 − π)·λⁿ from
        bad and π·(1 − λⁿ) from good (n = 0: the state is unchanged)."""
        p, r = self.good_to_bad / 100, self.bad_to_good / 100
        if slots <= 0 or p + r == 0:
            return 1.0 if was_bad else 0.0
        pi, decay = p / (p + r), (1 - p - r) ** slots
        return pi + (1 - pi) * decay if was_bad else pi * (1 - decay)


class Outage(NamedTuple):
    """Drop everything from ``start`` seconds into the call (its first attach), for ``duration``
    seconds (``math.inf``: for ever)."""

    start: float
    duration: float


@dataclass(frozen=True)
class Impairment:
    """One direction's network conditions; every field off by default.

    - ``loss``: random loss, percent of datagrams;
    - ``burst``: bursty loss (``GilbertElliott`` or its three percentages);
    - ``delay``: seconds (not ms) added to every datagram; ``jitter``: an extra uniform random
      0..``jitter`` seconds per datagram, each at most ``MAX_DELAY``. With ``reorder=False`` a
      datagram is never released before the one sent before it (delay varies, order stays);
      with ``reorder=True`` datagrams may overtake;
    - ``rate_kbps``: the link serialises at this rate (``MIN_RATE_KBPS`` to ``MAX_RATE_KBPS``);
      datagrams wait in a queue bounded by ``queue_ms`` of backlog or ``queue_bytes`` (default
      ``DEFAULT_QUEUE_MS``; at most ``MAX_QUEUE_SECONDS`` of backlog), tail-dropped beyond it;
    - ``outages``: ``(start_s, duration_s)`` windows on the call's timeline, which starts at the
      first attach (a Peer attaches as it sets its local description) and which a session's
      rebuilt connections continue (``ImpairmentClock``); everything is dropped inside one;
    - ``seed``: every random decision comes from one ``random.Random`` per direction seeded from
      it (``2 * seed`` sending, ``2 * seed + 1`` receiving), and each datagram takes the same number
      of draws whatever happens to it, so for the same datagram sequence the same datagram
      indices are lost in every run (bursty loss also depends on the time between datagrams).
      None: a fresh seed, shown by ``ImpairedNetwork.seed``.

    Order of a datagram's path: outage, random loss, burst loss, the rate-limited queue, delay and jitter.
    """

    loss: float = 0.0
    burst: GilbertElliott | None = None
    delay: float = 0.0
    jitter: float = 0.0
    reorder: bool = False
    rate_kbps: float | None = None
    queue_ms: float | None = None
    queue_bytes: int | None = None
    outages: tuple[Outage, ...] = field(default=())
    seed: int | None = None

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # frozen: normalised once, here
        set_(self, "loss", _check("loss", self.loss, maximum=100, unit="%"))
        set_(self, "delay", _check("delay", self.delay, maximum=MAX_DELAY, unit="s"))
        set_(self, "jitter", _check("jitter", self.jitter, maximum=MAX_DELAY, unit="s"))
        if isinstance(self.burst, tuple):
            set_(self, "burst", GilbertElliott(*self.burst))
        elif self.burst is not None and not isinstance(self.burst, GilbertElliott):
            raise ConfigurationError(f"impairment: burst must be a GilbertElliott, got {_shown(self.burst)}")
        if not isinstance(self.reorder, bool):
            raise ConfigurationError(f"impairment: reorder must be True or False, got {_shown(self.reorder)}")
        if self.rate_kbps is not None:
            set_(self, "rate_kbps", _check("rate_kbps", self.rate_kbps, maximum=MAX_RATE_KBPS, unit="kbps"))
            if self.rate_kbps < MIN_RATE_KBPS:
                raise ConfigurationError(
                    f"impairment: rate_kbps must be at least {MIN_RATE_KBPS:g} kbps, got {self.rate_kbps:g}"
                    " (slower, call set-up cannot finish; use an outage to stop everything)")
        elif self.queue_ms is not None or self.queue_bytes is not None:
            raise ConfigurationError("impairment: a queue needs a rate limit (rate_kbps)")
        if self.queue_ms is not None and self.queue_bytes is not None:
            raise ConfigurationError("impairment: give queue_ms or queue_bytes, not both")
        if self.queue_ms is not None:
            set_(self, "queue_ms", _check("queue_ms", self.queue_ms, maximum=MAX_QUEUE_SECONDS * 1000, unit="ms"))
        if self.queue_bytes is not None:
            if isinstance(self.queue_bytes, bool) or not isinstance(self.queue_bytes, int) or self.queue_bytes < 0:
                raise ConfigurationError(f"impairment: queue_bytes must be an integer >= 0, got {_shown(self.queue_bytes)}")
            rate, backlog = self.rate_kbps, self.queue_limit_seconds
            if rate is not None and backlog is not None and backlog > MAX_QUEUE_SECONDS:
                raise ConfigurationError(
                    f"impairment: a queue of {self.queue_bytes} B is {backlog:g} s of backlog at {rate:g} kbps:"
                    f" at most {MAX_QUEUE_SECONDS:g} s ({int(MAX_QUEUE_SECONDS * rate * 125)} B)")
        try:
            outages = tuple(self.outages)
        except TypeError:
            raise ConfigurationError(
                f"impairment: outages must be a tuple of (start_s, duration_s), got {_shown(self.outages)}") from None
        if len(outages) > MAX_OUTAGES:
            raise ConfigurationError(f"impairment: at most {MAX_OUTAGES} outage windows, got {len(outages)}")
        set_(self, "outages", tuple(self._outage(o) for o in outages))
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed, int)):
            raise ConfigurationError(f"impairment: seed must be an integer, got {_shown(self.seed)}")

    @staticmethod
    def _outage(window: object) -> Outage:
        if not isinstance(window, tuple) or len(window) != 2:
            raise ConfigurationError(f"impairment: an outage is (start_s, duration_s), got {_shown(window)}")
        return Outage(_check("outage start", window[0]), _check("outage duration", window[1], allow_inf=True))

    @property
    def active(self) -> bool:
        """False when nothing is impaired (attaching it would only cost CPU, so nothing is attached)."""
        return bool(self.loss or self.burst or self.delay or self.jitter or self.rate_kbps or self.outages)

    @property
    def queue_limit_seconds(self) -> float | None:
        """The queue bound as seconds of backlog at ``rate_kbps`` (None without a rate limit)."""
        if self.rate_kbps is None:
            return None
        if self.queue_bytes is not None:
            return self.queue_bytes * 8 / (self.rate_kbps * 1000)
        return (self.queue_ms if self.queue_ms is not None else DEFAULT_QUEUE_MS) / 1000

    @classmethod
    def parse(cls, spec: str) -> Impairment:
        """An ``Impairment`` from a spec string (see the module); ``ConfigurationError`` naming what is wrong."""
        return _parse(spec)

    def __str__(self) -> str:
        return _format(self)


@dataclass(frozen=True)
class NetworkImpairment:
    """Conditions per direction of a peer's path: ``send`` (what it sends) and ``receive`` (what
    reaches it); None leaves that direction alone. A bare ``Impairment`` means the same both ways."""

    send: Impairment | None = None
    receive: Impairment | None = None

    @classmethod
    def of(cls, value: Impairment | NetworkImpairment | str | None) -> NetworkImpairment | None:
        """Normalise what a user gives ``impair=``: an Impairment (both ways), a spec string (both ways) or this."""
        if value is None or isinstance(value, NetworkImpairment):
            return value
        if isinstance(value, str):
            value = Impairment.parse(value)
        if not isinstance(value, Impairment):
            raise ConfigurationError(f"impair must be an Impairment or NetworkImpairment, got {_shown(value)}")
        return cls(value, value)

    @classmethod
    def from_specs(cls, both: str | None = None, send: str | None = None,
                   receive: str | None = None) -> NetworkImpairment | None:
        """The CLI's ``--impair`` (both ways), ``--impair-out`` and ``--impair-in`` (each overrides ``both``)."""
        common = Impairment.parse(both) if both is not None else None  # "" is an empty spec: an error
        out = Impairment.parse(send) if send is not None else common
        in_ = Impairment.parse(receive) if receive is not None else common
        return cls(out, in_) if out or in_ else None

    @property
    def active(self) -> bool:
        return any(i is not None and i.active for i in (self.send, self.receive))

    def __str__(self) -> str:
        if self.send == self.receive:
            return f"both ways: {self.send or 'none'}"
        return f"send: {self.send or 'none'}; receive: {self.receive or 'none'}"


# --- spec strings ---------------------------------------------------------------------

_NUMBER = re.compile(r"(?P<number>[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|[+-]?inf)(?P<unit>[A-Za-z%]*)")
# Each unit as a divisor of the field's own unit: division is correctly rounded, so str() round-trips.
_SECONDS = {"s": 1.0, "ms": 1e3, "us": 1e6}
_MILLISECONDS = {"ms": 1.0, "s": 1e-3}
_KBPS = {"kbps": 1.0, "bps": 1e3, "mbps": 1e-3}
_BYTES = {"b": 1.0, "kb": 1e-3, "mb": 1e-6}
_KEYS = ("loss", "burst", "delay", "jitter", "reorder", "rate", "queue", "outage", "seed")


def _quantity(key: str, text: str, units: dict[str, float], example: str, *, maximum: float = math.inf,
              minimum: float = 0.0, bound: str = "") -> tuple[float, str]:
    """``text``'s number, in the unit whose divisor ``units`` gives, and that unit (lower case);
    ``maximum``/``minimum`` in that field unit, ``bound`` how they read to a user ("10 s")."""
    match = _NUMBER.fullmatch(text.strip())
    if match is None:
        raise ConfigurationError(f"impairment: {key}={_shown(text)} is not a number with a unit (e.g. {key}={example})")
    number, unit = float(match["number"]), match["unit"].lower()  # 400 nines: inf, over any bound
    if unit not in units:
        given = f"unit {_shown(match['unit'])}" if unit else "no unit"
        raise ConfigurationError(f"impairment: {key}={_shown(text)} has {given}: use {', '.join(units)} (e.g. {key}={example})")
    if number < 0:
        raise ConfigurationError(f"impairment: {key} must not be negative, got {_shown(text)}")
    value = number / units[unit]
    if value > maximum:
        raise ConfigurationError(f"impairment: {key} must be at most {bound}, got {_shown(text)}")
    if value < minimum:
        raise ConfigurationError(f"impairment: {key} must be at least {bound}, got {_shown(text)}")
    if math.isinf(number) and key != "outage":
        raise ConfigurationError(f"impairment: {key} must be finite, got {_shown(text)}")
    return value, unit


def _seconds(key: str, text: str) -> float:
    if key == "outage":
        return _quantity(key, text, _SECONDS, "5s+3s")[0]
    return _quantity(key, text, _SECONDS, "80ms", maximum=MAX_DELAY, bound=f"{MAX_DELAY:g} s")[0]


def _percent(key: str, text: str) -> float:
    return _quantity(key, text, {"%": 1.0}, "5%", maximum=100, bound="100%")[0]


def _rate(text: str) -> float:
    rate = _quantity("rate", text, _KBPS, "500kbps", maximum=MAX_RATE_KBPS, bound=f"{MAX_RATE_KBPS:g} kbps")[0]
    if rate < MIN_RATE_KBPS:
        raise ConfigurationError(f"impairment: rate must be at least {MIN_RATE_KBPS:g} kbps, got {_shown(text)}"
                                 " (slower, call set-up cannot finish; use an outage to stop everything)")
    return rate


def _queue(text: str) -> dict[str, Any]:
    units = {**_MILLISECONDS, **_BYTES}
    match = _NUMBER.fullmatch(text.strip())
    if match is not None and match["unit"].lower() in _BYTES:
        size = _quantity("queue", text, _BYTES, "30kB")[0]
        if math.isinf(size) or size != int(size):
            raise ConfigurationError(f"impairment: queue={_shown(text)} must be a whole number of bytes")
        return {"queue_bytes": int(size)}  # its bound depends on the rate: checked by Impairment
    return {"queue_ms": _quantity("queue", text, units, "100ms", maximum=MAX_QUEUE_SECONDS * 1000,
                                  bound=f"{MAX_QUEUE_SECONDS:g} s of backlog")[0]}


def _parse(spec: str) -> Impairment:
    if not isinstance(spec, str):
        raise ConfigurationError(f"impairment: a spec must be a string, got {_shown(spec)}")
    values: dict[str, Any] = {}
    outages: list[Outage] = []
    if not spec.strip():
        raise ConfigurationError("impairment: empty spec: give key=value items, e.g. loss=5%,delay=80ms"
                                 " ('none' for no impairment)")
    if spec.strip().lower() == "none":  # what str() gives an Impairment with nothing set
        return Impairment()
    items = [part.strip() for part in spec.split(",")]
    for number, item in enumerate(items, 1):
        if not item:
            raise ConfigurationError(f"impairment: empty item {number} of {len(items)} in the spec (a stray comma?)")
        key, has_value, text = (s.strip() for s in item.partition("="))
        key = key.lower()
        if key not in _KEYS:
            raise ConfigurationError(f"impairment: unknown key {_shown(key)} (known: {', '.join(_KEYS)})")
        if key in values and key != "outage":
            raise ConfigurationError(f"impairment: {key} is given twice")
        if not has_value and key != "reorder":
            raise ConfigurationError(f"impairment: {key} needs a value ({key}=...)")
        values[key] = True  # seen
        if key == "loss":
            values["loss"] = _percent(key, text)
        elif key == "burst":
            parts = text.split("/")
            if len(parts) not in (2, 3):
                raise ConfigurationError(
                    f"impairment: burst={_shown(text)} must be good→bad/bad→good[/bad-state loss], e.g. burst=1%/25%")
            values["burst"] = GilbertElliott(*(_percent(key, p) for p in parts))
        elif key in ("delay", "jitter"):
            values[key] = _seconds(key, text)
        elif key == "reorder":
            if text.lower() not in ("", "true", "yes", "1", "false", "no", "0"):
                raise ConfigurationError(f"impairment: reorder={_shown(text)} must be true or false")
            values["reorder"] = text.lower() in ("", "true", "yes", "1")
        elif key == "rate":
            values["rate_kbps"] = _rate(text)
        elif key == "queue":
            values.update(_queue(text))
        elif key == "outage":
            start, plus, duration = text.partition("+")
            if not plus:
                raise ConfigurationError(f"impairment: outage={_shown(text)} must be start+duration, e.g. outage=5s+3s")
            outages.append(Outage(_seconds(key, start), _seconds(key, duration)))
        elif key == "seed":
            try:
                values["seed"] = int(text)
            except ValueError:  # also more than 4300 digits
                raise ConfigurationError(f"impairment: seed={_shown(text)} must be an integer") from None
    for seen in ("rate", "queue", "outage"):
        values.pop(seen, None)
    return Impairment(**values, outages=tuple(outages))


def _number(value: float) -> str:
    text = repr(float(value))
    return text[:-2] if text.endswith(".0") else text


def _time(value: float) -> str:
    if 0 < value < 1 and float(_number(value * 1000)) / 1000 == value:
        return f"{_number(value * 1000)}ms"
    return f"{_number(value)}s"


def _format(i: Impairment) -> str:
    parts = []
    if i.loss:
        parts.append(f"loss={_number(i.loss)}%")
    if i.burst is not None:
        b = i.burst
        tail = "" if b.bad_loss == 100 else f"/{_number(b.bad_loss)}%"
        parts.append(f"burst={_number(b.good_to_bad)}%/{_number(b.bad_to_good)}%{tail}")
    if i.delay:
        parts.append(f"delay={_time(i.delay)}")
    if i.jitter:
        parts.append(f"jitter={_time(i.jitter)}")
    if i.reorder:
        parts.append("reorder")
    if i.rate_kbps is not None:
        parts.append(f"rate={_number(i.rate_kbps)}kbps")
    if i.queue_ms is not None:
        parts.append(f"queue={_number(i.queue_ms)}ms")
    if i.queue_bytes is not None:
        parts.append(f"queue={i.queue_bytes}B")
    parts += [f"outage={_time(o.start)}+{_time(o.duration)}" for o in i.outages]
    if i.seed is not None:
        parts.append(f"seed={i.seed}")
    return ",".join(parts) or "none"


# --- applying it ----------------------------------------------------------------------


def attach(target: Peer | RTCPeerConnection, impairment: Impairment | NetworkImpairment,
           clock: ImpairmentClock | None = None) -> ImpairedNetwork:
    """Impair the peer's datagrams until ``detach()``: on the ICE sockets it has now, and on
    those its coming gathering opens (so attaching before ``setLocalDescription`` impairs ICE
    from the first check). An inactive direction gets nothing attached (no cost).

    ``clock`` is the call's timeline: outage windows count from its first attach, so attaching
    a rebuilt connection with the same clock continues the call's windows. None: a clock of its own."""
    pc = target if isinstance(target, RTCPeerConnection) else target._pc
    network = NetworkImpairment.of(impairment)
    assert network is not None
    send = network.send if network.send is not None and network.send.active else None
    receive = network.receive if network.receive is not None and network.receive.active else None
    return attach_links(pc, send, receive, str(network), clock)


class Blackout:
    """Drop all of a peer's datagrams, both ways: ``with Blackout(peer): ...`` or ``start()``/``stop()``."""

    _FOREVER = Impairment(outages=(Outage(0.0, math.inf),))

    def __init__(self, target: Peer | RTCPeerConnection) -> None:
        self._target = target
        self._network: ImpairedNetwork | None = None

    @property
    def active(self) -> bool:
        return self._network is not None

    def start(self) -> None:
        """Begin the outage on every socket the peer has now (idempotent)."""
        if self._network is None:
            self._network = attach(self._target, self._FOREVER)

    def stop(self) -> None:
        """End the outage: the sockets send and receive again."""
        if self._network is not None:
            self._network.detach()
            self._network = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
