"""Operations endpoints: health (healthy and failing answers) and Prometheus metrics."""

from __future__ import annotations

import pytest

UNREACHABLE_REDIS = "redis://127.0.0.1:1/0"


def test_health_is_200_with_every_component_ok(client, db):
    response = client.get("/api/v1/health")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["failing"] == []
    assert {name: c["status"] for name, c in body["components"].items()} == {
        "database": "ok",
        "cache": "ok",
        "broker": "ok",
    }


def test_health_is_503_naming_the_cache_when_redis_is_unreachable(client, db, settings):
    settings.CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": UNREACHABLE_REDIS,
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.5, "SOCKET_TIMEOUT": 0.5},
        }
    }

    response = client.get("/api/v1/health")

    assert response.status_code == 503
    body = response.json()
    assert (body["status"], body["failing"]) == ("unhealthy", ["cache"])
    assert body["components"]["cache"]["status"] == "error"
    assert body["components"]["database"]["status"] == "ok"


def test_health_is_503_naming_the_broker_when_it_is_unreachable(client, db, settings):
    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.CELERY_BROKER_URL = UNREACHABLE_REDIS

    response = client.get("/api/v1/health")

    assert response.status_code == 503
    assert response.json()["failing"] == ["broker"]


def test_metrics_expose_prometheus_counters_including_database_queries(client, db, settings):
    settings.METRICS_TOKEN = "s3cret-token"
    client.get("/api/v1/health")

    response = client.get("/api/v1/metrics", HTTP_AUTHORIZATION="Bearer s3cret-token")

    assert response.status_code == 200
    text = response.content.decode()
    assert 'django_http_requests_total_by_method_total{method="GET"}' in text
    assert 'django_db_execute_total{alias="default",vendor="postgresql"}' in text


@pytest.mark.parametrize(("header", "status"), [("", 401), ("Bearer wrong", 401), ("Bearer s3cret-token", 200)])
def test_metrics_require_the_token_when_configured(client, db, settings, header, status):
    settings.METRICS_TOKEN = "s3cret-token"

    response = client.get("/api/v1/metrics", HTTP_AUTHORIZATION=header)

    assert response.status_code == status


@pytest.mark.parametrize(("debug", "status"), [(False, 401), (True, 200)])
def test_metrics_without_a_token_are_closed_in_production_and_open_locally(client, db, settings, debug, status):
    settings.METRICS_TOKEN = ""
    settings.DEBUG = debug

    response = client.get("/api/v1/metrics")

    assert response.status_code == status
    if not debug:
        assert response.json()["error"] == {
            "code": "unauthenticated",
            "message": "Set METRICS_TOKEN to read the metrics.",
            "details": {},
        }


def test_unknown_api_path_is_a_json_404(client, db):
    response = client.get("/api/v1/nope")

    assert response.status_code == 404
    assert response.json() == {"error": {"code": "not_found", "message": "Not found.", "details": {}}}


def test_oversized_api_body_is_a_json_413(client, db, settings):
    settings.API_MAX_BODY_BYTES = 100

    response = client.post("/api/v1/health", data="x" * 101, content_type="application/json")

    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
