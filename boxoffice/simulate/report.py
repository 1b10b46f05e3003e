"""Writing the report (built by ``analysis.py``): ``report.json``, ``people.jsonl``,
``summary.md``, a rich table on the terminal, and PNG plots."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from boxoffice.simulate.analysis import P99_GOAL_MS


def write_people(rows: list[dict[str, Any]], out_dir: Path) -> None:
    """``people.jsonl``: every person's journey, for analysis after the fact."""
    with (out_dir / "people.jsonl").open("w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")


def write_json(report: dict[str, Any], out_dir: Path) -> Path:
    """``report.json`` in ``out_dir``."""
    path = out_dir / "report.json"
    path.write_text(json.dumps(report, indent=2, default=str))
    return path


def print_report(report: dict[str, Any]) -> None:
    """The summary tables on the terminal."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    s = report["summary"]
    summary = Table(title="On-sale simulation", show_header=False)
    summary.add_column("what")
    summary.add_column("value", justify="right")
    for key, value in s.items():
        summary.add_row(key.replace("_", " "), _fmt(value))
    console.print(summary)

    inv = Table(title="Invariants and goals")
    for col in ("check", "value", "goal", "met"):
        inv.add_column(col)
    for row in report["invariants"] + report["goals"]:
        inv.add_row(
            row["name"],
            _fmt(row["value"]),
            str(row["goal"]),
            "[green]yes[/]" if row["ok"] else "[red]NO[/]",
        )
    console.print(inv)

    lat = Table(title="Latency per step (ms)")
    for col in ("step", "count", "p50", "p95", "p99", "max", "statuses"):
        lat.add_column(col, justify="right" if col != "step" else "left")
    for step, fig in report["latency_ms"].items():
        statuses = report["statuses"].get(step, {})
        lat.add_row(
            step,
            str(fig["count"]),
            _fmt(fig["p50"]),
            _fmt(fig["p95"]),
            _fmt(fig["p99"]),
            _fmt(fig["max"]),
            " ".join(f"{k}:{v}" for k, v in statuses.items()),
        )
    console.print(lat)
    for name, fig in report.get("diagnostics", {}).items():
        console.print(
            f"{name.replace('_', ' ')}: p50 {_fmt(fig['p50'])} p95 {_fmt(fig['p95'])} "
            f"max {_fmt(fig['max'])}"
        )
    if report.get("cpu_seconds_during_sale"):
        cpu = report["cpu_seconds_during_sale"]
        per = report.get("cpu_ms_per_request", {})
        console.print(
            "CPU seconds during the sale (ms per crowd request): "
            + ", ".join(f"{k} {v} ({per.get(k, '-')})" for k, v in cpu.items())
        )
    if report.get("redis_commands_top"):
        top = report["redis_commands_top"]
        console.print("Redis commands: " + ", ".join(f"{k} {v}" for k, v in top.items()))
    if len(report.get("redis_shards", {})) > 1:
        console.print(
            "Redis shards (commands, share): "
            + ", ".join(
                f"{k} {v['commands']} ({v['share']:.0%})" for k, v in report["redis_shards"].items()
            )
        )
    for key, body in report.get("error_examples", {}).items():
        console.print(f"[yellow]{key}[/]: {body[:160]}")
    for line in report.get("notes", []):
        console.print(f"[dim]{line}[/]")


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"
    return str(value)


def _label(ax: Any, ylabel: str, title: str, *, legend: str = "upper right") -> None:
    ax.set_ylabel(ylabel)
    ax.legend(loc=legend)
    ax.set_title(title)


def plot(report: dict[str, Any], out_dir: Path) -> list[Path]:
    """``timeline.png`` (admitted/sold, queue, worker lag) and ``latency.png`` (per step)."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    paths = []
    tl = report["timeline"]
    t = [row["t"] for row in tl]
    fig, axes = plt.subplots(3, 1, figsize=(10, 10), sharex=True)
    ax = axes[0]
    ax.plot(t, [row["admitted_total"] for row in tl], label="admitted (total)")
    ax.plot(t, [row["sold_seats"] for row in tl], label="seats sold (net)")
    ax.axhline(report["summary"]["capacity"], color="grey", linestyle=":", label="capacity")
    _label(ax, "count", "Admissions and sales", legend="lower right")
    ax = axes[1]
    ax.plot(t, [row["waiting"] for row in tl], label="waiting (clients in queue)")
    ax.plot(t, [row["active"] for row in tl], label="active (admitted, booking)")
    if any(row.get("server_waiting") is not None for row in tl):
        ax.plot(
            t,
            [row.get("server_waiting") for row in tl],
            linestyle="--",
            label="waiting (gateway gauge)",
        )
        ax.plot(
            t,
            [row.get("server_admitted") for row in tl],
            linestyle="--",
            label="slots in use (gateway gauge)",
        )
    ax.axhline(report["fairness"]["max_active"], color="grey", linestyle=":", label="max_active")
    _label(ax, "users", "Queue")
    ax = axes[2]
    ax.plot(t, [row["read_lag"] for row in tl], label="confirmed, not yet in MySQL")
    if any(row.get("stream_lag") is not None for row in tl):
        ax.plot(t, [row.get("stream_lag") or 0 for row in tl], label="worker group lag (stream)")
    ax.set_xlabel("seconds since booking opened")
    _label(ax, "reservations", "Worker lag")
    fig.tight_layout()
    path = out_dir / "timeline.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    paths.append(path)

    lt = report["latency_timeline"]
    steps = [
        s for s in ("page", "join", "status", "seatmap", "hold", "reserve", "login") if s in lt
    ]
    if steps:
        fig, axes = plt.subplots(len(steps), 1, figsize=(10, 2.6 * len(steps)), sharex=True)
        if len(steps) == 1:
            axes = [axes]
        for ax, step in zip(axes, steps, strict=True):
            rows = lt[step]
            x = [r[0] for r in rows]
            for i, name in ((1, "p50"), (2, "p95"), (3, "p99")):
                ax.plot(x, [r[i] for r in rows], label=name)
            ax.axhline(P99_GOAL_MS, color="grey", linestyle=":", label="p99 goal")
            _label(ax, "ms", step)
        axes[-1].set_xlabel("seconds since booking opened")
        fig.tight_layout()
        path = out_dir / "latency.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        paths.append(path)
    return paths


