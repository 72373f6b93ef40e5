"""The load test's chart: p50/p95/p99 latency and throughput per concurrency step, as a PNG.

Pure: no Airflow, no AWS call; matplotlib's object API on the Agg canvas.
"""

from __future__ import annotations

import math
from typing import IO, TYPE_CHECKING

from sagemaker_vision.core.loadtest.model import LoadTestReport

if TYPE_CHECKING:
    from os import PathLike


def render_chart(report: LoadTestReport, path_or_fileobj: str | PathLike[str] | IO[bytes]) -> None:
    """PNG: p50/p95/p99 latency per step (left axis) and throughput (right axis).

    Uses matplotlib's object API on the Agg canvas: no pyplot global state, safe in worker
    threads, and nothing imported until a chart is drawn.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # lazy: keeps DAG parsing fast
    from matplotlib.figure import Figure

    if not report.steps:
        raise ValueError("report has no steps to chart")
    positions = list(range(len(report.steps)))
    labels = [
        f"C={s.concurrency}" + (f"\nerr {s.error_rate:.1%}" if s.errors else "") for s in report.steps
    ]
    fig = Figure(figsize=(8, 4.5), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for p, style in ((50, "o-"), (95, "s-"), (99, "^-")):
        values = [s.percentile_ms(p) for s in report.steps]
        ax.plot(positions, [math.nan if v is None else v for v in values], style, label=f"p{p} latency")
    if report.config.slo_p95_ms is not None:
        slo = report.config.slo_p95_ms
        ax.axhline(slo, color="red", linestyle=":", label=f"p95 SLO {slo:g} ms")
    ax.set_xticks(positions, labels)
    ax.set_xlabel("concurrency step")
    ax.set_ylabel("latency (ms)")
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)

    rps_ax = ax.twinx()
    rps_ax.plot(positions, [s.throughput_rps for s in report.steps], "d--", color="tab:gray",
                label="throughput")
    rps_ax.set_ylabel("throughput (successful req/s)")
    rps_ax.set_ylim(bottom=0)

    handles, names = ax.get_legend_handles_labels()
    more_handles, more_names = rps_ax.get_legend_handles_labels()
    ax.legend(handles + more_handles, names + more_names, loc="upper left", fontsize="small")
    ax.set_title(
        f"{report.endpoint_name}: max sustainable {report.max_sustainable_rps:.1f} req/s, "
        f"cold start {report.cold_start_ms:.0f} ms",
        fontsize="medium",
    )
    fig.tight_layout()
    fig.savefig(path_or_fileobj, format="png")
