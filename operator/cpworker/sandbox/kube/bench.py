"""Micro-benchmark of the Kubernetes stand-in: GET and LIST latency as stored objects and
served requests grow (100 -> 20,000). Not a test: it prints figures.

    python -m cpworker.sandbox.kube.bench [--sizes 100,1000,5000,20000] [--samples 300]
"""

from __future__ import annotations

import argparse
import functools
import ssl
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import urllib3

from cpworker.sandbox.kube.standin import KubeStandIn

NAMESPACE = "bench"


def _percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return statistics.median(ordered) * 1000, p99 * 1000


def _fill(kube: KubeStandIn, start: int, stop: int) -> None:
    """Store objects directly (on the server's loop) so filling is not what we time."""

    def create() -> None:
        api = kube.server.api
        rtype = kube.server.registry.get("", "v1", "configmaps")
        assert rtype is not None
        for index in range(start, stop):
            api.create(
                rtype,
                NAMESPACE,
                {
                    "metadata": {
                        "name": f"cm-{index}",
                        "labels": {
                            "bucket": str(index % 100),  # 1 % of the objects each
                            "group": f"g{index // 10}",  # 10 objects each
                            "app": "bench",
                        },
                    },
                    "data": {"value": "x" * 64},
                },
            )

    kube.call(create)


def _timed(call: Callable[[], Any], samples: int) -> list[float]:
    durations = []
    for _ in range(samples):
        began = time.perf_counter()
        call()
        durations.append(time.perf_counter() - began)
    return durations


def run(sizes: Sequence[int], samples: int) -> list[dict[str, float]]:
    rows = []
    with KubeStandIn(job_runner=False) as kube:
        assert kube.ca_file is not None
        context = ssl.create_default_context(cafile=str(kube.ca_file))
        pool = urllib3.HTTPSConnectionPool(
            "127.0.0.1", int(kube.url.rsplit(":", 1)[1]), ssl_context=context, maxsize=1
        )
        headers = {"Authorization": f"Bearer {kube.token}", "Accept": "application/json"}

        def get(path: str) -> None:
            response = pool.request("GET", path, headers=headers)
            assert response.status == 200, response.data[:200]

        kube.apply_manifests(
            [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}]
        )
        kube.apply_manifests(
            [
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {"name": "small", "namespace": "default"},
                }
            ]
        )
        stored = 0
        served = 0
        base = f"/api/v1/namespaces/{NAMESPACE}/configmaps"
        for size in sizes:
            _fill(kube, stored, size)
            stored = size
            # serve requests up to `size` as well, so both dimensions grow together
            while served < size:
                get(f"{base}/cm-{served % stored}")
                served += 1
            middle_path = f"{base}/cm-{stored // 2}"
            get_ms = _percentiles(_timed(functools.partial(get, middle_path), samples))
            selected_ms = _percentiles(
                _timed(lambda: get("/api/v1/namespaces/default/configmaps"), samples)
            )
            group_ms = _percentiles(
                _timed(functools.partial(get, f"{base}?labelSelector=group%3Dg7"), samples)
            )
            label_ms = _percentiles(
                _timed(
                    lambda: get(f"{base}?labelSelector=bucket%3D7&limit=500"),
                    max(10, samples // 10),
                )
            )
            full_ms = _percentiles(_timed(lambda: get(base), 5))
            served += samples * 3 + max(10, samples // 10) + 5
            rows.append(
                {
                    "objects": float(stored),
                    "requests": float(served),
                    "get_p50": get_ms[0],
                    "get_p99": get_ms[1],
                    "small_list_p50": selected_ms[0],
                    "small_list_p99": selected_ms[1],
                    "label_list_p50": label_ms[0],
                    "group_list_p50": group_ms[0],
                    "group_list_p99": group_ms[1],
                    "full_list_p50": full_ms[0],
                }
            )
        pool.close()
    return rows


def format_rows(rows: list[dict[str, float]]) -> str:
    header = (
        f"{'objects':>8} {'requests':>9} {'GET p50':>8} {'GET p99':>8} "
        f"{'LIST ns-of-1 p50':>16} {'p99':>6} {'LIST 10-by-label p50':>20} {'p99':>6} "
        f"{'LIST 1%-by-label p50':>20} {'LIST all p50':>13}"
    )
    lines = [header]
    lines.extend(
        f"{int(row['objects']):>8} {int(row['requests']):>9} {row['get_p50']:>7.2f}m "
        f"{row['get_p99']:>7.2f}m {row['small_list_p50']:>15.2f}m "
        f"{row['small_list_p99']:>5.2f}m {row['group_list_p50']:>19.2f}m "
        f"{row['group_list_p99']:>5.2f}m {row['label_list_p50']:>19.2f}m "
        f"{row['full_list_p50']:>12.1f}m"
        for row in rows
    )
    lines.append(
        "(m = milliseconds; '1%-by-label' and 'all' return more objects as the store grows)"
    )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cpworker.sandbox.kube.bench")
    parser.add_argument("--sizes", default="100,1000,5000,20000")
    parser.add_argument("--samples", type=int, default=300)
    args = parser.parse_args(argv)
    sizes = [int(size) for size in args.sizes.split(",")]
    print(format_rows(run(sizes, args.samples)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
