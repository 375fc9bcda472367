"""Targets, the results table, the JSON file, the chart and docs/benchmarks.md."""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.load import Result

DOCS = Path(__file__).resolve().parent.parent / "docs"
START, END = "<!-- bench:results:start -->", "<!-- bench:results:end -->"
X = "\N{MULTIPLICATION SIGN}"  # ratios read "0.52x raw" with a real times sign
NAMES = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}


@dataclass
class Check:
    database: str
    scenario: str
    target: str
    measured: str
    met: bool


Results = dict[str, dict[str, dict[str, Result]]]
# Every target also wants zero errors in the runs it is computed from.
READ_ONE, READ_PAGE = f"≥ 0.4{X} raw (aim 0.5{X})", f"≥ 0.5{X} raw"
FLOORS = {"S1": 0.4, "S2": 0.5, "S3": 0.3}
TARGETS = {
    "S1": READ_ONE,
    "S1 team": READ_ONE,
    "S1 power": READ_ONE,
    "S2": READ_PAGE,
    "S2 teams": READ_PAGE,
    "S3": f"0 errors, ≥ 0.3{X} raw",
    "S4": f"p99 ≤ 5{X} S1's p99",
    "S5": f"deep p50 ≤ 1.5{X} first",
    "S6": "0 errors",
}


def _measure(r: dict[str, dict[str, Result]], scenario: str) -> tuple[str, bool]:
    floor = FLOORS.get(scenario.split()[0])
    if floor is not None:
        ratio = r[scenario]["service"].rps / r[scenario]["raw"].rps
        return f"{ratio:.2f}{X} raw", ratio >= floor
    if scenario == "S4":
        ratio = r["S4"]["service"].p99_ms / r["S1"]["service"].p99_ms
        return f"{ratio:.2f}{X} S1's p99", ratio <= 5
    if scenario == "S5":
        ratio = r["S5"]["deep"].p50_ms / r["S5"]["first"].p50_ms
        return f"{ratio:.2f}{X} first page", ratio <= 1.5
    return f"{r['S6']['service'].rps:.0f} req/s", True


def checks(results: Results) -> list[Check]:
    """Every target whose runs are in `results` (S4 needs S1's as well)."""
    found = []
    for db, r in results.items():
        for scenario in TARGETS:
            if scenario not in r or (scenario == "S4" and "S1" not in r):
                continue
            value, ok = _measure(r, scenario)
            # A failed request is fast and cheap: a ratio counts only from runs without any.
            errors = sum(run.errors for run in r[scenario].values())
            if scenario == "S4":
                errors += r["S1"]["service"].errors
            text = f"{errors} errors, {value}"
            found.append(Check(db, scenario, TARGETS[scenario], text, ok and not errors))
    return found


def table(results: Results) -> str:
    lines = [
        f"| database | scenario | endpoint | req/s | p50 ms | p99 ms | errors | {X} raw "
        f"| {X} bare |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for db, by_scenario in results.items():
        for scenario, runs in by_scenario.items():
            for endpoint, res in runs.items():
                ratios = ["", ""]
                if endpoint == "service":
                    for i, base in enumerate(("raw", "bare")):
                        if base in runs:
                            ratios[i] = f"{res.rps / runs[base].rps:.2f}"
                lines.append(
                    f"| {NAMES[db]} | {scenario} | {endpoint} | {res.rps:,.0f} | {res.p50_ms:.2f} "
                    f"| {res.p99_ms:.2f} | {res.errors} | {ratios[0]} | {ratios[1]} |"
                )
    return "\n".join(lines)


def targets_table(found: list[Check], results: Results | None = None) -> str:
    lines = ["| database | scenario | target | measured | met |", "|---|---|---|---|---|"]
    for c in found:
        met = "yes" if c.met else "**no**"
        lines.append(f"| {NAMES[c.database]} | {c.scenario} | {c.target} | {c.measured} | {met} |")
    lines.append("\nA target is met only if the runs it is computed from had no errors.")
    for db, r in (results or {}).items():
        if "S1" in r and "S1 team" in r:
            ratio = r["S1 team"]["service"].rps / r["S1"]["service"].rps
            lines.append(
                f"{NAMES[db]}: a team read runs at {ratio:.2f}{X} a hero read (aim: within 20 %)."
            )
    return "\n".join(lines)


def write_json(path: Path, meta: dict[str, Any], results: Results, found: list[Check]) -> None:
    data = {
        **meta,
        "results": {
            db: {s: {e: r.to_json() for e, r in runs.items()} for s, runs in by.items()}
            for db, by in results.items()
        },
        "targets": [c.__dict__ for c in found],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")


def chart(path: Path, results: Results, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dbs = list(results)
    fig, axes = plt.subplots(1, len(dbs), figsize=(8 * len(dbs), 4.5), squeeze=False)
    colors = {"service": "#2f6db5", "raw": "#8c8c8c", "bare": "#d0d0d0"}
    for ax, db in zip(axes[0], dbs, strict=True):
        scenarios = ["S1", "S1 team", "S1 power", "S2", "S2 teams", "S3"]
        for offset, endpoint in enumerate(("service", "raw", "bare")):
            xs = [i + (offset - 1) * 0.27 for i in range(len(scenarios))]
            ys = [results[db][s][endpoint].rps for s in scenarios]
            bars = ax.bar(xs, ys, width=0.27, color=colors[endpoint], label=endpoint)
            if endpoint == "service":
                for bar, s in zip(bars, scenarios, strict=True):
                    ratio = results[db][s]["service"].rps / results[db][s]["raw"].rps
                    ax.annotate(
                        f"{ratio:.2f}{X} raw",
                        (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                        ha="center",
                        va="bottom",
                        fontsize=8,
                    )
        ax.set_xticks(range(len(scenarios)))
        ax.set_xticklabels(["hero", "team", "power", "50 heroes", "50 teams", "create"])
        ax.set_ylabel("requests/s (higher is better)")
        ax.set_title(NAMES[db])
        ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


DEFAULT_DOC = f"""# Benchmarks

How fast the service is next to baselines measured in the same run (issue 6): a bare
FastAPI endpoint that returns the same JSON from memory, and raw-driver endpoints (aiosqlite
or asyncpg, no ORM, no auth) that read the same rows and do the same insert.

{START}
{END}
"""


def write_docs(results: Results, found: list[Check], meta: dict[str, Any]) -> Path:
    doc = DOCS / "benchmarks.md"
    text = doc.read_text() if doc.exists() else DEFAULT_DOC
    if START not in text or END not in text:
        text = text.rstrip() + f"\n\n{START}\n{END}\n"
    generated = "\n\n".join(
        [
            START,
            f"Latest run: {meta['started']} ({meta['duration_s']:.0f} s), {meta['machine']}.\n"
            f"Command: `{meta['command']}`. Each measured run lasts "
            f"{meta['options']['duration']:g} s after {meta['options']['warmup']:g} s of "
            f"warm-up; S6 lasts {meta['options']['mixed_duration']:g} s. S1, S2 and S3 run each "
            f"target {meta['options'].get('rounds', 1)} times, interleaved, and keep the median.",
            "### Targets\n\n" + targets_table(found, results),
            "### Every run\n\n" + table(results),
            "![requests per second, service against baselines](benchmarks.png)",
            END,
        ]
    )
    head, rest = text.split(START, 1)
    tail = rest.split(END, 1)[1]
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(head + generated + tail)
    return doc
