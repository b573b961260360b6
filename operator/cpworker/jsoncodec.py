"""How the operator reads and writes the Kubernetes API's JSON: orjson, for its own client and
for kopf's watch streams.

Why: in a burst of 1,000 jobs over 50 workers (`cpworker bench --quick --jobs 1000 --workers
50`, py-spy of the operator) a quarter of the operator's samples were `json.loads` of kopf's
watch streams: every Job and Pod event carries the whole object (about 8.5 KB), and a job
causes about 17 of them. orjson decodes such an event in about 17 µs, against 35 µs for the
standard library's decoder (the same machine), and allocates less for the collector to scan.

kopf has no setting for its decoder: it calls `json.loads` of its `kopf._cogs.clients.api`
module for every line of a watch stream, so `use_in_kopf` replaces that module's `json` with
this codec. A test (tests/unit/operator/test_jsoncodec.py) fails when a kopf release moves the
call, so an upgrade cannot silently lose it.
"""

from __future__ import annotations

import json
import types
from typing import Any

import orjson


def loads(data: bytes | bytearray | memoryview | str) -> Any:
    """JSON text -> Python values, as `json.loads` gives them.

    orjson refuses a few documents the standard library reads (NaN and Infinity, lone
    surrogates): those are read by `json` instead, so no object becomes unreadable. What
    neither reads raises `json.JSONDecodeError`, as before. An integer beyond 64 bits reads as
    a float, which is what the API server itself keeps of it (apimachinery's util/json turns
    a number into int64 when it fits, else float64).
    """
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        text = data if isinstance(data, str) else bytes(data).decode("utf-8", "surrogatepass")
        return json.loads(text)


def dumps(value: Any) -> bytes:
    """Python values -> compact UTF-8 JSON (a request body)."""
    return orjson.dumps(value)


def use_in_kopf() -> None:
    """Let kopf's watch streams decode with `loads` (the module's only use of `json`; the
    rest of the `json` interface stays, should a later kopf use it there)."""
    from kopf._cogs.clients import api  # noqa: PLC0415 - kopf's internals, only here

    api.json = types.SimpleNamespace(  # type: ignore[attr-defined,assignment]
        loads=loads, dumps=json.dumps, JSONDecodeError=json.JSONDecodeError
    )


def used_by_kopf() -> bool:
    """Whether kopf's API module decodes with this codec."""
    from kopf._cogs.clients import api  # noqa: PLC0415

    return getattr(api.json, "loads", None) is loads  # type: ignore[attr-defined]
