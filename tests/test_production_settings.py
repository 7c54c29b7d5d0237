"""Production is the default: settings refuse to start without their secrets and servers, and pass check --deploy.

Each case starts a fresh Python process with its own environment (settings are read once per process).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(
    (ROOT / ".env").exists(), reason="a local .env would fill in the variables these cases leave out"
)

PRODUCTION = {
    "DJANGO_SECRET_KEY": "k7Vq2-production-like-secret-key-for-the-deploy-check-9fT3xL0pW8mZ4rB6",
    "NETIA_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
    "DATABASE_URL": "postgres://netia@127.0.0.1:5432/netia_deploy_check",
    "REDIS_URL": "redis://127.0.0.1:6379/15",
    "DJANGO_ALLOWED_HOSTS": "netia.example.com",
    "NETIA_PUBLIC_URL": "https://netia.example.com",
}
_CLEARED = ("DJANGO_DEBUG", "DJANGO_SETTINGS_MODULE", *PRODUCTION, "NETIA_TRUSTED_PROXIES", "METRICS_TOKEN")


def run(code: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Run Python code in a new process whose environment is only what a case gives (plus PATH and HOME)."""
    base = {k: v for k, v in os.environ.items() if k not in _CLEARED and not k.startswith("DJANGO_SECURE")}
    base.update(NETIA_DATA_DIR=str(tmp_path / "data"), DJANGO_SETTINGS_MODULE="netia.settings", **env)
    return subprocess.run(  # noqa: S603 - our own interpreter and code
        [sys.executable, "-c", code], cwd=ROOT, env=base, capture_output=True, text=True, timeout=120
    )


SETTINGS = "import django; django.setup(); from django.conf import settings as s; "


def test_debug_is_off_unless_asked_for(tmp_path):
    result = run(SETTINGS + "print(s.DEBUG, s.SESSION_COOKIE_SECURE, s.SECURE_SSL_REDIRECT)", tmp_path, **PRODUCTION)

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "True", "True"]


@pytest.mark.parametrize("missing", ["DJANGO_SECRET_KEY", "NETIA_ENCRYPTION_KEYS", "DATABASE_URL", "REDIS_URL"])
def test_production_refuses_to_start_without_a_required_variable(tmp_path, missing):
    env = {k: v for k, v in PRODUCTION.items() if k != missing}

    result = run("import netia.settings; print('started')", tmp_path, **env)

    assert result.returncode != 0
    assert "started" not in result.stdout
    assert f"DJANGO_DEBUG is off (production) and {missing} is not set" in result.stderr
    # Nothing local was started in its place: no embedded database, no derived encryption key.
    assert not (tmp_path / "data").exists()


def test_local_development_mode_still_starts_with_nothing_configured(tmp_path):
    result = run(SETTINGS + "print(s.DEBUG, s.DATABASES['default']['HOST'])", tmp_path, DJANGO_DEBUG="true")

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", str(tmp_path / "data" / "postgres")]


def test_check_deploy_is_clean_with_production_settings(tmp_path):
    result = run(
        "import sys; from django.core.management import execute_from_command_line; "
        "execute_from_command_line(['manage.py', 'check', '--deploy', '--fail-level', 'WARNING'])",
        tmp_path,
        **PRODUCTION,
        METRICS_TOKEN="m" * 32,
    )

    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout


def test_a_web_worker_loads_no_llm_sdk_until_it_calls_the_llm(tmp_path):
    """The OpenAI SDK (~500 modules, ~22 MB per worker) is imported on the first LLM call, not by the web app."""
    code = (
        "import sys; from netia.wsgi import application; from django.urls import get_resolver; "
        "get_resolver().url_patterns; print(sorted({m.split('.')[0] for m in sys.modules} & {'openai', 'django'}))"
    )

    result = run(code, tmp_path, **PRODUCTION)

    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[-2] == "['django']"
