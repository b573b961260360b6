"""The CustomActionWorker CRD as the local Kubernetes admits it, called in-process.

`CrdGate.admit` runs the stand-in's API layer (`Api.create` with `dryRun`) on the stand-in's
loop: the same pruning, defaulting, structural-schema and CEL validation an HTTP create goes
through, without the HTTP round trip, so that hypothesis can send hundreds of specs in
seconds. A sample is also sent through the real API (test_worker_specs.py) to show that the
two paths agree.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from cpworker.sandbox.kube import KubeStandIn, schema
from cpworker.sandbox.kube.api import STRICT_FIELDS
from cpworker.sandbox.kube.errors import ApiError

GROUP, VERSION, PLURAL = "cpworker.io", "v1alpha1", "customactionworkers"
NAMESPACE = "default"
Obj = dict[str, Any]


def worker(spec: Any) -> Obj:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "CustomActionWorker",
        "metadata": {"name": "fuzzed", "namespace": NAMESPACE},
        "spec": spec,
    }


@dataclass(frozen=True)
class Admission:
    """What the API server answered: the stored spec, or the refusal."""

    spec: Any = None
    error: ApiError | None = None

    @property
    def accepted(self) -> bool:
        return self.error is None


class CrdGate:
    """The project's CRDs loaded into a running stand-in (`kube`)."""

    def __init__(self, kube: KubeStandIn) -> None:
        self.kube = kube
        rtype = kube.server.registry.get(GROUP, VERSION, PLURAL)
        assert rtype is not None, "load the project's CRDs first"
        assert rtype.schema is not None
        self.rtype = rtype
        self.schema: Obj = rtype.schema

    def admit(self, spec: Any, *, strict: bool) -> Admission:
        """Create (dry run) a worker with this spec, as `fieldValidation=Strict` or not."""

        def create() -> Admission:
            token = STRICT_FIELDS.set(strict)
            try:
                stored = self.kube.server.api.create(
                    self.rtype, NAMESPACE, copy.deepcopy(worker(spec)), dry_run=True
                )
            except ApiError as error:
                return Admission(error=error)
            finally:
                STRICT_FIELDS.reset(token)
            return Admission(spec=stored["spec"])

        return self.kube.call(create)

    def normalize(self, spec: Any, *, prune_unknown: bool) -> Any:
        """What the API server would hand on without validating: nulls the schema does not
        allow dropped (or defaulted), unknown fields pruned (unless `prune_unknown` is off,
        as under Strict, where they are refused instead), defaults applied."""
        document = copy.deepcopy(worker(spec))
        document = schema.prune_nulls(self.schema, document)
        if prune_unknown:
            document = schema.prune(self.schema, document, root=True)
        return schema.apply_defaults(self.schema, document)["spec"]
