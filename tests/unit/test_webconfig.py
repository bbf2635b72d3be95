"""The web config file's format (exporter-toolkit's), parsed and checked without TLS files.

Loading certificates and serving requests is tested in tests/test_security.py.
"""

from __future__ import annotations

import ssl
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from exporter.webconfig import TLS_VERSIONS, WebConfigError
from exporter.webconfig_file import WebConfigFile, parse_go_duration, parse_web_config

HASH = "$2b$04$" + "a" * 53
TLS = {"cert_file": "server.crt", "key_file": "server.key"}


def parse(text: str) -> WebConfigFile:
    return parse_web_config(yaml.safe_load(text))


@pytest.mark.parametrize(
    "text", ["", "# nothing\n", "{}", "tls_server_config:\nbasic_auth_users:\n"]
)
def test_an_empty_file_is_plain_http_without_auth(text: str) -> None:
    config = parse(text)
    assert not config.tls_server_config.enabled
    assert config.basic_auth_users == {}
    assert not config.rate_limit.enabled


def test_a_full_file() -> None:
    config = parse(
        f"""\
tls_server_config:
  cert_file: server.crt
  key_file: server.key
  client_auth_type: RequireAndVerifyClientCert
  client_ca_file: ca.crt
  min_version: TLS13
http_server_config:
  http2: false
basic_auth_users:
  prometheus: '{HASH}'
rate_limit:
  interval: 250ms
  burst: 20
"""
    )
    tls = config.tls_server_config
    assert tls.enabled
    assert tls.verify_mode == ssl.CERT_REQUIRED
    assert TLS_VERSIONS[tls.min_version] == ssl.TLSVersion.TLSv1_3
    assert config.basic_auth_users == {"prometheus": HASH}
    assert (config.rate_limit.interval, config.rate_limit.burst) == (0.25, 20)
    assert config.rate_limit.enabled


