"""The PNG: dispatch latency distributions and idle calls per worker-hour, ours and baselines.

Drawn from the JSON report alone (its `distributions` and per-hour figures), so a committed
report can be re-drawn: `cpworker bench --chart-from REPORT.json --png CHART.png`.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def _ecdf(samples: list[float]) -> tuple[list[float], list[float]]:
    ordered = sorted(max(s, 1e-3) for s in samples)  # log axis: floor at 1 ms
    return ordered, [(i + 1) / len(ordered) for i in range(len(ordered))]


def render(report: Mapping[str, Any], path: Path) -> Path:
    # The `bench` extra: only the chart needs matplotlib, so it is imported here.
    import matplotlib as mpl  # noqa: PLC0415

    mpl.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    dispatch: Mapping[str, list[float]] = report["distributions"]["dispatch_latency_s"]
    figure, (left, right) = plt.subplots(1, 2, figsize=(13, 5.6))
    # One colour per series in both panels: ours in blues, the baselines in the rest.
    palette = iter(["tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink"])
    ours_palette = iter(["tab:blue", "navy", "tab:cyan"])
    colors = {
        name: next(ours_palette if name.startswith("ours") else palette, "tab:gray")
        for name in dict.fromkeys([*dispatch, *report.get("baselines", {})])
    }
    for name, samples in dispatch.items():
        if not samples:
            continue
        xs, ys = _ecdf(samples)
        ours = name.startswith("ours")
        left.step(
            xs, ys, where="post", label=name, color=colors[name], linewidth=2.4 if ours else 1.4
        )
    left.set_xscale("log")
    left.set_xlabel("dispatch latency: job created in CodePipeline -> Kubernetes Job (s)")
    left.set_ylabel("fraction of jobs")
    left.set_title("Dispatch latency (cumulative)")
    left.grid(visible=True, which="both", alpha=0.3)
    left.legend(fontsize=8, loc="lower right")

    bars: dict[str, float] = {}
    for run in report.get("fleet", []):
        if run["workers"] == report["idle"]["workers"]:
            bars[f"ours ({run['mode']})"] = run["codepipeline_calls_per_worker_hour"] or 0.0
    for name, baseline in report.get("baselines", {}).items():
        bars[name] = baseline["codepipeline_calls_per_worker_hour"] or 0.0
    names = list(bars)
    right.bar(
        names, [max(bars[n], 0.1) for n in names], color=[colors.get(n, "tab:gray") for n in names]
    )
    right.set_yscale("log")
    right.set_ylim(bottom=1)
    right.set_ylabel("CodePipeline calls per idle worker-hour")
    right.set_title(f"Idle cost ({report['idle']['workers']:,} idle workers for ours)")
    right.tick_params(axis="x", rotation=30)
    for index, name in enumerate(names):
        right.annotate(
            f"{bars[name]:,.0f}", (index, max(bars[name], 0.1)), ha="center", va="bottom"
        )

    meta = report.get("metadata", {})
    title = (
        f"cpworker bench, {meta.get('started', '')}, {meta.get('machine', {}).get('summary', '')}"
        f"; baselines are models of polling policies, not the products. {meta.get('command', '')}"
    )
    figure.suptitle("\n".join(textwrap.wrap(title, 150)), fontsize=9)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
