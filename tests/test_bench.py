"""The benchmark harness's pieces that need no server: wrk's report, the targets, the table.
The harness itself runs with `python -m bench` (docs/benchmarks.md); nothing here is timed."""

from pathlib import Path

from bench import load, report

WRK_OUTPUT = """Running 3s test @ http://127.0.0.1:1/
  1 threads and 32 connections
BENCH_JSON {"requests":3000,"duration_us":3000000,"connect":0,"read":1,"write":0,"status":2,\
"timeout":0,"p50_us":1500,"p90_us":2500,"p99_us":9000,"max_us":12000}
"""


def _result(rps: float, p50: float = 1.0, p99: float = 2.0, errors: int = 0) -> load.Result:
    return load.Result(
        requests=int(rps),
        seconds=1.0,
        rps=rps,
        p50_ms=p50,
        p90_ms=p99,
        p99_ms=p99,
        max_ms=p99,
        errors=errors,
        error_kinds={"status": errors},
    )


def test_wrk_reports_are_read_with_every_error_counted() -> None:
    result = load.parse(WRK_OUTPUT)
    assert result.rps == 1000.0
    assert (result.p50_ms, result.p99_ms) == (1.5, 9.0)
    assert result.errors == 3


def test_every_scenario_script_carries_the_reporter(tmp_path: Path) -> None:
    for name in ("get", "post", "mixed"):
        text = load.script(name, tmp_path).read_text()
        assert "function done(" in text
        assert "BENCH_JSON" in text


def test_wrk_runs_on_the_load_core_with_the_script_arguments() -> None:
    cmd = load.command("http://x/", Path("s.lua"), 64, 5, {"A": "b"}, ["one", "two"])
    assert cmd[:3] == ["taskset", "-c", load.LOAD_CORE]
    assert "-c64" in cmd
    assert cmd[cmd.index("-H") + 1] == "A: b"
    assert cmd[-3:] == ["--", "one", "two"]


def _run(s1: float, s3_errors: int = 0, deep_p50: float = 1.2) -> report.Results:
    base = {"raw": _result(1000), "bare": _result(3000)}
    return {
        "sqlite": {
            "S1": {"service": _result(s1, p99=4), **base},
            "S2": {"service": _result(600), **base},
            "S3": {"service": _result(400, errors=s3_errors), **base},
            "S4": {"service": _result(300, p99=19), "logins": _result(10)},
            "S5": {"first": _result(500, p50=1.0), "deep": _result(480, p50=deep_p50)},
            "S6": {"service": _result(350)},
        }
    }


def test_targets_are_ratios_to_the_same_run() -> None:
    met = {c.scenario: c.met for c in report.checks(_run(s1=450))}
    assert met == {"S1": True, "S2": True, "S3": True, "S4": True, "S5": True, "S6": True}
    missed = {c.scenario: c.met for c in report.checks(_run(s1=350, s3_errors=1, deep_p50=2))}
    assert missed == {"S1": False, "S2": True, "S3": False, "S4": True, "S5": False, "S6": True}


def test_a_ratio_from_a_run_with_errors_is_not_met() -> None:
    failing = _run(s1=450)
    failing["sqlite"]["S1"]["raw"] = _result(1000, errors=5)  # fast, because it failed
    failing["sqlite"]["S5"]["deep"] = _result(480, p50=1.2, errors=1)
    found = {c.scenario: c for c in report.checks(failing)}
    assert (found["S1"].met, found["S5"].met, found["S2"].met) == (False, False, True)
    assert found["S1"].measured.startswith("5 errors")


def test_a_partial_run_checks_the_targets_it_has_the_runs_for() -> None:
    partial = _run(s1=350)
    for scenario in ("S1", "S3", "S6"):
        del partial["sqlite"][scenario]
    found = {c.scenario: c.met for c in report.checks(partial)}
    assert found == {"S2": True, "S5": True}  # S4 is measured against S1, which did not run
    only_s1 = {"sqlite": {"S1": _run(s1=350)["sqlite"]["S1"]}}
    assert [(c.scenario, c.met) for c in report.checks(only_s1)] == [("S1", False)]


def test_the_table_shows_ratios_on_service_rows_only() -> None:
    lines = report.table(_run(s1=450)).splitlines()
    s1 = [line for line in lines if "| S1 |" in line]
    assert s1[0].endswith("| 0.45 | 0.15 |")
    assert s1[1].endswith("|  |  |")