def markdown(report: dict[str, Any], command: str) -> str:
    """The run as a Markdown section body (``summary.md``; pasted into BENCHMARKS.md)."""
    s, m, f = report["summary"], report["machine"], report["fairness"]
    lines = [
        f"Command: `{command}`",
        "",
        f"Machine: {m['nproc']} cores, {m['ram_gb']} GB RAM, load average before the run "
        f"{m.get('load_before')}; everything (system and simulator) on it. Run at "
        + report["generated_at"][:19]
        + "Z.",
        "",
        f"- {s['users']} people, {s['capacity']} seats: {s['seats_sold']} sold in "
        f"{s['reservations']} reservations; capacity reached "
        + (
            f"{s['time_to_sell_out_s']:.1f} s after opening"
            if s["time_to_sell_out_s"] is not None
            else "never"
        )
        + f"; {s['admitted']} admitted; {s['requests']} requests.",
        f"- Fairness: Kendall tau {_fmt(f['kendall_tau'])} over {f['known_pairs']} of "
        f"{f['total_pairs']} admitted pairs whose order is known, {f['discordant_pairs']} "
        f"discordant; max active observed {f['max_active_observed']} (max_active "
        f"{f['max_active']}).",
        f"- Redis commands per request (INFO commandstats, commands inside Lua included): "
        f"{_fmt(s['redis_commands_per_request'])}; CPU ms per crowd request: "
        + ", ".join(f"{k} {v}" for k, v in report.get("cpu_ms_per_request", {}).items())
        + ".",
        "",
        "| check | value | goal | met |",
        "|---|---|---|---|",
    ]
    for row in report["invariants"] + report["goals"]:
        value = str(_fmt(row["value"])).replace("|", "/")
        lines.append(
            f"| {row['name']} | {value} | {row['goal']} | {'yes' if row['ok'] else 'NO'} |"
        )
    lines += [
        "",
        "| step | count | p50 ms | p95 ms | p99 ms | statuses |",
        "|---|---|---|---|---|---|",
    ]
    for step, fig in report["latency_ms"].items():
        statuses = " ".join(f"{k}:{v}" for k, v in report["statuses"].get(step, {}).items())
        lines.append(
            f"| {step} | {fig['count']} | {_fmt(fig['p50'])} | {_fmt(fig['p95'])} | "
            f"{_fmt(fig['p99'])} | {statuses} |"
        )
    return "\n".join(lines) + "\n"
