"""``--impair`` specs: ``str()`` and ``Impairment.parse`` round-trip, and every bad spec or value
is a ``ConfigurationError`` that names the key and the problem."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from peerbot.engine.impairment import (MAX_DELAY, MAX_OUTAGES, MAX_QUEUE_SECONDS, MAX_RATE_KBPS, MIN_RATE_KBPS,
                                       GilbertElliott, Impairment, NetworkImpairment, Outage)
from peerbot.errors import ConfigurationError

KEYS = ("loss", "burst", "delay", "jitter", "reorder", "rate", "queue", "outage", "seed")
UNITS = {"loss": ["%"], "delay": ["s", "ms", "us"], "jitter": ["s", "ms", "us"],
         "rate": ["bps", "kbps", "mbps"], "queue": ["ms", "s", "b", "kb", "mb"]}

percent = st.floats(min_value=0, max_value=100, allow_nan=False)
seconds = st.floats(min_value=0, max_value=1e6, allow_nan=False, allow_infinity=False)
delays = st.floats(min_value=0, max_value=MAX_DELAY, allow_nan=False)


@st.composite
def impairments(draw: st.DrawFn) -> Impairment:
    rate = draw(st.none() | st.floats(min_value=MIN_RATE_KBPS, max_value=MAX_RATE_KBPS, allow_nan=False))
    queue = draw(st.sampled_from(["none", "ms", "bytes"])) if rate is not None else "none"
    return Impairment(
        loss=draw(percent),
        burst=draw(st.none() | st.builds(GilbertElliott, percent, percent, percent)),
        delay=draw(delays), jitter=draw(delays), reorder=draw(st.booleans()),
        rate_kbps=rate,
        queue_ms=draw(st.floats(0, MAX_QUEUE_SECONDS * 1000)) if queue == "ms" else None,
        queue_bytes=draw(st.integers(0, int(rate * 1250 * 0.999))) if queue == "bytes" and rate else None,
        outages=tuple(draw(st.lists(st.tuples(seconds, seconds), max_size=3))),
        seed=draw(st.none() | st.integers(-2**63, 2**63)),
    )


@given(impairments())
def test_str_of_any_impairment_parses_back_to_an_equal_one(impairment):
    assert Impairment.parse(str(impairment)) == impairment


def test_the_issue_example_parses_to_the_stated_conditions():
    parsed = Impairment.parse("loss=5%,delay=80ms,jitter=20ms,burst=1%/25%,rate=500kbps,outage=5s+3s,seed=1")
    assert parsed == Impairment(loss=5, delay=0.08, jitter=0.02, burst=GilbertElliott(1, 25, 100),
                                rate_kbps=500, outages=(Outage(5, 3),), seed=1)
    assert str(parsed) == "loss=5%,burst=1%/25%,delay=80ms,jitter=20ms,rate=500kbps,outage=5s+3s,seed=1"
    assert Impairment.parse("rate=2Mbps, queue=30kB, jitter=10ms, reorder, outage=1s+2s, outage=10s+0.5s") == Impairment(
        rate_kbps=2000, queue_bytes=30000, jitter=0.01, reorder=True, outages=((1, 2), (10, 0.5)))


def test_a_bare_impairment_means_the_same_conditions_both_ways_and_the_cli_flags_override_one():
    both = Impairment(loss=2)
    assert NetworkImpairment.of(both) == NetworkImpairment(send=both, receive=both)
    assert NetworkImpairment.of("loss=2%") == NetworkImpairment(both, both)
    flags = NetworkImpairment.from_specs("loss=2%", receive="delay=50ms")
    assert flags == NetworkImpairment(send=both, receive=Impairment(delay=0.05))
    assert NetworkImpairment.from_specs() is None


@given(st.text("abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=12).filter(lambda k: k not in KEYS))
def test_an_unknown_key_is_named(key):
    with pytest.raises(ConfigurationError, match=f"unknown key '{key}'"):
        Impairment.parse(f"loss=1%,{key}=3")


@given(st.sampled_from(sorted(UNITS)), st.text("abcdefghijklmnopqrstuvwxyz%", max_size=5))
def test_a_value_without_a_unit_its_key_takes_is_refused_naming_the_key_and_the_units(key, unit):
    if unit.lower() in UNITS[key]:
        unit = "parsecs"
    spec = f"rate=64kbps,{key}=12{unit}" if key == "queue" else f"{key}=12{unit}"
    with pytest.raises(ConfigurationError, match=f"{key}='12{unit}' has (no unit|unit '{unit}'): use "):
        Impairment.parse(spec)


@given(st.sampled_from(["loss=-{}%", "delay=-{}ms", "jitter=-{}s", "rate=-{}kbps", "rate=64kbps,queue=-{}ms",
                        "outage=-{}s+1s", "outage=1s+-{}s", "burst=-{}%/10%"]),
       st.floats(min_value=1e-6, max_value=1e6, allow_nan=False))
def test_a_negative_value_is_refused(template, value):
    with pytest.raises(ConfigurationError, match="must not be negative"):
        Impairment.parse(template.format(value))


@given(st.floats(min_value=100, max_value=1e9, exclude_min=True, allow_nan=False),
       st.sampled_from(["loss={}%", "burst={}%/10%", "burst=1%/{}%", "burst=1%/10%/{}%"]))
def test_a_loss_or_probability_over_100_percent_is_refused(value, template):
    with pytest.raises(ConfigurationError, match="must be at most 100%"):
        Impairment.parse(template.format(value))


@pytest.mark.parametrize("spec, problem", [
    ("loss", "loss needs a value"),
    ("loss=five%", "loss='five%' is not a number with a unit"),
    ("delay=infms", "delay must be at most 10 s"),
    ("loss=1%,loss=2%", "loss is given twice"),
    ("burst=1%", "burst='1%' must be good→bad/bad→good"),
    ("outage=5s", "outage='5s' must be start\\+duration"),
    ("reorder=maybe", "reorder='maybe' must be true or false"),
    ("seed=1.5", "seed='1.5' must be an integer"),
    ("rate=0kbps", "rate must be at least 8 kbps"),
    ("queue=100ms", "a queue needs a rate limit"),
    ("rate=64kbps,queue=10ms,queue=1kB", "queue is given twice"),
    ("rate=64kbps,queue=1.5B", "whole number of bytes"),
])
def test_each_malformed_spec_says_what_is_wrong(spec, problem):
    with pytest.raises(ConfigurationError, match=problem):
        Impairment.parse(spec)


@pytest.mark.parametrize("fields, problem", [
    ({"delay": -1}, "delay must not be negative"),
    ({"loss": 101}, "loss must be at most 100%"),
    ({"jitter": float("nan")}, "jitter must be a number"),
    ({"rate_kbps": 10, "queue_ms": 5, "queue_bytes": 5}, "not both"),
    ({"outages": ((1, 2, 3),)}, "an outage is"),
    ({"seed": "x"}, "seed must be an integer"),
])
def test_building_an_impairment_checks_the_same_rules(fields, problem):
    with pytest.raises(ConfigurationError, match=problem):
        Impairment(**fields)


# --- hostile specs: refused at once, with a short, plain message ----------------------------

@pytest.mark.parametrize("spec, problem", [
    ("", "empty spec"),
    ("   ", "empty spec"),
    (",", "empty item 1 of 2"),
    ("loss=5%,,delay=10ms", "empty item 2 of 3"),
    ("loss=5%,", "empty item 2 of 2"),
    ("delay=1e12s", "delay must be at most 10 s, got '1e12s'"),
    ("jitter=1e9ms", "jitter must be at most 10 s"),
    ("rate=0.0001kbps", "rate must be at least 8 kbps"),
    ("rate=1e12kbps", "rate must be at most"),
    ("rate=64kbps,queue=1h", "has unit 'h'"),
    ("rate=64kbps,queue=20s", "queue must be at most 10 s of backlog"),
    ("rate=8kbps,queue=1MB", "a queue of 1000000 B is 1000 s of backlog at 8 kbps: at most 10 s"),
    ("loss=" + "9" * 400 + "%", "loss must be at most 100%"),
    ("burst=1%/" + "9" * 400 + "%", "burst bad_to_good must be at most 100%|burst must be at most 100%"),
    (",".join(["outage=1s+1s"] * (MAX_OUTAGES + 1)), f"at most {MAX_OUTAGES} outage windows"),
])
def test_a_hostile_spec_is_refused_at_once_saying_what_is_wrong(spec, problem):
    with pytest.raises(ConfigurationError, match=problem):
        Impairment.parse(spec)


def test_an_empty_cli_spec_is_an_error_not_no_impairment():
    for flags in ({"both": ""}, {"send": ","}, {"receive": " "}):
        with pytest.raises(ConfigurationError, match="empty"):
            NetworkImpairment.from_specs(**flags)


@pytest.mark.parametrize("fields, problem", [
    ({"delay": 80}, "delay must be at most 10 s, got 80 s: seconds are the unit, did you mean 0.08\\?"),
    ({"jitter": 20}, "jitter must be at most 10 s, got 20 s: seconds are the unit, did you mean 0.02\\?"),
    ({"delay": 1e12}, "delay must be at most 10 s"),
    ({"rate_kbps": 0.0001}, "rate_kbps must be at least 8 kbps"),
    ({"rate_kbps": 0}, "rate_kbps must be at least 8 kbps"),
    ({"rate_kbps": 64, "queue_ms": 60_000}, "queue_ms must be at most 10000 ms"),
    ({"rate_kbps": 8, "queue_bytes": 10**9}, "at most 10 s"),
    ({"outages": ((1, 1),) * (MAX_OUTAGES + 1)}, "at most 100 outage windows"),
])
def test_python_values_over_the_bounds_are_refused_and_seconds_are_named_as_the_unit(fields, problem):
    with pytest.raises(ConfigurationError, match=problem):
        Impairment(**fields)


def test_a_huge_unknown_key_or_value_is_echoed_cut_short_and_once():
    key = "k" * 100_000
    with pytest.raises(ConfigurationError) as info:
        Impairment.parse(f"{key}=1")
    message = str(info.value)
    assert "unknown key 'kkkk" in message and "(100002 characters)" in message and len(message) < 300
    for spec in (f"delay={'9' * 100_000}ms", f"loss=x{'y' * 100_000}", f"seed={'1' * 100_000}"):
        with pytest.raises(ConfigurationError) as info:
            Impairment.parse(spec)
        assert len(str(info.value)) < 300, str(info.value)[:400]


_HOSTILE_NUMBERS = st.one_of(
    st.floats(min_value=0, max_value=200, allow_nan=False).map(repr),
    st.floats(min_value=0, max_value=20, allow_nan=False).map(repr),
    st.floats(allow_nan=False).map(repr),
    st.integers(-10**30, 10**30).map(str),
    st.sampled_from(["inf", "-inf", "nan", "1e400", "9" * 400, ".5", "0", "1e-400", "", "+", "1e", "0x10"]),
)
_ANY_UNIT = st.sampled_from(["", "%", "s", "ms", "us", "kbps", "bps", "Mbps", "B", "kB", "MB", "h", "%%"])


@st.composite
def hostile_items(draw: st.DrawFn) -> tuple[str, str]:
    """``(key, item)``: mostly a key with one of its own units and an extreme number, sometimes junk."""
    key = draw(st.sampled_from(KEYS)) if draw(st.integers(0, 9)) else draw(st.sampled_from(["", "LOSS", "delay ", "x"]))
    units = UNITS.get("delay" if key.strip().lower() == "outage" else key.strip().lower(), ["%"])

    def number() -> str:
        unit = draw(st.sampled_from(units) | _ANY_UNIT) if draw(st.booleans()) else draw(st.sampled_from(units))
        return draw(_HOSTILE_NUMBERS) + unit

    if key.strip().lower() == "burst":
        value = "/".join(number() for _ in range(draw(st.sampled_from([2, 3, 1, 4]))))
    elif key.strip().lower() == "outage":
        value = f"{number()}+{number()}"
    elif key.strip().lower() == "seed":
        value = str(draw(st.integers()))
    elif key.strip().lower() == "reorder":
        value = draw(st.sampled_from(["", "true", "no", "maybe"]))
    else:
        value = number()
    item = draw(st.sampled_from([f"{key}={value}"] * 12 + [key, f"{key}={value}={value}", value]))
    return key.strip().lower(), item


hostile_specs = st.lists(hostile_items(), max_size=4, unique_by=lambda ki: ki[0]).map(
    lambda items: ",".join(item for _, item in items))


@settings(max_examples=400)  # cheap, and only one in ten or so is accepted
@given(hostile_specs | st.text(max_size=40))
def test_any_spec_the_parser_accepts_builds_an_impairment_within_the_bounds(spec):
    try:
        i = Impairment.parse(spec)
    except ConfigurationError as error:
        assert len(str(error)) < 400  # refused plainly, never with another exception or a wall of text
        return
    assert 0 <= i.loss <= 100 and 0 <= i.delay <= MAX_DELAY and 0 <= i.jitter <= MAX_DELAY
    if i.burst is not None:
        assert all(0 <= v <= 100 for v in (i.burst.good_to_bad, i.burst.bad_to_good, i.burst.bad_loss))
    if i.rate_kbps is not None:
        assert MIN_RATE_KBPS <= i.rate_kbps <= MAX_RATE_KBPS
        assert 0 <= i.queue_limit_seconds <= MAX_QUEUE_SECONDS
    else:
        assert i.queue_ms is None and i.queue_bytes is None
    assert len(i.outages) <= MAX_OUTAGES
    assert all(0 <= o.start < float("inf") and o.duration >= 0 for o in i.outages)
    assert Impairment.parse(str(i)) == i  # and it survives the round trip a report makes


def test_the_chain_n_slot_transition_is_the_closed_form_and_tends_to_the_bad_share():
    chain = GilbertElliott(1, 25)
    p, r = 0.01, 0.25
    assert chain.bad_share == pytest.approx(p / (p + r))
    assert chain.bad_probability(True, 1) == pytest.approx(1 - r) and chain.bad_probability(False, 1) == pytest.approx(p)
    assert chain.bad_probability(True, 0) == 1 and chain.bad_probability(False, 0) == 0
    # Two steps by hand: P(bad | bad) = (1-r)(1-r) + r p; P(bad | good) = p(1-r) + (1-p) p.
    assert chain.bad_probability(True, 2) == pytest.approx((1 - r) ** 2 + r * p)
    assert chain.bad_probability(False, 2) == pytest.approx(p * (1 - r) + (1 - p) * p)
    for was_bad in (True, False):  # a second apart (50 slots): as good as independent of the last state
        assert chain.bad_probability(was_bad, 50) == pytest.approx(chain.bad_share, abs=1e-6)
    assert GilbertElliott(0, 0).bad_probability(False, 10**9) == 0
    assert GilbertElliott(100, 100).bad_probability(True, 3) == 0  # λ = -1: it alternates
