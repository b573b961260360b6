"""The operator's JSON codec (cpworker.jsoncodec): the standard library's answers, faster, and
kopf's watch streams decoded with it."""

from __future__ import annotations

import inspect
import json
import math

import kopf
import pytest
from kopf._cogs.clients import api

from cpworker import handlers, jsoncodec
from tests.unit.operator import samples


def test_it_reads_what_json_reads() -> None:
    body = {"kind": "Job", "metadata": {"name": "cpw-1", "labels": {"a": "ü"}}, "n": [1, 2.5]}
    for text in (json.dumps(body), json.dumps(body).encode(), json.dumps(samples.raw_job())):
        assert jsoncodec.loads(text) == json.loads(text)


def test_what_only_the_standard_library_reads_is_still_read() -> None:
    """orjson refuses NaN, which json reads: no object becomes unreadable."""
    value = jsoncodec.loads(b'{"ratio": NaN}')["ratio"]
    assert math.isnan(value)


def test_an_integer_beyond_64_bits_reads_as_the_api_server_stored_it() -> None:
    """The API server keeps a JSON number as int64 when it fits and float64 otherwise
    (apimachinery's util/json), so a larger integer never comes back as one: orjson's float
    is the same value."""
    assert jsoncodec.loads(b'{"big": 123456789012345678901234567890}') == {
        "big": float(123456789012345678901234567890)
    }


def test_what_no_decoder_reads_fails_as_before() -> None:
    with pytest.raises(json.JSONDecodeError):
        jsoncodec.loads(b'{"cut": ')


def test_a_request_body_is_compact_json() -> None:
    body = {"metadata": {"annotations": {"cpworker.io/phase": "running"}}, "spec": {"n": 1}}
    assert json.loads(jsoncodec.dumps(body)) == body


def test_kopfs_watch_streams_decode_with_it() -> None:
    """Fails when a kopf release no longer decodes its streams with its module's json.loads:
    then `use_in_kopf` would change nothing, and this is where to look."""
    assert "json.loads(" in inspect.getsource(api.stream)
    jsoncodec.use_in_kopf()
    assert jsoncodec.used_by_kopf()
    assert api.json.loads(b'{"type": "ADDED"}') == {"type": "ADDED"}  # type: ignore[attr-defined]


def test_the_operators_kopf_settings_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(api, "json", json)  # as kopf ships it
    assert not jsoncodec.used_by_kopf()
    handlers.kopf_settings(kopf.OperatorSettings(), samples.settings())
    assert jsoncodec.used_by_kopf()
