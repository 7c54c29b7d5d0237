# Netia web and worker image: slim, non-root, gunicorn.
FROM python:3.11-slim AS base

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DJANGO_SETTINGS_MODULE=netia.settings \
    DJANGO_DEBUG=false \
    PROMETHEUS_MULTIPROC_DIR=/tmp/netia-metrics \
    PORT=8000

RUN apt-get update \
    && apt-get install -y --no-install-recommends curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 netia

WORKDIR /app
COPY requirements.txt .
RUN pip install -r requirements.txt

COPY --chown=netia:netia . .
# collectstatic needs settings to load; these placeholders never reach a running container.
RUN DJANGO_SECRET_KEY=build NETIA_ENCRYPTION_KEYS=MDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDA= \
    DATABASE_URL=postgres://build@localhost/build REDIS_URL=redis://localhost:6379/0 \
    python manage.py collectstatic --noinput

USER netia
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD curl -fsS "http://127.0.0.1:${PORT}/api/v1/health" || exit 1

CMD ["gunicorn", "netia.wsgi:application", "--config", "gunicorn.conf.py"]
