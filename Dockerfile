# inventory: the sync daemon (`inventory run`) and its one-shot commands (`inventory db upgrade`).
#   docker build -t inventory .
#   docker run --rm inventory --help
# Configuration: INVENTORY_* variables, /app/inventory.toml, and Docker secrets in /run/secrets.

FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY migrations ./migrations
# inventory/_migrations links to ../migrations: the wheel carries the Alembic scripts.
COPY inventory ./inventory
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels . \
 && pip wheel --no-cache-dir --wheel-dir /wheels /wheels/inventory-*.whl

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    INVENTORY_LOG_FORMAT=json \
    INVENTORY_METRICS_ADDRESS=0.0.0.0:9108 \
    INVENTORY_SECRETS_DIR=/run/secrets
RUN useradd --system --uid 10001 --user-group --home-dir /app --shell /usr/sbin/nologin inventory
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links /wheels inventory \
 && rm -rf /wheels
WORKDIR /app
USER inventory
EXPOSE 9108
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-m", "inventory.health"]
ENTRYPOINT ["inventory"]
CMD ["run"]
