"""The patch flavours of the Kubernetes API, as pure functions over JSON-like values.

- JSON merge patch (RFC 7386): objects merge, `null` deletes, everything else replaces.
- JSON patch (RFC 6902), including `test`.
- Strategic merge patch: like merge patch, but the lists Kubernetes declares as keyed
  (containers, env, volumes, ...) merge item by item on their key, and set-like lists
  (finalizers) union. Directives `$patch`, `$setElementOrder/...`, `$retainKeys` and
  `$deleteFromPrimitiveList/...` are honoured or ignored as kubectl needs.
"""

from __future__ import annotations

import copy
from typing import Any


class PatchError(ValueError):
    """A patch that cannot be applied (answered as 422 or 400)."""


class PatchTestFailedError(PatchError):
    """A JSON-patch `test` operation did not hold."""


def merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


# list field name -> merge key, for the built-in types we serve (from the Go struct tags).
STRATEGIC_KEYS: dict[str, str] = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "ports": "containerPort",
    "imagePullSecrets": "name",
    "conditions": "type",
    "ownerReferences": "uid",
    "hostAliases": "ip",
    "topologySpreadConstraints": "topologyKey",
    "tolerations": "key",
    "containerStatuses": "name",
    "initContainerStatuses": "name",
}
# set-like lists of scalars that strategic merge unions (patchStrategy: merge, no key).
STRATEGIC_SETS = frozenset({"finalizers"})


def _merge_keyed_list(current: list[Any], patch: list[Any], key: str, field: str) -> list[Any]:
    result = [copy.deepcopy(item) for item in current]
    for item in patch:
        if not isinstance(item, dict):
            raise PatchError(f"strategic merge patch: {field} items must be objects")
        directive = item.get("$patch")
        if directive == "replace":
            # a `{"$patch": "replace"}` marker: the other items are the whole new list
            return [i for i in patch if isinstance(i, dict) and "$patch" not in i]
        index = next(
            (n for n, existing in enumerate(result) if existing.get(key) == item.get(key)), None
        )
        if directive == "delete":
            if index is not None:
                result.pop(index)
            continue
        if index is None:
            result.append(strategic_merge(None, item))
        else:
            result[index] = strategic_merge(result[index], item)
    return result


def strategic_merge(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if patch.get("$patch") == "delete":
        return None
    result = dict(target) if isinstance(target, dict) else {}
    retain = patch.get("$retainKeys")
    for key, value in patch.items():
        if key.startswith("$setElementOrder/") or key in {"$retainKeys", "$patch"}:
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            doomed = set(value or [])
            result[field] = [v for v in result.get(field) or [] if v not in doomed]
            continue
        if value is None:
            result.pop(key, None)
        elif isinstance(value, list) and key in STRATEGIC_KEYS:
            existing = result.get(key)
            result[key] = _merge_keyed_list(
                existing if isinstance(existing, list) else [], value, STRATEGIC_KEYS[key], key
            )
        elif isinstance(value, list) and key in STRATEGIC_SETS:
            existing = list(result.get(key) or [])
            result[key] = existing + [v for v in value if v not in existing]
        else:
            result[key] = strategic_merge(result.get(key), value)
    if isinstance(retain, list):
        result = {k: v for k, v in result.items() if k in retain}
    return result


def _unescape(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(f"invalid JSON pointer: {path!r}")
    return [_unescape(token) for token in path[1:].split("/")]


def _resolve(document: Any, tokens: list[str]) -> Any:
    current = document
    for token in tokens:
        if isinstance(current, dict):
            if token not in current:
                raise PatchError(f"path not found: /{'/'.join(tokens)}")
            current = current[token]
        elif isinstance(current, list):
            try:
                current = current[int(token)]
            except (ValueError, IndexError) as exc:
                raise PatchError(f"path not found: /{'/'.join(tokens)}") from exc
        else:
            raise PatchError(f"path not found: /{'/'.join(tokens)}")
    return current


def _add(document: Any, tokens: list[str], value: Any) -> Any:
    if not tokens:
        return value
    parent = _resolve(document, tokens[:-1])
    last = tokens[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        if last == "-":
            parent.append(value)
        else:
            index = int(last)
            if index > len(parent):
                raise PatchError(f"index out of range: {index}")
            parent.insert(index, value)
    else:
        raise PatchError(f"cannot add at /{'/'.join(tokens)}")
    return document


def _remove(document: Any, tokens: list[str]) -> Any:
    if not tokens:
        raise PatchError("cannot remove the whole document")
    parent = _resolve(document, tokens[:-1])
    last = tokens[-1]
    try:
        if isinstance(parent, dict):
            value = parent.pop(last)
        elif isinstance(parent, list):
            value = parent.pop(int(last))
        else:
            raise PatchError(f"cannot remove /{'/'.join(tokens)}")
    except (KeyError, ValueError, IndexError) as exc:
        raise PatchError(f"path not found: /{'/'.join(tokens)}") from exc
    return value


def json_patch(document: Any, operations: Any) -> Any:
    if not isinstance(operations, list):
        raise PatchError("a JSON patch must be a list of operations")
    result = copy.deepcopy(document)
    for operation in operations:
        if not isinstance(operation, dict) or "op" not in operation:
            raise PatchError(f"invalid JSON patch operation: {operation!r}")
        op = operation["op"]
        tokens = _pointer(operation.get("path", ""))
        if op == "add":
            result = _add(result, tokens, copy.deepcopy(operation.get("value")))
        elif op == "remove":
            _remove(result, tokens)
        elif op == "replace":
            _resolve(result, tokens)
            if tokens:
                _remove(result, tokens)
            result = _add(result, tokens, copy.deepcopy(operation.get("value")))
        elif op in {"move", "copy"}:
            source = _pointer(operation.get("from", ""))
            value = (
                _remove(result, source) if op == "move" else copy.deepcopy(_resolve(result, source))
            )
            result = _add(result, tokens, value)
        elif op == "test":
            try:
                actual = _resolve(result, tokens)
            except PatchError as exc:
                raise PatchTestFailedError(f"testing value {operation.get('path')} failed") from exc
            if actual != operation.get("value"):
                raise PatchTestFailedError(
                    f"testing value {operation.get('path')} failed: test failed"
                )
        else:
            raise PatchError(f"unknown JSON patch operation: {op!r}")
    return result
