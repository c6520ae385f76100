"""``--impair`` specs: ``str()`` and ``Impairment.parse`` round-trip, and every bad spec or value
is a ``ConfigurationError`` that names the key and the problem."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from peerbot.engine.impairment import GilbertElliott, Impairment, NetworkImpairment, Outage
from peerbot.errors import ConfigurationError

KEYS = ("loss", "burst", "delay", "jitter", "reorder", "rate", "queue", "outage", "seed")
UNITS = {"loss": ["%"], "delay": ["s", "ms", "us"], "jitter": ["s", "ms", "us"],
         "rate": ["bps", "kbps", "mbps"], "queue": ["ms", "s", "b", "kb", "mb"]}

percent = st.floats(min_value=0, max_value=100, allow_nan=False)
seconds = st.floats(min_value=0, max_value=1e6, allow_nan=False, allow_infinity=False)


@st.composite
def impairments(draw: st.DrawFn) -> Impairment:
    rate = draw(st.none() | st.floats(min_value=1e-3, max_value=1e7, allow_nan=False))
    queue = draw(st.sampled_from(["none", "ms", "bytes"])) if rate is not None else "none"
    return Impairment(
        loss=draw(percent),
        burst=draw(st.none() | st.builds(GilbertElliott, percent, percent, percent)),
        delay=draw(seconds), jitter=draw(seconds), reorder=draw(st.booleans()),
        rate_kbps=rate,
        queue_ms=draw(seconds) if queue == "ms" else None,
        queue_bytes=draw(st.integers(0, 10**9)) if queue == "bytes" else None,
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


@given(st.sampled_from(["loss=-{}%", "delay=-{}ms", "jitter=-{}s", "rate=-{}kbps", "rate=1kbps,queue=-{}ms",
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
    ("delay=infms", "delay must be finite"),
    ("loss=1%,loss=2%", "loss is given twice"),
    ("burst=1%", "burst='1%' must be good→bad/bad→good"),
    ("outage=5s", "outage='5s' must be start\\+duration"),
    ("reorder=maybe", "reorder='maybe' must be true or false"),
    ("seed=1.5", "seed='1.5' must be an integer"),
    ("rate=0kbps", "rate_kbps must be > 0"),
    ("queue=100ms", "a queue needs a rate limit"),
    ("rate=1kbps,queue=10ms,queue=1kB", "queue is given twice"),
    ("rate=1kbps,queue=1.5B", "whole number of bytes"),
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
