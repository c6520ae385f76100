"""The threshold language (``--assert``): parsing, units, aliases, and readable verdicts."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from peerbot.errors import ConfigurationError
from peerbot.quality import ALIASES, METRICS, Threshold, check, summarize
from peerbot.quality.metrics import STATISTICS
from peerbot.quality.thresholds import value_range

_UNITS_FITTING = {"": [""], "%": ["", "%"], "ms": ["", "ms", "s"], "s": ["", "s", "ms"], "kbps": ["", "kbps"],
                  "fps": ["", "fps"]}
_ALL_UNITS = ["%", "ms", "s", "kbps", "fps"]


def test_issue_examples_parse_to_canonical_summary_keys_in_the_metrics_units():
    assert Threshold.parse("mos>=4.0") == Threshold("mos", "mos", ">=", 4.0)
    assert Threshold.parse("loss<=1%") == Threshold("loss", "loss_percent", "<=", 1.0)
    assert Threshold.parse("rtt_p95<=300ms") == Threshold("rtt_p95", "rtt_ms_p95", "<=", 300.0)


def test_seconds_and_milliseconds_convert_to_the_metrics_unit():
    assert Threshold.parse("rtt<=0.3s") == Threshold.parse("rtt<=300ms")
    assert Threshold.parse("latency_p95 < 1.1 s").value == 1100.0
    assert Threshold.parse("outage<=500ms") == Threshold("outage", "outage_seconds", "<=", 0.5)
    assert Threshold.parse("freezes_duration_s <= 2").value == 2.0


def test_every_alias_names_its_canonical_metric_with_every_statistic_suffix():
    for alias, canonical in ALIASES.items():
        for suffix in ("", *(f"_{s}" for s in STATISTICS)):
            assert Threshold.parse(f"{alias}{suffix}>=0").key == canonical + suffix


@pytest.mark.parametrize("text", ["loss<=3ms", "mos>=4%", "rtt<=300kbps", "fps>=25ms", "freezes<=1s"])
def test_a_unit_that_does_not_fit_the_metric_is_a_configuration_error(text):
    with pytest.raises(ConfigurationError, match="does not fit"):
        Threshold.parse(text)


def test_an_unknown_name_is_a_configuration_error_listing_the_known_names():
    with pytest.raises(ConfigurationError) as caught:
        Threshold.parse("packet_loss<=1%")
    message = str(caught.value)
    assert "packet_loss" in message
    assert all(name in message for name in [*METRICS, *ALIASES])


@pytest.mark.parametrize("text", ["", "mos", "mos=>4", "mos>=", "mos >= four", ">=4", "mos>=4 4", "rtt<=3 m s"])
def test_malformed_expressions_are_configuration_errors_showing_the_syntax(text):
    with pytest.raises(ConfigurationError, match="NAME OP VALUE"):
        Threshold.parse(text)


def test_a_missed_upper_bound_says_measured_required_and_how_much_over():
    [result] = check({"rtt_ms_p95": 412.0}, [Threshold.parse("rtt_p95<=300ms")])
    assert not result.passed
    assert result.measured == 412.0
    assert result.message == "rtt_p95 = 412 ms, required <= 300 ms: 112 ms over"


def test_a_missed_lower_bound_says_how_much_under():
    [result] = check({"mos": 3.85, "loss_percent": 0.5}, [Threshold.parse("mos>=4.0")])
    assert result.message == "mos = 3.85, required >= 4: 0.15 under"


def test_met_thresholds_pass_with_the_measured_figure_in_the_message():
    results = check({"loss_percent": 0.5, "mos": 4.2}, [Threshold.parse("loss<=1%"), Threshold.parse("mos>4")])
    assert [r.passed for r in results] == [True, True]
    assert results[0].message == "loss = 0.5%, required <= 1%"


def test_a_strict_bound_met_exactly_fails_at_the_limit():
    [result] = check({"freeze_count": 0.0}, [Threshold.parse("freezes<0")])
    assert not result.passed and result.message.endswith("at the limit")


def test_an_unmeasured_metric_fails_as_not_measured_never_as_zero():
    summary = summarize([{"t": 1.0, "latency_ms": None, "loss_percent": None}])
    results = check(summary, [Threshold.parse("latency<=500ms"), Threshold.parse("loss<=1%")])
    assert [r.passed for r in results] == [False, False]
    assert [r.measured for r in results] == [None, None]
    assert all("not measured" in r.message for r in results)


def test_results_serialise_with_the_expression_as_written():
    [result] = check({"rtt_ms": 100.0}, [Threshold.parse(" rtt <= 0.3s ")])
    assert result.to_dict() == {"threshold": "rtt <= 0.3s", "key": "rtt_ms", "op": "<=", "value": 300.0,
                                "unit": "ms", "measured": 100.0, "passed": True,
                                "message": "rtt = 100 ms, required <= 300 ms"}


_names = st.sampled_from([*METRICS, *ALIASES])
_suffixes = st.sampled_from(["", *(f"_{s}" for s in STATISTICS)])
_ops = st.sampled_from(["<=", "<", ">=", ">", "=="])
_values = st.floats(min_value=0, max_value=1e6, allow_nan=False).map(lambda v: round(v, 3))


def _metric_of(name: str):
    return METRICS[ALIASES.get(name, name)]


def _fit(name: str, value: float) -> float:
    """A drawn value moved into the metric's range (percentages 0–100, MOS 1–5), as a threshold must be."""
    low, high = value_range(_metric_of(name))
    return value if math.isinf(high) else round(low + value % (high - low), 3)


