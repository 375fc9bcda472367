"""S1 to S6 on one database: seed it, start the service and the baselines side by side (both
pinned to the server core, only one under load at a time), run each scenario next to its
baselines so that their ratios are measured minutes apart at most."""

import contextlib
import dataclasses
import json
import secrets
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench import load, seed
from bench.servers import Server, postgres

FORM = "application/x-www-form-urlencoded"


@dataclass(frozen=True)
class Options:
    duration: float  # seconds per measured run
    warmup: float  # seconds of unmeasured load before each measured run
    mixed_duration: float  # S6
    deep_heroes: int  # S5's table
    rounds: int  # S1, S2, S3: each target's result is the median of this many runs
    profile: bool  # run the service under pyinstrument
    only: frozenset[str]  # the scenarios to run
    service_env: dict[str, str]  # settings that override the production defaults


def _service_env(url: str, secret: str) -> dict[str, str]:
    """Production settings (the defaults), on the harness's database."""
    return {
        "ENVIRONMENT": "production",
        "DATABASE_URL": url,
        "SECRET_KEY": secret,
        "AUTO_MIGRATE": "false",
        "CORS_ORIGINS": "",
        "ALLOWED_HOSTS": "127.0.0.1",  # the harness dials the server by address
        "LOG_LEVEL": "INFO",
        "ACCESS_TOKEN_MINUTES": "240",  # outlives the run; no effect on speed
    }


def _check_same_json(service: dict[str, Any], raw: Any, what: str) -> None:
    if service != raw:
        raise RuntimeError(f"the raw {what} endpoint answers other JSON than the service:\n{raw}")


def run_database(
    kind: str, options: Options, run_dir: Path, log: Callable[[str], None]
) -> dict[str, dict[str, Any]]:
    """Every scenario on one database ("sqlite" or "postgresql"); results by scenario."""
    with contextlib.ExitStack() as stack:
        if kind == "sqlite":
            url = f"sqlite+aiosqlite:///{run_dir / 'bench.db'}"
        else:
            cluster = postgres(run_dir)
            stack.callback(cluster.cleanup)
            url = cluster.url("bench")
        log(f"[{kind}] migrating {url}")
        seed.prepare(url)
        secret = secrets.token_urlsafe(48)
        wrapper = None
        if options.profile:
            report = run_dir / f"profile-{kind}.txt"
            wrapper = [sys.executable, "-m", "pyinstrument", "-i", "0.0002", "-o", str(report)]
        service = Server(
            f"service-{kind}",
            "project.app:app",
            {**_service_env(url, secret), **options.service_env},
            run_dir,
            "/health/live",
            wrapper=wrapper,
        )
        stack.callback(service.stop)
        service.start()
        log(f"[{kind}] seeding ({options.deep_heroes:,} heroes for S5)")
        started = time.monotonic()
        fixture_path = run_dir / f"fixture-{kind}.json"
        fx = seed.seed(url, service.url, secret, options.deep_heroes, fixture_path)
        log(f"[{kind}] seeded in {time.monotonic() - started:.0f}s")
        env = {"BENCH_DATABASE_URL": url, "BENCH_FIXTURE": str(fixture_path)}
        app = "bench.baseline:create_app"
        baseline = Server(f"baseline-{kind}", app, env, run_dir, "/bare/hero", factory=True)
        stack.callback(baseline.stop)
        baseline.start()
        raw_hero = httpx.get(f"{baseline.url}/raw/heroes/{fx.hero_id}").json()
        _check_same_json(fx.hero, raw_hero, "hero")
        raw_page = httpx.get(f"{baseline.url}/raw/heroes?limit=50").json()
        _check_same_json(fx.page["items"], raw_page["items"], "page")
        for what, path, expected in (
            ("team", f"/raw/teams/{fx.team_id}", fx.team),
            ("power", f"/raw/powers/{fx.power_id}", fx.power),
            ("team page", "/raw/teams?limit=50", fx.teams["items"]),
        ):
            answer = httpx.get(baseline.url + path).json()
            _check_same_json(expected, answer.get("items", answer), what)
        raw_created = httpx.post(f"{baseline.url}/raw/heroes", json=seed.S3_BODY)
        _check_same_json(fx.created.keys(), raw_created.json().keys(), "create")
        return _scenarios(kind, options, run_dir, service, baseline, fx, log)
    raise AssertionError("unreachable")


