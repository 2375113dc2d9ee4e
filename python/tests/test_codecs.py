"""The annotation codecs against hostile input: never anything but a value
or a WireError, a value read is one that writes back, caps hold, errors
quote at most 32 characters. Random cases are seeded and bounded."""

from __future__ import annotations

import ipaddress
import random

import pytest

from keyrotor import wire
from keyrotor.wire import Instant, Nudge, Traffic, WireError

READINGS = [
    lambda t: wire.parse_revision_report(wire.format_revision_report(wire.parse_revision_report(t))),
    lambda t: Nudge.parse(Nudge.parse(t).format()),
    lambda t: wire.parse_last_seen(wire.format_last_seen(wire.parse_last_seen(t))),
    lambda t: Traffic.parse(Traffic.parse(t).format()),
    lambda t: wire.parse_last_seen(wire.format_last_seen(wire.parse_last_seen_lenient(t).value)),
    lambda t: Traffic.parse(Traffic.parse_lenient(t).value.format()),
]

PIECES = [",", ";", "=", ":", "/", " ", "\t", "accepted=", "retired=", "client=", "::1", "10.0.0.5",
          "2026-03-01T10:14:03Z", "9999-12-31T23:59:59.9999999999+23:59", "0000-01-01T00:00:00Z",
          "18446744073709551615", "18446744073709551616", "007", "é", "\x07", "\udcff"]


def hostile(rng: random.Random) -> str:
    if rng.random() < 0.3:
        return "".join(chr(rng.randrange(0, 0x3000)) for _ in range(rng.randrange(0, 80)))
    parts = [rng.choice(PIECES) if rng.random() < 0.7 else str(rng.randrange(10**rng.randrange(1, 22)))
             for _ in range(rng.randrange(0, 40))]
    return "".join(parts)


def test_hostile_text_is_read_or_refused_and_what_is_read_writes_back():
    rng = random.Random(20260301)
    read = 0
    for _ in range(4000):
        text = hostile(rng)
        for reading in READINGS:
            try:
                reading(text)
                read += 1
            except WireError as e:
                assert len(str(e)) < 32 * 10 + 120
                assert e.error_class in {"too-long", "too-many", "syntax", "out-of-range", "duplicate"}
    assert read > 100, "the generator reaches values that read"


def test_the_lenient_readings_refuse_only_what_is_over_a_cap():
    rng = random.Random(7)
    for _ in range(2000):
        text = hostile(rng)
        for lenient in (wire.parse_last_seen_lenient, Traffic.parse_lenient):
            try:
                lenient(text)
            except WireError as e:
                assert e.error_class in {"too-long", "too-many"}


def test_values_over_the_length_caps_are_refused_whatever_they_hold():
    for unit in ["1", "é", "3=2026-03-01T10:14:03Z,", ";", "accepted=1:1"]:
        text = unit * (wire.TRAFFIC_MAX_LEN // len(unit) + 1)
        for read in (wire.parse_revision_report, Nudge.parse, wire.parse_last_seen_lenient,
                     Traffic.parse_lenient, Traffic.parse):
            with pytest.raises(WireError) as e:
                read(text)
            assert e.value.error_class in {"too-long", "too-many"}


def test_a_multibyte_value_is_measured_in_bytes():
    assert Nudge.parse("1/1/" + "0" * 20).revision == 1
    with pytest.raises(WireError) as e:
        wire.parse_revision_report("é" * 11)  # 11 characters, 22 bytes
    assert e.value.error_class == "too-long"


def test_every_last_seen_within_the_caps_round_trips():
    rng = random.Random(3)
    for _ in range(200):
        seen = {rng.randrange(2**64): Instant(rng.randrange(-62_167_219_200, 253_402_207_201),
                                              rng.randrange(10**9))
                for _ in range(rng.randrange(0, 257))}
        text = wire.format_last_seen(seen)
        assert len(text) <= wire.LAST_SEEN_MAX_LEN
        assert wire.parse_last_seen(text) == seen
        assert wire.parse_last_seen_lenient(text) == (seen, 0)


def test_every_traffic_within_the_caps_round_trips():
    rng = random.Random(4)
    for _ in range(100):
        counts = lambda: {rng.randrange(2**64): rng.randrange(2**64) for _ in range(rng.randrange(0, 513))}
        client = rng.choice([None, ipaddress.ip_address(rng.randrange(2**32)),
                             ipaddress.ip_address(rng.randrange(2**128).to_bytes(16, "big"))])
        t = Traffic(counts(), counts(), client)
        text = t.format()
        assert len(text) <= wire.TRAFFIC_MAX_LEN
        assert Traffic.parse(text) == t and Traffic.parse_lenient(text) == (t, 0)


def test_an_error_quotes_a_bounded_escaped_prefix_only():
    with pytest.raises(WireError) as e:
        Nudge.parse("\x07" + "x" * 10_000)
    shown = str(e.value)
    assert "\\x07" in shown and shown.endswith("…") and len(shown) < 140


def test_times_are_whole_instants_to_the_nanosecond():
    assert Instant.parse("2026-03-01T11:14:03.5+01:00") == Instant(1772359200 + 14 * 60 + 3, 500_000_000)
    assert Instant.parse("2026-03-01T10:14:03.5Z").rounded().format() == "2026-03-01T10:14:04Z"
    assert Instant.from_unix(1772359200.25).format() == "2026-03-01T10:00:00.25Z"
    assert Instant(-62_167_219_200).format() == "0000-01-01T00:00:00Z"
