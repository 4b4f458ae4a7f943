"""JCS (RFC 8785) canonical bytes against the published cyberphone test data."""

import json
import math
import struct
from pathlib import Path

import pytest
from hypothesis import given, strategies as st

from greenbench import canonical
from greenbench.canonical import canonical_bytes, canonical_bytes_of_json, format_number

DATA = Path(__file__).parent / "data" / "jcs"
NAMES = sorted(p.name for p in (DATA / "input").glob("*.json"))


@pytest.mark.parametrize("name", NAMES)
def test_jcs_vectors(name):
    doc = json.loads((DATA / "input" / name).read_text(encoding="utf-8"))
    expected = (DATA / "output" / name).read_bytes().rstrip(b"\n")
    assert canonical_bytes(doc) == expected
    hexed = (DATA / "outhex" / name.replace(".json", ".txt")).read_text().split()
    assert canonical_bytes(doc) == bytes(int(h, 16) for h in hexed)


@pytest.mark.parametrize(
    "bits,expected",
    [  # from RFC 8785 Appendix B (IEEE-754 hex -> ECMAScript string)
        ("0000000000000000", "0"),
        ("8000000000000000", "0"),
        ("0000000000000001", "5e-324"),
        ("8000000000000001", "-5e-324"),
        ("7fefffffffffffff", "1.7976931348623157e+308"),
        ("4340000000000000", "9007199254740992"),
        ("c340000000000000", "-9007199254740992"),
        ("4430000000000000", "295147905179352830000"),
        ("44b52d02c7e14af5", "9.999999999999997e+22"),
        ("44b52d02c7e14af6", "1e+23"),
        ("44b52d02c7e14af7", "1.0000000000000001e+23"),
        ("444b1ae4d6e2ef4e", "999999999999999700000"),
        ("444b1ae4d6e2ef4f", "999999999999999900000"),
        ("444b1ae4d6e2ef50", "1e+21"),
        ("3eb0c6f7a0b5ed8c", "9.999999999999997e-7"),
        ("3eb0c6f7a0b5ed8d", "0.000001"),
        ("41b3de4355555553", "333333333.3333332"),
        ("41b3de4355555554", "333333333.33333325"),
        ("41b3de4355555555", "333333333.3333333"),
        ("41b3de4355555556", "333333333.3333334"),
        ("41b3de4355555557", "333333333.33333343"),
        ("becbf647612f3696", "-0.0000033333333333333333"),
        ("43143ff3c1cb0959", "1424953923781206.2"),
    ],
)
def test_rfc8785_number_examples(bits, expected):
    value = struct.unpack(">d", bytes.fromhex(bits))[0]
    assert format_number(value) == expected


def test_rejects_nan_and_infinity():
    for bad in (math.nan, math.inf, -math.inf):
        with pytest.raises(ValueError):
            canonical_bytes({"x": bad})


def test_rejects_non_string_keys():
    with pytest.raises(ValueError):
        canonical_bytes({1: 2})


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_numbers_round_trip(x):
    assert float(json.loads(format_number(x))) == x


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
        max_leaves=20,
    )
)
def test_documents_round_trip_and_are_stable(doc):
    data = canonical_bytes(doc)
    assert canonical_bytes(json.loads(data)) == data


def _es_number_reference(x: float) -> str:
    """ECMAScript Number::toString laid out from the shortest round-trip digits, position by position
    (ECMA-262 section 6.1.6.1.20), as a check on format_number's positional fast path."""
    from decimal import Decimal

    if x == 0:
        return "0"
    sign = "-" if x < 0 else ""
    _, digits_t, exp = Decimal(repr(abs(x))).as_tuple()
    digits = "".join(map(str, digits_t)).rstrip("0") or "0"
    exp += len(digits_t) - len(digits)
    k, n = len(digits), exp + len(digits)
    if k <= n <= 21:
        return sign + digits + "0" * (n - k)
    if 0 < n <= 21:
        return sign + digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return sign + "0." + "0" * (-n) + digits
    e = n - 1
    return sign + digits[0] + ("." + digits[1:] if k > 1 else "") + f"e{'+' if e >= 0 else '-'}{abs(e)}"


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_format_number_matches_the_positional_layout(x):
    assert format_number(x) == _es_number_reference(x)