def _scenarios(
    kind: str,
    options: Options,
    run_dir: Path,
    service: Server,
    baseline: Server,
    fx: seed.Fixture,
    log: Callable[[str], None],
) -> dict[str, dict[str, Any]]:
    get, post, mixed = (load.script(n, run_dir) for n in ("get", "post", "mixed"))
    auth = {"Authorization": f"Bearer {fx.token}"}
    body = json.dumps(seed.S3_BODY)
    results: dict[str, dict[str, Any]] = {}

    def run(url: str, lua: Path, conns: int, seconds: float = 0, **kw: Any) -> load.Result:
        if options.warmup:
            load.run(load.command(url, lua, conns, options.warmup, **kw))
        return load.run(load.command(url, lua, conns, seconds or options.duration, **kw))

    def keep(scenario: str, target: str, runs: list[load.Result]) -> None:
        """The median run by throughput, carrying the errors of every run."""
        result = sorted(runs, key=lambda r: r.rps)[len(runs) // 2]
        result = dataclasses.replace(result, errors=sum(r.errors for r in runs))
        results.setdefault(scenario, {})[target] = result
        log(
            f"[{kind}] {scenario} {target:8} {result.rps:9.1f} req/s  p50 {result.p50_ms:7.2f} ms"
            f"  p99 {result.p99_ms:7.2f} ms  errors {result.errors}"
            + (f"  (median of {', '.join(f'{r.rps:.0f}' for r in runs)})" if len(runs) > 1 else "")
        )

    def measure(
        scenario: str, target: str, url: str, lua: Path, conns: int, seconds: float = 0, **kw: Any
    ) -> None:
        keep(scenario, target, [run(url, lua, conns, seconds, **kw)])

    def compare(
        scenario: str, lua: Path, conns: int, urls: dict[str, str], headers: Any, **kw: Any
    ) -> None:
        """The service and its baselines in turn, `rounds` times (a noisy minute hits all
        alike); only the service is sent `headers`."""
        runs: dict[str, list[load.Result]] = {target: [] for target in urls}
        for _ in range(options.rounds):
            for target, url in urls.items():
                sent = {"headers": headers} if target == "service" else {}
                runs[target].append(run(url, lua, conns, **sent, **kw))
        for target, found in runs.items():
            keep(scenario, target, found)

    hero = f"/api/v1/heroes/{fx.hero_id}"
    reads = {
        "S1": (hero, f"/raw/heroes/{fx.hero_id}", "/bare/hero"),
        "S1 team": (f"/api/v1/teams/{fx.team_id}", f"/raw/teams/{fx.team_id}", "/bare/team"),
        "S1 power": (f"/api/v1/powers/{fx.power_id}", f"/raw/powers/{fx.power_id}", "/bare/power"),
        "S2": ("/api/v1/heroes?limit=50", "/raw/heroes?limit=50", "/bare/heroes"),
        "S2 teams": ("/api/v1/teams?limit=50", "/raw/teams?limit=50", "/bare/teams"),
    }
    for scenario, (path, raw, bare) in reads.items():
        if scenario.split()[0] in options.only:
            urls = {"service": service.url + path, "raw": baseline.url + raw}
            compare(scenario, get, 32, {**urls, "bare": baseline.url + bare}, headers=auth)
    if "S3" in options.only:
        new = {"service": "/api/v1/heroes", "raw": "/raw/heroes", "bare": "/bare/heroes"}
        urls = {k: (service if k == "service" else baseline).url + v for k, v in new.items()}
        compare("S3", post, 64, urls, headers=auth, args=[body])
    if "S4" in options.only:
        login = load.command(
            service.url + "/api/v1/auth/login",
            post,
            4,
            options.warmup + options.duration + 2,
            args=[fx.login_form, FORM],
        )
        logins = load.start(login)
        time.sleep(1)
        measure("S4", "service", service.url + hero, get, 32, headers=auth)
        results["S4"]["logins"] = load.finish(logins)
        log(f"[{kind}] S4 logins   {results['S4']['logins'].rps:9.1f} req/s")
    if "S5" in options.only:
        deep_auth = {"Authorization": f"Bearer {fx.deep_token}"}
        first = f"{service.url}/api/v1/heroes?limit={seed.DEEP_LIMIT}"
        measure("S5", "first", first, get, 32, headers=deep_auth)
        measure("S5", "deep", f"{first}&cursor={fx.deep_cursor}", get, 32, headers=deep_auth)
    if "S6" in options.only:
        mixed_args = [fx.token, ",".join(fx.pool_ids)]
        measure("S6", "service", service.url, mixed, 64, options.mixed_duration, args=mixed_args)
    return results