@pytest.mark.parametrize(
    ("auth_type", "ca", "mode"),
    [
        ("", "", ssl.CERT_NONE),
        ("", "ca.crt", ssl.CERT_REQUIRED),  # exporter-toolkit: a CA alone requires certs
        ("NoClientCert", "", ssl.CERT_NONE),
        ("VerifyClientCertIfGiven", "ca.crt", ssl.CERT_OPTIONAL),
        ("RequireAndVerifyClientCert", "ca.crt", ssl.CERT_REQUIRED),
    ],
)
def test_client_certificate_modes(auth_type: str, ca: str, mode: ssl.VerifyMode) -> None:
    tls: dict[str, Any] = dict(TLS)
    if auth_type:
        tls["client_auth_type"] = auth_type
    if ca:
        tls["client_ca_file"] = ca
    config = parse_web_config({"tls_server_config": tls})
    assert config.tls_server_config.verify_mode == mode


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ("a string", "expected a mapping"),
        ([1, 2], "expected a mapping"),
        ({"tls_server_config": {"cert_file": "a"}}, "key_file is missing"),
        ({"tls_server_config": {"key_file": "a"}}, "cert_file is missing"),
        ({"tls_server_config": {"client_ca_file": "ca"}}, "client certificates need cert_file"),
        (
            {"tls_server_config": {"client_auth_type": "RequireAndVerifyClientCert"}},
            "client certificates need cert_file",
        ),
        (
            {"tls_server_config": {**TLS, "client_auth_type": "VerifyClientCertIfGiven"}},
            "needs client_ca_file",
        ),
        (
            {"tls_server_config": {**TLS, "client_auth_type": "RequestClientCert"}},
            "without verifying them",
        ),
        (
            {
                "tls_server_config": {
                    **TLS,
                    "client_auth_type": "NoClientCert",
                    "client_ca_file": "c",
                }
            },
            "client_ca_file is set but client_auth_type is NoClientCert",
        ),
        (
            {"tls_server_config": {**TLS, "client_auth_type": "Sometimes"}},
            "tls_server_config.client_auth_type",
        ),
        (
            {"tls_server_config": {**TLS, "min_version": "TLS13", "max_version": "TLS12"}},
            "max_version TLS12 is below min_version",
        ),
        ({"tls_server_config": {**TLS, "min_version": "TLS9"}}, "tls_server_config.min_version"),
        ({"tls_server_config": {**TLS, "cipher_suites": []}}, "cipher_suites is not supported"),
        (
            {"tls_server_config": {**TLS, "curve_preferences": []}},
            "curve_preferences is not supported",
        ),
        ({"tls_server_config": {**TLS, "colour": "red"}}, "tls_server_config.colour: unknown key"),
        ({"http_server_config": {"headers": {"X": "y"}}}, "headers is not supported"),
        ({"http_server_config": {"http3": True}}, "http_server_config.http3: unknown key"),
        ({"basic_auth_users": {"prometheus": "plain"}}, "not a bcrypt hash"),
        ({"basic_auth_users": {"prometheus": "$2$04$" + "a" * 53}}, "not a bcrypt hash"),
        ({"basic_auth_users": {"prometheus": "$2b$04$" + "a" * 52}}, "not a bcrypt hash"),
        ({"basic_auth_users": {"": HASH}}, "is empty or has a colon"),
        ({"basic_auth_users": {"a:b": HASH}}, "is empty or has a colon"),
        ({"basic_auth_users": ["prometheus"]}, "basic_auth_users"),
        ({"basic_auth_user": {"prometheus": HASH}}, "basic_auth_user: unknown key"),
        ({"rate_limit": {"interval": "1s", "burst": 0}}, "burst 0 would refuse every request"),
        ({"rate_limit": {"interval": "1s"}}, "burst 0 would refuse every request"),
        ({"rate_limit": {"interval": "1s", "burst": -1}}, "burst must not be negative"),
        ({"rate_limit": {"interval": 10, "burst": 5}}, "rate_limit.interval: expected a duration"),
        ({"rate_limit": {"interval": "1 second", "burst": 5}}, "is not a duration such as 1s"),
        (
            {"rate_limit": {"interval": "1s", "burst": 1, "per_client": True}},
            "rate_limit.per_client",
        ),
    ],
)
def test_bad_files_are_one_line_naming_the_key(document: Any, expected: str) -> None:
    with pytest.raises(WebConfigError) as caught:
        parse_web_config(document)
    message = str(caught.value)
    assert expected in message
    assert "\n" not in message
    assert caught.value.path is None  # the loader adds the file's name


@pytest.mark.parametrize("user_hash", ["$2a$10$", "$2b$12$", "$2y$04$", "$2y$31$"])
def test_bcrypt_prefixes_that_are_accepted(user_hash: str) -> None:
    hashed = user_hash + "./" + "A9" * 25 + "z"
    config = parse_web_config({"basic_auth_users": {"prometheus": hashed}})
    assert config.basic_auth_users == {"prometheus": hashed}


@pytest.mark.parametrize("section", ["tls_server_config", "http_server_config", "rate_limit"])
def test_a_null_section_is_an_empty_one(section: str) -> None:
    config = parse_web_config({section: None})
    assert config == WebConfigFile()


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1s", 1.0),
        ("250ms", 0.25),
        ("1m30s", 90.0),
        ("1.5h", 5400.0),
        ("1h1m1s", 3661.0),
        ("500us", 0.0005),
        ("500µs", 0.0005),
        ("10ns", 1e-8),
        (".5s", 0.5),
        ("2m", 120.0),
        ("0", 0.0),
        (" 3s ", 3.0),
    ],
)
def test_go_durations(text: str, seconds: float) -> None:
    assert parse_go_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "bad", ["1", "1x", "s", "1s2", "-1s", "1 s", "", "1d", 10, 1.5, True, None]
)
def test_not_go_durations(bad: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_go_duration(bad)


@given(
    hours=st.integers(0, 99),
    minutes=st.integers(0, 59),
    seconds=st.integers(0, 59),
    millis=st.integers(0, 999),
)
def test_composed_durations_add_up(hours: int, minutes: int, seconds: int, millis: int) -> None:
    text = f"{hours}h{minutes}m{seconds}s{millis}ms"
    expected = hours * 3600 + minutes * 60 + seconds + millis / 1000
    assert parse_go_duration(text) == pytest.approx(expected)
