# syntax=docker/dockerfile:1
# dd0c/alert production image: one image, one role per container (the command picks
# the role: migrate, ingest, correlate, api, cron, or serve for all in one).
FROM python:3.11-slim AS build
# The same uv as the Makefile, so the image installs exactly what uv.lock pins.
ARG UV_VERSION=0.13.9
RUN pip install --no-cache-dir --disable-pip-version-check "uv==${UV_VERSION}"
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv
WORKDIR /src
# Dependencies first: this layer is rebuilt only when the lock changes.
COPY pyproject.toml uv.lock ./
RUN uv sync --frozen --no-dev --extra otel --no-install-project
COPY README.md LICENSE ./
COPY src ./src
# --no-editable: the package itself goes into the venv, so /src is not needed at run time.
# The otel extra: traces are switched on by OTEL_EXPORTER_OTLP_ENDPOINT (docs/operations.md).
RUN uv sync --frozen --no-dev --extra otel --no-editable

FROM python:3.11-slim
RUN groupadd --system --gid 10001 dd0c \
    && useradd --system --uid 10001 --gid dd0c --home-dir /var/lib/dd0c --create-home dd0c
COPY --from=build /app/.venv /app/.venv
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    DD0C_DATA_DIR=/var/lib/dd0c
WORKDIR /var/lib/dd0c
USER dd0c
EXPOSE 8080 8081
# Health checks differ per role (HTTP for ingest/api), so docker-compose.yml sets them.
ENTRYPOINT ["dd0c-alert"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8080"]
