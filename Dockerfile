# syntax=docker/dockerfile:1
# The Heroes API image: dependencies exactly as poetry.lock pins them, no build tools, a
# non-root user, several workers. README.md (Deploying) explains how to run it.
ARG PYTHON_IMAGE=python:3.11-slim

# --- builder: Poetry resolves nothing here, it installs the lock into /app/.venv ----------
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    POETRY_NO_INTERACTION=1 \
    POETRY_VIRTUALENVS_IN_PROJECT=true \
    POETRY_CACHE_DIR=/tmp/poetry-cache
RUN pip install "poetry==2.5.1"
WORKDIR /app
COPY pyproject.toml poetry.lock ./
# Main group only (no test or lint tools); --no-root because the code is copied, not
# installed. Poetry refuses a lock that no longer matches pyproject.toml.
RUN poetry install --only main --no-root --compile && rm -rf "$POETRY_CACHE_DIR"

# --- runtime: the same Python image, the venv, the code; no Poetry, no pip cache ----------
FROM ${PYTHON_IMAGE} AS runtime
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    ENVIRONMENT=production \
    PORT=8000 \
    WEB_CONCURRENCY=2
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --no-create-home --shell /usr/sbin/nologin app
WORKDIR /app
COPY --from=builder /app/.venv /app/.venv
COPY alembic.ini ./
COPY alembic/ alembic/
COPY project/ project/
COPY scripts/ scripts/
# The code stays root-owned and read-only to the user that runs it.
USER app
EXPOSE 8000
# /health/ready: the database answers and the pool has room. No curl in a slim image. /health/
# answers any Host, so ALLOWED_HOSTS need not name 127.0.0.1.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(f\"http://127.0.0.1:{os.environ.get('PORT', '8000')}/health/ready\", timeout=4)"]
CMD ["/app/scripts/start.sh"]
