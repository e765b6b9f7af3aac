"""The artifact URL signer: a URL is good for its one artifact, method and expiry, until then."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from blobs import UrlSigner
from mbwire import Forbidden

SECRET = "u" * 32
ids = st.from_regex(r"[A-Za-z0-9_-]{1,40}", fullmatch=True)
methods = st.sampled_from(["GET", "PUT"])


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def parts(url: str) -> tuple[str, str, str]:
    split = urlsplit(url)
    query = parse_qs(split.query)
    return split.path.split("/")[3], query["exp"][0], query["sig"][0]


@given(method=methods, artifact=ids)
def test_a_fresh_url_verifies(method: str, artifact: str) -> None:
    signer = UrlSigner(SECRET, clock=Clock(1_000_000))
    url, expires_at = signer.url("http://edge.test/", method, artifact, 300)
    assert url.startswith(f"http://edge.test/v1/artifacts/{artifact}/content?exp=1000300&sig=")
    assert expires_at == "1970-01-12T13:51:40Z"
    got, exp, sig = parts(url)
    assert got == artifact
    signer.verify(method, artifact, exp, sig)


@given(method=methods, other_method=methods, artifact=ids, other=ids,
       exp=st.integers(1_000_001, 10**11), other_exp=st.integers(1_000_001, 10**11),
       secret=st.text(min_size=16, max_size=40))
def test_any_change_breaks_it(method: str, other_method: str, artifact: str, other: str,
                              exp: int, other_exp: int, secret: str) -> None:
    """Changing the method, the artifact, the expiry or the key refuses the signature."""
    signer = UrlSigner(SECRET, clock=Clock(1_000_000))
    sig = signer.signature(method, artifact, exp)
    signer.verify(method, artifact, str(exp), sig)
    changed = (other_method, other, other_exp)
    if changed != (method, artifact, exp):
        with pytest.raises(Forbidden, match="does not match"):
            signer.verify(*changed[:2], str(changed[2]), sig)
    if secret != SECRET:
        with pytest.raises(Forbidden, match="does not match"):
            UrlSigner(secret, clock=Clock(1_000_000)).verify(method, artifact, str(exp), sig)


@given(sig=st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-",
                   min_size=16, max_size=128))
def test_a_made_up_signature_is_refused(sig: str) -> None:
    signer = UrlSigner(SECRET, clock=Clock(0))
    if sig != signer.signature("GET", "a", 100):
        with pytest.raises(Forbidden):
            signer.verify("GET", "a", "100", sig)


def test_expiry_honoured_with_the_injected_clock() -> None:
    clock = Clock(5000)
    signer = UrlSigner(SECRET, clock=clock)
    _, exp, sig = parts(signer.url("http://e", "GET", "art", 60)[0])
    clock.t = 5060  # the last second it is good for
    signer.verify("GET", "art", exp, sig)
    clock.t = 5061
    with pytest.raises(Forbidden, match="expired"):
        signer.verify("GET", "art", exp, sig)


@pytest.mark.parametrize(("exp", "sig"), [
    (None, "x" * 43), ("100", None), ("", "x" * 43), ("-5", "x" * 43), ("1e9", "x" * 43),
    ("1" * 13, "x" * 43),
])
def test_malformed_urls_are_refused(exp: str | None, sig: str | None) -> None:
    with pytest.raises(Forbidden, match="not a signed"):
        UrlSigner(SECRET).verify("GET", "a", exp, sig)


def test_short_secret_refused() -> None:
    with pytest.raises(ValueError):
        UrlSigner("short")


@pytest.mark.parametrize("exp", ["²", "③", "①", "1²", "5\n", " 5"])
def test_an_expiry_in_other_digits_is_refused_not_a_crash(exp: str) -> None:
    """``isdigit()`` takes "²" (then ``int()`` raised: a 500); only ASCII digits are an expiry."""
    with pytest.raises(Forbidden, match="not a signed"):
        UrlSigner(SECRET, clock=Clock(0)).verify("GET", "a", exp, "x" * 43)


def test_a_valid_url_with_its_expiry_in_arabic_indic_digits_is_refused() -> None:
    """``int("\u0665")`` is 5: the same expiry in another script must not pass as the signed one."""
    signer = UrlSigner(SECRET, clock=Clock(0))
    sig = signer.signature("GET", "a", 1_000_500)
    signer.verify("GET", "a", "1000500", sig)
    other_script = "1000500".translate({ord(d): 0x660 + int(d) for d in "0123456789"})
    with pytest.raises(Forbidden, match="not a signed"):
        signer.verify("GET", "a", other_script, sig)