@pytest.mark.parametrize("x", [1e-7, 1e-6, 1.5e-5, 1e-4, 0.1, 5.0, 1e15, 1e16, 123456789012345680.0, 1e21, 1e22, -2.5e-6])
def test_format_number_around_the_notation_switches(x):
    assert format_number(x) == _es_number_reference(x)


def test_keys_above_the_bmp_sort_by_utf16_code_units():
    # U+1F600 is the surrogate pair D83D DE00, which sorts before U+E000 in UTF-16 (not in code points)
    assert canonical_bytes({"\ue000": 1, "\U0001f600": 2, "a": 3}) == '{"a":3,"\U0001f600":2,"\ue000":1}'.encode()


# -- canonical_bytes_of_json: the C encoder with numbers respelt, the same bytes ------------------------
@pytest.mark.parametrize("name", NAMES)
def test_fast_path_on_the_jcs_vectors(name):
    doc = json.loads((DATA / "input" / name).read_text(encoding="utf-8"))
    assert canonical_bytes_of_json(doc) == (DATA / "output" / name).read_bytes().rstrip(b"\n")


# strings that look like JSON values, with the delimiters a number stands between
_NUMBERISH = st.lists(st.sampled_from(list(':,[]{}"0123456789.e+-x \\')), max_size=12).map("".join)
_NUMBERS = (st.floats(allow_nan=False, allow_infinity=False) | st.integers(-(2**70), 2**70)
            | st.sampled_from([0.0, -0.0, 1e16, 1e21, 1e-7, 5.0, -3.0, 2**53, 2**53 + 1, -(2**60)]))


@given(
    st.recursive(
        st.none() | st.booleans() | _NUMBERS | st.text(max_size=6) | _NUMBERISH,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4) | _NUMBERISH, inner, max_size=4),
        max_leaves=24,
    )
)
def test_fast_path_gives_the_same_bytes(doc):
    assert canonical_bytes_of_json(doc) == canonical_bytes(doc)


def test_fast_path_respells_numbers_outside_strings_only(monkeypatch):
    doc = {"a": "x:1.0,y", "b": [1.0, -0.0, 1e-7, 1e21, 1e16, 2**53 + 1, 123.0, 0.1, -1e-05, 12345678901234567],
           "c": {"z:5.0,": "[1e-05]"}, "d": [[1.0], [2.5e-300]], "sha": "sha256:" + "0" * 64}
    expected = canonical_bytes(doc)
    monkeypatch.setattr(canonical, "canonical_bytes", None)  # an ASCII document never needs the general way
    assert canonical_bytes_of_json(doc) == expected
    assert expected == (b'{"a":"x:1.0,y","b":[1,0,1e-7,1e+21,10000000000000000,9007199254740992,123,0.1,-0.00001,'
                        b'12345678901234568],"c":{"z:5.0,":"[1e-05]"},"d":[[1],[2.5e-300]],"sha":"sha256:' + b"0" * 64 + b'"}')


def test_fast_path_errors_as_the_general_way():
    for bad in ({"x": float("nan")}, {"x": 10**400}, {"x": object()}):
        with pytest.raises(ValueError):
            canonical_bytes_of_json(bad)


def test_fast_path_answers_as_the_general_way_near_the_recursion_limit():
    def nest(n, leaf):
        for _ in range(n):
            leaf = [leaf]
        return leaf

    def outcome(fn, d):
        try:
            return fn(d)
        except ValueError:
            return "ValueError"

    # the depth at which a recursive encoder gives up depends on its caller's stack; what must hold is that
    # the fast path never writes bytes for a document the general way refuses, nor other bytes
    for leaf in (1.0, "\u00e9"):
        for n in range(900, 1000, 7):
            d = nest(n, leaf)
            fast = outcome(canonical_bytes_of_json, d)
            assert fast == "ValueError" or fast == outcome(canonical_bytes, d), (leaf, n)
