# The Amur image: one image, one role per container (`amur run connectors|processors|sinks`).
# docker-compose.yml wires the roles to Kafka and PostgreSQL through AMUR_* variables.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Sources before config: editing config/ (or mounting it, as docker-compose.yml does)
# must not reinstall spaCy and the model.
COPY pyproject.toml README.md ./
COPY pipeline ./pipeline
COPY connectors ./connectors
COPY processors ./processors
COPY sinks ./sinks
RUN pip install ".[model,postgres]"

# Relative paths in config/amur.yaml (gazetteer, var/feeds) resolve against /app.
COPY config ./config
RUN useradd --create-home --uid 10001 amur \
    && mkdir -p /app/var \
    && chown amur /app/var
USER amur

ENTRYPOINT ["amur"]
CMD ["run"]
