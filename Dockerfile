# inventory: the sync daemon (`inventory run`) and its one-shot commands (`inventory db upgrade`).
#   docker build -t inventory .
#   docker run --rm inventory --help
# Configuration: INVENTORY_* variables, /app/inventory.toml, and Docker secrets in /run/secrets.
# Every dependency is pinned with its hashes (requirements/*.lock, from `python3 dev.py lock`);
# the base image is pinned to an exact Python and Debian release (add `@sha256:…` to pin bytes).

FROM python:3.11.14-slim-bookworm AS build
WORKDIR /src
COPY requirements/build.lock ./requirements/
RUN pip install --no-cache-dir --require-hashes -r requirements/build.lock
COPY pyproject.toml README.md LICENSE ./
COPY migrations ./migrations
# inventory/_migrations links to ../migrations: the wheel carries the Alembic scripts.
COPY inventory ./inventory
RUN pip wheel --no-cache-dir --no-deps --no-build-isolation --wheel-dir /wheels .

FROM python:3.11.14-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    INVENTORY_LOG_FORMAT=json \
    INVENTORY_METRICS_ADDRESS=0.0.0.0:9108 \
    INVENTORY_SECRETS_DIR=/run/secrets
RUN useradd --system --uid 10001 --user-group --home-dir /app --shell /usr/sbin/nologin inventory
COPY requirements/runtime.lock /tmp/runtime.lock
RUN pip install --no-cache-dir --require-hashes -r /tmp/runtime.lock \
 && rm /tmp/runtime.lock
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-deps --no-index /wheels/inventory-*.whl \
 && rm -rf /wheels
WORKDIR /app
# Not root. Only Docker Compose starts its services as root, with `inventory-entrypoint`, which
# copies the file secrets Compose mounts with the host's owner and mode, then drops to this user.
USER inventory
EXPOSE 9108
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-m", "inventory.daemon.health"]
ENTRYPOINT ["inventory"]
CMD ["run"]