@given(_names, _suffixes, _ops, _values, st.data(), st.sampled_from(["", " "]))
def test_any_wellformed_threshold_parses_and_its_printed_form_parses_back_to_it(name, suffix, op, value, data, space):
    value = _fit(name, value)
    unit = data.draw(st.sampled_from(_UNITS_FITTING[_metric_of(name).unit]))
    parsed = Threshold.parse(f"{name}{suffix}{space}{op}{space}{value}{unit}")
    assert parsed.key == _metric_of(name).name + suffix
    assert parsed.op == op
    scale = {("ms", "s"): 1000, ("s", "ms"): 0.001}.get((_metric_of(name).unit, unit), 1)
    assert parsed.value == pytest.approx(value * scale)
    assert Threshold.parse(f"{parsed.key}{op}{parsed.value!r}") == Threshold(parsed.key, parsed.key, op, parsed.value)


@given(_names, _ops, _values, st.sampled_from(_ALL_UNITS))
def test_a_unit_is_accepted_exactly_when_it_fits_the_metric(name, op, value, unit):
    value = _fit(name, value)
    text = f"{name}{op}{value}{unit}"
    if unit in _UNITS_FITTING[_metric_of(name).unit]:
        assert Threshold.parse(text).op == op
    else:
        with pytest.raises(ConfigurationError):
            Threshold.parse(text)


@given(st.text(max_size=40))
def test_arbitrary_text_parses_or_raises_configuration_error_only(text):
    try:
        threshold = Threshold.parse(text)
    except ConfigurationError:
        return
    assert threshold.op in ("<=", "<", ">=", ">", "==")


@given(_names, _ops, _values, st.one_of(st.none(), st.floats(min_value=0, max_value=1e6, allow_nan=False)))
def test_check_passes_exactly_when_the_comparison_holds_and_never_on_unmeasured(name, op, value, measured):
    value = _fit(name, value)
    threshold = Threshold.parse(f"{name}{op}{value}")
    [result] = check({threshold.key: measured}, [threshold])
    if measured is None:
        assert not result.passed and "not measured" in result.message
    else:
        expected = {"<=": measured <= value, "<": measured < value, ">=": measured >= value, ">": measured > value,
                    "==": measured == pytest.approx(value, rel=1e-9, abs=1e-9)}[op]
        assert result.passed == expected
        assert result.passed or ("over" in result.message or "under" in result.message
                                 or "off by" in result.message or "at the limit" in result.message)


def test_only_ascii_digits_are_numbers():
    with pytest.raises(ConfigurationError, match="NAME OP VALUE"):
        Threshold.parse("mos>=\u0663")  # ARABIC-INDIC DIGIT THREE: float() would take it, a reader would not


@pytest.mark.parametrize(("text", "says"), [
    ("jitter==1e999ms", "finite"), ("rtt_p95<=-1ms", "at least 0"), ("loss<=150%", "from 0 to 100"),
    ("coverage>=-5", "from 0 to 100"), ("mos>=0.5", "from 1 to 5"), ("mos<=6", "from 1 to 5"),
    ("freezes<=-1", "at least 0"), ("rtt<=1e306s", "finite"),  # finite as written, infinite in ms
])
def test_values_no_call_can_measure_are_configuration_errors_naming_the_range(text, says):
    with pytest.raises(ConfigurationError, match=says):
        Threshold.parse(text)


def test_the_ends_of_each_range_are_accepted():
    for text in ("loss<=0%", "loss<=100%", "mos>=1", "mos<=5", "rtt<=0ms", "coverage>=100%"):
        assert Threshold.parse(text).value in (0.0, 1.0, 5.0, 100.0)
