"""Minimal decoding of Kubernetes protobuf request bodies (`application/vnd.kubernetes.protobuf`)
for the kinds clients send that way to us: Secret, ConfigMap, Namespace, DeleteOptions,
(Self)SubjectAccessReview.

The body is the 4-byte magic `k8s\\0` and a `runtime.Unknown` envelope
{typeMeta{apiVersion, kind}, raw, contentEncoding, contentType}; `raw` holds the message.
Field numbers are those of the generated.proto files of k8s.io/api and apimachinery.
Answers are always JSON; other kinds are refused (415).
"""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Callable, Iterator
from typing import Any

MAGIC = b"k8s\x00"
Obj = dict[str, Any]


class ProtobufError(ValueError):
    pass


def _varint(data: bytes, position: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if position >= len(data):
            raise ProtobufError("truncated varint")
        byte = data[position]
        position += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, position
        shift += 7


def fields(data: bytes) -> Iterator[tuple[int, int, Any]]:
    """(field number, wire type, value): ints for varints, bytes for length-delimited."""
    position = 0
    while position < len(data):
        key, position = _varint(data, position)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, position = _varint(data, position)
            yield number, wire, value
        elif wire == 2:
            length, position = _varint(data, position)
            if position + length > len(data):
                raise ProtobufError("truncated field")
            yield number, wire, data[position : position + length]
            position += length
        elif wire == 1:
            yield number, wire, int.from_bytes(data[position : position + 8], "little")
            position += 8
        elif wire == 5:
            yield number, wire, int.from_bytes(data[position : position + 4], "little")
            position += 4
        else:
            raise ProtobufError(f"unsupported wire type {wire}")


def _text(value: bytes) -> str:
    return value.decode("utf-8")


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _map_entry(data: bytes) -> tuple[str, bytes]:
    key, value = "", b""
    for number, _, item in fields(data):
        if number == 1:
            key = _text(item)
        elif number == 2:
            value = item
    return key, value


def _time(data: bytes) -> str:
    seconds = 0
    for number, _, item in fields(data):
        if number == 1:
            seconds = _signed(item)
    stamp = dt.datetime.fromtimestamp(seconds, dt.UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%SZ")


def _owner_reference(data: bytes) -> Obj:
    names = {1: "kind", 3: "name", 4: "uid", 5: "apiVersion"}
    flags = {6: "controller", 7: "blockOwnerDeletion"}
    result: Obj = {}
    for number, _, item in fields(data):
        if number in names:
            result[names[number]] = _text(item)
        elif number in flags:
            result[flags[number]] = bool(item)
    return result


def object_meta(data: bytes) -> Obj:
    strings = {1: "name", 2: "generateName", 3: "namespace", 5: "uid", 6: "resourceVersion"}
    meta: Obj = {}
    for number, _, item in fields(data):
        if number in strings:
            meta[strings[number]] = _text(item)
        elif number == 7:
            meta["generation"] = _signed(item)
        elif number == 8:
            meta["creationTimestamp"] = _time(item)
        elif number in {11, 12}:
            key, value = _map_entry(item)
            meta.setdefault("labels" if number == 11 else "annotations", {})[key] = _text(value)
        elif number == 13:
            meta.setdefault("ownerReferences", []).append(_owner_reference(item))
        elif number == 14:
            meta.setdefault("finalizers", []).append(_text(item))
    return meta


def _secret(data: bytes) -> Obj:
    obj: Obj = {"metadata": {}}
    for number, _, item in fields(data):
        if number == 1:
            obj["metadata"] = object_meta(item)
        elif number == 2:
            key, value = _map_entry(item)
            obj.setdefault("data", {})[key] = base64.b64encode(value).decode()
        elif number == 3:
            obj["type"] = _text(item)
        elif number == 4:
            key, value = _map_entry(item)
            obj.setdefault("stringData", {})[key] = _text(value)
        elif number == 5:
            obj["immutable"] = bool(item)
    return obj


def _config_map(data: bytes) -> Obj:
    obj: Obj = {"metadata": {}}
    for number, _, item in fields(data):
        if number == 1:
            obj["metadata"] = object_meta(item)
        elif number == 2:
            key, value = _map_entry(item)
            obj.setdefault("data", {})[key] = _text(value)
        elif number == 3:
            key, value = _map_entry(item)
            obj.setdefault("binaryData", {})[key] = base64.b64encode(value).decode()
        elif number == 4:
            obj["immutable"] = bool(item)
    return obj


def _namespace(data: bytes) -> Obj:
    obj: Obj = {"metadata": {}}
    for number, _, item in fields(data):
        if number == 1:
            obj["metadata"] = object_meta(item)
    return obj


def _delete_options(data: bytes) -> Obj:
    obj: Obj = {}
    for number, _, item in fields(data):
        if number == 1:
            obj["gracePeriodSeconds"] = _signed(item)
        elif number == 2:
            preconditions: Obj = {}
            for sub, _, value in fields(item):
                preconditions["uid" if sub == 1 else "resourceVersion"] = _text(value)
            obj["preconditions"] = preconditions
        elif number == 3:
            obj["orphanDependents"] = bool(item)
        elif number == 4:
            obj["propagationPolicy"] = _text(item)
        elif number == 5:
            obj.setdefault("dryRun", []).append(_text(item))
    return obj


def _strings(data: bytes, names: dict[int, str]) -> Obj:
    return {names[number]: _text(item) for number, _, item in fields(data) if number in names}


_RESOURCE_ATTRIBUTES = {
    1: "namespace",
    2: "verb",
    3: "group",
    4: "version",
    5: "resource",
    6: "subresource",
    7: "name",
}


def _review_spec(data: bytes) -> Obj:
    """(Self)SubjectAccessReviewSpec: attributes, and for SubjectAccessReview user/groups."""
    spec: Obj = {}
    for number, _, item in fields(data):
        if number == 1:
            spec["resourceAttributes"] = _strings(item, _RESOURCE_ATTRIBUTES)
        elif number == 2:
            spec["nonResourceAttributes"] = _strings(item, {1: "path", 2: "verb"})
        elif number == 3:
            spec["user"] = _text(item)
        elif number == 4:
            spec.setdefault("groups", []).append(_text(item))
    return spec


def _review(data: bytes) -> Obj:
    obj: Obj = {"metadata": {}}
    for number, _, item in fields(data):
        if number == 1:
            obj["metadata"] = object_meta(item)
        elif number == 2:
            obj["spec"] = _review_spec(item)
    return obj


DECODERS: dict[tuple[str, str], Callable[[bytes], Obj]] = {
    ("v1", "Secret"): _secret,
    ("v1", "ConfigMap"): _config_map,
    ("v1", "Namespace"): _namespace,
    ("v1", "DeleteOptions"): _delete_options,
    ("meta.k8s.io/v1", "DeleteOptions"): _delete_options,
    ("authorization.k8s.io/v1", "SelfSubjectAccessReview"): _review,
    ("authorization.k8s.io/v1", "SubjectAccessReview"): _review,
}


def decode_body(body: bytes) -> Obj:
    if not body.startswith(MAGIC):
        raise ProtobufError("not a Kubernetes protobuf body (missing k8s magic)")
    api_version = kind = ""
    raw = b""
    for number, _, item in fields(body[len(MAGIC) :]):
        if number == 1:
            for sub, _, value in fields(item):
                if sub == 1:
                    api_version = _text(value)
                elif sub == 2:
                    kind = _text(value)
        elif number == 2:
            raw = item
    decoder = DECODERS.get((api_version, kind))
    if decoder is None:
        raise ProtobufError(
            f"protobuf bodies of {api_version}/{kind} are not supported by the stand-in; send JSON"
        )
    obj = decoder(raw)
    if kind != "DeleteOptions":
        obj["apiVersion"], obj["kind"] = api_version, kind
    return obj
