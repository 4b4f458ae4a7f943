"""Signing: did:key, DSSE (published vectors), in-toto Statements, keys on disk, tamper rejection."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import os
import stat
import threading
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from greenbench import signing
from greenbench.canonical import canonical_bytes
from greenbench.errors import GreenbenchError, VerificationError

DATA = Path(__file__).parent / "data"
DSSE = json.loads((DATA / "dsse" / "vectors.json").read_text())
RFC8032 = json.loads((DATA / "rfc8032" / "rfc8032-ed25519.json").read_text())
DIDKEY = json.loads((DATA / "didkey" / "vectors.json").read_text())

RESULT = {
    "schema": "greenbench.result/1",
    "profile": {"name": "llama-tiny", "digest": "sha256:00"},
    "backend": "cpu",
    "metrics": {"decode": {"j_per_token": 0.0123, "tokens_per_s": 41.5}},
    "energy": {"method": "estimate"},
}


def _key(seed_hex: str) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(bytes.fromhex(seed_hex))


KEY_A = _key(DSSE["keys"]["A"]["seed"])
KEY_B = _key(DSSE["keys"]["B"]["seed"])
DID_A = signing.did_key(KEY_A)
DID_B = signing.did_key(KEY_B)


# ----------------------------------------------------------------------------- published vectors


@pytest.mark.parametrize("vec", RFC8032["vectors"], ids=lambda v: v["name"])
def test_rfc8032_vectors(vec):
    key = _key(vec["secret_key"])
    msg = bytes.fromhex(vec["message"])
    sig = bytes.fromhex(vec["signature"])
    assert signing._raw_public(key).hex() == vec["public_key"]
    assert key.sign(msg) == sig
    public = signing.public_key_from_did(signing.did_key(key))
    assert signing._ed25519_ok(public, sig, msg)
    assert not signing._ed25519_ok(public, sig, msg + b"x")


@pytest.mark.parametrize("vec", DSSE["vectors"], ids=lambda v: v["id"])
def test_dsse_vectors(vec):
    keys = {
        k: Ed25519PublicKey.from_public_bytes(bytes.fromhex(DSSE["keys"][k]["public"])) for k in vec["trustedKeys"]
    }
    env = vec["envelope"]
    payload = signing.b64decode(env["payload"])
    if vec["id"] != "payload-type-swapped":  # that vector's PAE is of the type that was really signed
        assert signing.pae(env["payloadType"], payload).hex() == vec["pae"]
    else:
        assert signing.pae(signing.PAYLOAD_TYPE, payload).hex() == vec["pae"]
    args = (env, keys, vec["threshold"], vec["supportedPayloadTypes"])
    if vec["expect"] == "accept":
        got_payload, signers = signing.dsse_verify(*args)
        assert got_payload == payload
        assert len(set(signers)) >= vec["threshold"]
    else:
        with pytest.raises(VerificationError):
            signing.dsse_verify(*args)


def test_pae_spec_example():
    # DSSE protocol.md: PAE("http://example.com/HelloWorld", "hello world")
    assert signing.pae("http://example.com/HelloWorld", b"hello world") == (
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )


def test_pae_counts_utf8_bytes_not_characters():
    assert signing.pae("ä", b"") == b"DSSEv1 2 \xc3\xa4 0 "


@pytest.mark.parametrize("vec", DIDKEY["vectors"], ids=lambda v: v["did"][-8:])
def test_did_key_vectors(vec):
    if "public_key_base58" in vec:
        raw = signing._b58decode(vec["public_key_base58"])
    else:
        raw = base64.urlsafe_b64decode(vec["public_key_base64url"] + "=")
        assert signing._raw_public(_key(vec["seed_hex"])) == raw
    assert signing.did_key(raw) == vec["did"]
    assert signing._raw_public(signing.public_key_from_did(vec["did"])) == raw


# ----------------------------------------------------------------------------- strict Ed25519

SPECCHECK = json.loads((DATA / "ed25519-speccheck" / "cases.json").read_text())
#: Cases of "Taming the many EdDSAs" that libsodium's crypto_sign_verify_detached accepts (the
#: repository's results table): only case 3, mixed-order A and R passing the cofactorless equation.
LIBSODIUM_ACCEPTS = {3}


@pytest.mark.parametrize("case", range(len(SPECCHECK)))
def test_speccheck_cases_as_libsodium(case):
    vec = SPECCHECK[case]
    public, sig, msg = (bytes.fromhex(vec[k]) for k in ("pub_key", "signature", "message"))
    assert signing.verify_signature(public, sig, msg) == (case in LIBSODIUM_ACCEPTS)
    if case not in LIBSODIUM_ACCEPTS:
        # every refusal but the cofactored-only cases (4, 5) is decided before any curve arithmetic
        assert (signing.strict_rejection(public, sig) is None) == (case in (4, 5))


def test_speccheck_has_twelve_cases():
    assert len(SPECCHECK) == 12


def _edwards():
    """Pure-Python edwards25519 (RFC 8032 section 5.1): the point addition, for deriving constants."""
    p = 2**255 - 19
    d = -121665 * pow(121666, p - 2, p) % p

    def add(a, b):
        (x1, y1), (x2, y2) = a, b
        t = d * x1 * x2 * y1 * y2 % p
        return ((x1 * y2 + x2 * y1) * pow(1 + t, p - 2, p) % p, (y1 * y2 + x1 * x2) * pow(1 - t, p - 2, p) % p)

    def x_of(y):  # RFC 8032 5.1.3 step 2-3 (either root)
        u, v = (y * y - 1) % p, (d * y * y + 1) % p
        x = u * pow(v, 3, p) * pow(u * pow(v, 7, p), (p - 5) // 8, p) % p
        if v * x * x % p == (p - u) % p:
            x = x * pow(2, (p - 1) // 4, p) % p
        return x if v * x * x % p == u % p else None

    return p, add, x_of


def test_small_order_blacklist_is_the_8_torsion():
    p, add, x_of = _edwards()
    canonical = {y for y in signing.SMALL_ORDER_Y if y < p}
    assert signing.SMALL_ORDER_Y - canonical == {p, p + 1}  # non-canonical spellings of 0 and 1
    for y in canonical:
        x = x_of(y)
        assert x is not None, y
        point, orders = (x, y), []
        acc = point
        for n in range(1, 9):
            if acc == (0, 1):
                orders.append(n)
            acc = add(acc, point)
        assert orders and 8 % orders[0] == 0, (y, orders)  # its order divides 8
    assert len(canonical) == 5  # y of: identity, order 2, order 4 (both), order 8 (two y, each +-x)


def _identity_envelope(doc):
    """The forgery of the issue: the did:key of the identity point, signature identity || zeros."""
    identity = (1).to_bytes(32, "little")
    payload = canonical_bytes(signing.make_statement(doc, "r.json"))
    return {
        "payload": base64.b64encode(payload).decode(),
        "payloadType": signing.PAYLOAD_TYPE,
        "signatures": [{"keyid": signing.did_key(identity), "sig": base64.b64encode(identity + bytes(32)).decode()}],
    }


def test_identity_key_forgery_is_refused():
    identity = (1).to_bytes(32, "little")
    # OpenSSL alone accepts it for any message: that is what the strict checks are for
    public = Ed25519PublicKey.from_public_bytes(identity)
    public.verify(identity + bytes(32), b"any message at all")
    assert not signing.verify_signature(identity, identity + bytes(32), b"any message at all")
    with pytest.raises(VerificationError, match="small order"):
        signing.verify_envelope(_identity_envelope(RESULT))
    with pytest.raises(GreenbenchError, match="small order"):
        signing.public_key_from_did(signing.did_key(identity))


def test_non_canonical_s_is_refused():
    msg = b"m"
    sig = KEY_A.sign(msg)
    raw = signing._raw_public(KEY_A)
    assert signing.verify_signature(raw, sig, msg)
    s = int.from_bytes(sig[32:], "little") + signing._L  # the same S, not reduced
    assert s < 2**256
    assert not signing.verify_signature(raw, sig[:32] + s.to_bytes(32, "little"), msg)


# ----------------------------------------------------------------------------- did:key and base64


def test_did_key_shape_and_round_trip():
    for key in (KEY_A, KEY_B, Ed25519PrivateKey.generate()):
        did = signing.did_key(key)
        assert did.startswith("did:key:z6Mk")
        assert signing.did_key(signing.public_key_from_did(did)) == did
        assert signing.did_key(key.public_key()) == did


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "did:web:example.com",
        "did:key:6MkmjY8GnV5i9YTDtPETC2uUAW6ejw3nk5mXF5yci5ab7th",  # no multibase prefix
        "did:key:z6MkmjY8GnV5i9YTDtPETC2uUAW6ejw3nk5mXF5yci5ab7t0",  # '0' is not base58
        "did:key:z6MkmjY8GnV5i9YTDtPETC2uUAW6ejw3nk5mXF5yci5ab7",  # truncated
        "did:key:z6LShLeXRTzevtwcfehaGEzCMyL3bNsAeKCwcqwJxyCo63yE",  # x25519-pub, not ed25519
        "did:key:z1" + DID_A[len("did:key:z") :],  # non-canonical leading zero byte
        DID_A + "#" + DID_A[len("did:key:") :],  # fragments are not signer ids
    ],
)
def test_public_key_from_did_rejects(bad):
    with pytest.raises(GreenbenchError):
        signing.public_key_from_did(bad)


def test_b64decode_accepts_both_alphabets_and_no_padding():
    data = bytes(range(256))
    std = base64.b64encode(data).decode()
    url = base64.urlsafe_b64encode(data).decode()
    assert signing.b64decode(std) == data
    assert signing.b64decode(url) == data
    assert signing.b64decode(url.rstrip("=")) == data
    assert signing.b64decode("") == b""


@pytest.mark.parametrize("bad", ["a", "ab=c", "a+_b", "ab$=", "YQ===", "YR==", 5, None])
def test_b64decode_rejects(bad):
    with pytest.raises(ValueError):
        signing.b64decode(bad)


# ----------------------------------------------------------------------------- greenbench envelopes


def test_sign_and_verify_round_trip():
    env = signing.sign_result(RESULT, KEY_A, "r.json")
    assert env["payloadType"] == "application/vnd.in-toto+json"
    assert env["signatures"][0]["keyid"] == DID_A
    payload = base64.b64decode(env["payload"])
    statement = json.loads(payload)
    assert payload == canonical_bytes(statement)  # payload bytes are the JCS bytes of the statement
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    assert statement["predicateType"] == signing.PREDICATE_TYPE
    assert statement["predicate"] == RESULT
    digest = hashlib.sha256(canonical_bytes(RESULT)).hexdigest()
    assert statement["subject"] == [{"name": "r.json", "digest": {"sha256": digest}}]

    v = signing.verify_envelope(env)
    assert v.signer == DID_A and v.result == RESULT and v.sha256 == digest and v.subject_name == "r.json"
    assert signing.verify_envelope(env, {DID_A}).signer == DID_A
    with pytest.raises(VerificationError, match="trust list"):
        signing.verify_envelope(env, {DID_B})


def test_signing_is_deterministic():
    assert signing.sign_result(RESULT, KEY_A, "r.json") == signing.sign_result(dict(RESULT), KEY_A, "r.json")


def test_second_signer_and_trust():
    env = signing.sign_result(RESULT, KEY_A, "r.json")
    sig_b = KEY_B.sign(signing.pae(env["payloadType"], base64.b64decode(env["payload"])))
    env["signatures"].append({"keyid": DID_B, "sig": base64.b64encode(sig_b).decode()})
    v = signing.verify_envelope(env, {DID_B})
    assert v.signer == DID_B and v.signers == (DID_A, DID_B)


def _resign(statement_bytes: bytes, key=KEY_A, ptype=signing.PAYLOAD_TYPE) -> dict:
    sig = key.sign(signing.pae(ptype, statement_bytes))
    return {
        "payload": base64.b64encode(statement_bytes).decode(),
        "payloadType": ptype,
        "signatures": [{"keyid": signing.did_key(key), "sig": base64.b64encode(sig).decode()}],
    }


def test_validly_signed_but_wrong_digest_is_rejected():
    st_ = signing.make_statement(RESULT, "r.json")
    st_["predicate"] = dict(RESULT, backend="cuda")  # predicate changed, subject digest kept
    with pytest.raises(VerificationError, match="does not match"):
        signing.verify_envelope(_resign(canonical_bytes(st_)))


@pytest.mark.parametrize(
    "mutate",
    [
        lambda s: s.update(_type="https://in-toto.io/Statement/v0.1"),
        lambda s: s.update(predicateType="https://example.com/other"),
        lambda s: s.update(predicate=[1, 2]),
        lambda s: s.update(subject=[]),
        lambda s: s.update(subject=s["subject"] * 2),
        lambda s: s["subject"][0].update(digest={"sha512": "00"}),
    ],
)
def test_validly_signed_but_bad_statement_is_rejected(mutate):
    st_ = signing.make_statement(RESULT, "r.json")
    mutate(st_)
    with pytest.raises(VerificationError):
        signing.verify_envelope(_resign(canonical_bytes(st_)))


@pytest.mark.parametrize(
    "raw", [b"not json", b'{"_type":"a","_type":"b"}', b"\xff\xfe", b"[NaN]", b'"just a string"']
)
def test_validly_signed_garbage_payload_is_rejected(raw):
    with pytest.raises(VerificationError):
        signing.verify_envelope(_resign(raw))


def test_other_payload_type_even_if_signed_is_rejected():
    payload = canonical_bytes(signing.make_statement(RESULT, "r.json"))
    with pytest.raises(VerificationError, match="payloadType"):
        signing.verify_envelope(_resign(payload, ptype="application/json"))


@pytest.mark.parametrize(
    "field,value",
    [
        ("payloadType", "application/vnd.in-toto+json "),
        ("payloadType", "application/json"),
        ("keyid", None),  # set below to the other signer
        ("sig", None),  # set below to another valid signature
        ("payload", None),  # set below to another statement, same signer can't have signed it
    ],
)
def test_each_field_tamper_is_rejected(field, value):
    env = signing.sign_result(RESULT, KEY_A, "r.json")
    other = signing.sign_result(dict(RESULT, backend="cuda"), KEY_A, "r.json")
    if field == "payloadType":
        env["payloadType"] = value
    elif field == "keyid":
        env["signatures"][0]["keyid"] = DID_B
    elif field == "sig":
        env["signatures"][0]["sig"] = other["signatures"][0]["sig"]
    else:
        env["payload"] = other["payload"]
    with pytest.raises(VerificationError):
        signing.verify_envelope(env)


@pytest.mark.parametrize("doc", [[], "x", {"payload": "", "payloadType": ""}, {"signatures": []}])
def test_not_an_envelope_is_exit_2(doc):
    with pytest.raises(GreenbenchError) as info:
        signing.verify_envelope(doc)
    assert info.value.exit_code == 2


# ----------------------------------------------------------------------------- hypothesis mutations

_BASE = signing.sign_result(RESULT, KEY_A, "r.json")
_FIELDS = ("payload", "payloadType", "keyid", "sig")


def _get(env, field):
    return env["signatures"][0][field] if field in ("keyid", "sig") else env[field]


def _set(env, field, value):
    if field in ("keyid", "sig"):
        env["signatures"][0][field] = value
    else:
        env[field] = value


def _same_bytes(field: str, original: str, mutated) -> bool:
    """Two spellings of the same base64 bytes are the same envelope, not a change."""
    if field not in ("payload", "sig") or not isinstance(mutated, str):
        return False
    try:
        return signing.b64decode(mutated) == signing.b64decode(original)
    except ValueError:
        return False


_NON_STRINGS = st.one_of(
    st.none(),
    st.integers(),
    st.booleans(),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


def _mutations():
    text = st.text(max_size=80)
    return st.one_of(
        st.tuples(st.just("replace"), text),
        st.tuples(st.just("flip"), st.integers(0, 10_000), st.integers(1, 127)),
        st.tuples(st.just("insert"), st.integers(0, 10_000), st.characters()),
        st.tuples(st.just("delete"), st.integers(0, 10_000)),
        st.tuples(st.just("truncate"), st.integers(0, 10_000)),
        st.tuples(st.just("type"), _NON_STRINGS),
    )


def _apply(value: str, m):
    kind = m[0]
    if kind in ("replace", "type"):
        return m[1]
    if not value:
        return "x" if kind in ("flip", "insert") else value + "\0"
    i = m[1] % len(value)
    if kind == "flip":
        return value[:i] + chr((ord(value[i]) ^ m[2]) or 1) + value[i + 1 :]
    if kind == "insert":
        return value[:i] + m[2] + value[i:]
    if kind == "delete":
        return value[:i] + value[i + 1 :]
    return value[:i]  # truncate


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(field=st.sampled_from(_FIELDS), mutation=_mutations())
def test_hypothesis_field_mutations_are_all_rejected(field, mutation):
    env = copy.deepcopy(_BASE)
    original = _get(env, field)
    mutated = _apply(original, mutation)
    if mutated == original or _same_bytes(field, original, mutated):
        return  # not a change
    _set(env, field, mutated)
    with pytest.raises(VerificationError):
        signing.verify_envelope(env)


@settings(max_examples=300, deadline=None)
@given(field=st.sampled_from(("payload", "sig")), pos=st.integers(0, 10_000), bit=st.integers(0, 7))
def test_hypothesis_bit_flips_in_decoded_bytes_are_all_rejected(field, pos, bit):
    env = copy.deepcopy(_BASE)
    raw = bytearray(signing.b64decode(_get(env, field)))
    raw[pos % len(raw)] ^= 1 << bit
    _set(env, field, base64.b64encode(bytes(raw)).decode())
    with pytest.raises(VerificationError):
        signing.verify_envelope(env)


@settings(max_examples=150, deadline=None)
@given(
    doc=st.dictionaries(
        st.text(max_size=8),
        st.recursive(
            st.none()
            | st.booleans()
            | st.integers(-(2**53), 2**53)
            | st.floats(allow_nan=False, allow_infinity=False)
            | st.text(max_size=10),
            lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3),
            max_leaves=10,
        ),
        max_size=5,
    )
)
def test_hypothesis_any_document_round_trips(doc):
    v = signing.verify_envelope(signing.sign_result(doc, KEY_B, "doc.json"), {DID_B})
    assert v.result == json.loads(canonical_bytes(doc))


# ----------------------------------------------------------------------------- keys on disk


def test_init_key_creates_0600_once(tmp_path):
    old = os.umask(0)  # even with a permissive umask the key is never group/world readable
    try:
        key, path, created = signing.init_key(tmp_path / "keys")
    finally:
        os.umask(old)
    assert created and path == tmp_path / "keys" / "ed25519.pem"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    key2, _, created2 = signing.init_key(tmp_path / "keys")
    assert not created2 and signing.did_key(key2) == signing.did_key(key)
    assert signing.did_key(signing.load_or_create_key(tmp_path / "keys")) == signing.did_key(key)
    assert [p.name for p in path.parent.iterdir()] == ["ed25519.pem"]  # no temp files left


def test_concurrent_init_agrees_on_one_key(tmp_path):
    dids, errors = [], []

    def worker():
        try:
            dids.append(signing.did_key(signing.init_key(tmp_path)[0]))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(set(dids)) == 1 and len(dids) == 8


def test_load_key_errors(tmp_path):
    with pytest.raises(GreenbenchError, match="keys init"):
        signing.load_key(tmp_path)
    p = tmp_path / signing.KEY_FILE
    p.write_bytes(b"garbage")
    p.chmod(0o600)
    with pytest.raises(GreenbenchError, match="not an unencrypted PEM"):
        signing.load_key(tmp_path)
    p.unlink()
    signing.init_key(tmp_path)
    p.chmod(0o644)
    with pytest.raises(GreenbenchError, match="chmod 600"):
        signing.load_key(tmp_path)


def test_key_dir_follows_config_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("GREENBENCH_CONFIG_DIR", str(tmp_path / "cfg"))
    assert signing.key_dir() == tmp_path / "cfg" / "keys"


def test_trust_file(tmp_path):
    f = tmp_path / "trust.txt"
    f.write_text(f"# our CI signer\n{DID_A}  # ci\n\n   {DID_B}\n")
    assert signing.read_trust_file(f) == {DID_A, DID_B}
    f.write_text(f"{DID_A}\nnot-a-did\n")
    with pytest.raises(GreenbenchError, match=r"trust.txt:2"):
        signing.read_trust_file(f)
    f.write_text("# nothing\n")
    with pytest.raises(GreenbenchError, match="no did:key"):
        signing.read_trust_file(f)


def test_envelope_path_for():
    assert signing.envelope_path_for("results/r.json") == Path("results/r.dsse.json")
    assert signing.envelope_path_for("r") == Path("r.dsse.json")


def test_envelope_bytes_are_the_canonical_json_and_the_dag_json_block():
    from greenbench.publish import envelope_block

    for key in (KEY_A, KEY_B):
        env = signing.sign_result(RESULT, key, "r.json")
        data = signing.envelope_bytes(env)
        assert data == canonical_bytes(env) == envelope_block(env)[1]
    odd = dict(env, signatures=[dict(env["signatures"][0], extra="x")])
    with pytest.raises(ValueError):
        signing.envelope_bytes(odd)


def test_statement_from_canonical_bytes_is_the_same_statement():
    body = canonical_bytes(RESULT)
    assert signing.statement_bytes(RESULT, "r.json", body) == signing.statement_bytes(RESULT, "r.json")
