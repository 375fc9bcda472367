#!/bin/sh
# Starts the service: migrate when RUN_MIGRATIONS=true, then serve with WEB_CONCURRENCY
# workers. The container image runs this (Dockerfile CMD) and tests/test_deploy.py runs the
# same file natively, so what the tests prove is what the image does.
set -eu
cd "$(dirname "$0")/.."

# A bad setting (the development key in production, say) stops the start here, with a
# message, rather than in every worker, which the server would restart again and again.
python -m project check-settings

if [ "${RUN_MIGRATIONS:-false}" = "true" ]; then
    # Once per start, before the workers fork. Replicas starting together are safe:
    # alembic/env.py makes migrators queue on a PostgreSQL advisory lock.
    python -m alembic upgrade head
fi

# prometheus_client's multiprocess mode: each worker writes its metrics into this
# directory and /metrics adds them up. It must start empty, so each start gets its own.
if [ -n "${PROMETHEUS_MULTIPROC_DIR:-}" ]; then
    mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
    find "$PROMETHEUS_MULTIPROC_DIR" -maxdepth 1 -name '*.db' -delete
else
    PROMETHEUS_MULTIPROC_DIR=$(mktemp -d "${TMPDIR:-/tmp}/heroes-metrics.XXXXXX")
fi
export PROMETHEUS_MULTIPROC_DIR

# exec: uvicorn becomes this process, so it gets the SIGTERM of `docker stop` and drains.
# Its own lines (startup, shutdown, a worker that died) are JSON like the service's. The
# client's address comes from X-Forwarded-For when the peer is a proxy FORWARDED_ALLOW_IPS
# names (uvicorn's default: the loopback addresses).
exec python -m uvicorn project.app:app \
    --log-config scripts/uvicorn-logging.json \
    --host "${HOST:-0.0.0.0}" \
    --port "${PORT:-8000}" \
    --workers "${WEB_CONCURRENCY:-2}" \
    --timeout-graceful-shutdown "${GRACEFUL_SHUTDOWN_SECONDS:-30}" \
    --no-server-header \
    --proxy-headers \
    --forwarded-allow-ips "${FORWARDED_ALLOW_IPS:-127.0.0.1,::1}"
