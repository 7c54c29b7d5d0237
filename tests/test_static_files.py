"""Every static file the templates and the API docs name is served as `make run` serves it, and is
fingerprinted and compressed by the production storage."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.staticfiles import finders
from django.core.management import call_command
from django.template import engines
from django.templatetags.static import static
from django.test import override_settings

STATIC_TAG = re.compile(r"""{%\s*static\s+["']([^"']+)["']""")
# What the API docs pages load (drf-spectacular builds these URLs in its views, not with the template tag).
DOCS_ASSETS = {
    "drf_spectacular_sidecar/swagger-ui-dist/swagger-ui.css",
    "drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js",
    "drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-standalone-preset.js",
    "drf_spectacular_sidecar/swagger-ui-dist/favicon-32x32.png",
    "drf_spectacular_sidecar/redoc/bundles/redoc.standalone.js",
}


def _template_static_paths() -> set[str]:
    """Every literal `{% static "…" %}` path in the templates of the project and its installed apps."""
    paths: set[str] = set()
    for directory in engines["django"].template_dirs:
        for template in Path(directory).rglob("*"):
            if template.is_file() and template.suffix in (".html", ".txt", ".js", ".xml"):
                paths |= set(STATIC_TAG.findall(template.read_text(errors="replace")))
    return paths


TEMPLATE_PATHS = _template_static_paths()


def test_the_templates_name_the_admins_static_files():
    assert {"admin/css/base.css", "admin/js/theme.js", "admin/js/nav_sidebar.js"} <= TEMPLATE_PATHS


def test_make_run_settings_serve_static_files_from_the_apps_without_collectstatic():
    """`make run` (DJANGO_DEBUG=true, as the suite runs) serves through WhiteNoise from the apps' directories."""
    assert settings.WHITENOISE_USE_FINDERS is True
    assert "whitenoise.middleware.WhiteNoiseMiddleware" in settings.MIDDLEWARE


@pytest.mark.parametrize("path", sorted(TEMPLATE_PATHS | DOCS_ASSETS))
def test_each_static_path_is_found_and_served(client, path):
    response = client.get(static(path))
    found = finders.find(path)

    assert isinstance(found, str)
    assert response.status_code == 200
    assert response.headers["Content-Length"] == str(Path(found).stat().st_size)


def test_a_missing_static_file_is_a_404(client):
    assert client.get(static("admin/css/no-such-file.css")).status_code == 404


def test_production_storage_fingerprints_and_compresses_every_path(tmp_path):
    """What the Docker image's `collectstatic` builds: hashed names in the manifest, a .gz beside each."""
    storages = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
    }
    with override_settings(STATIC_ROOT=tmp_path, STORAGES=storages):
        call_command("collectstatic", "--noinput", verbosity=0)
        urls = {path: static(path) for path in TEMPLATE_PATHS | DOCS_ASSETS}

    manifest = json.loads((tmp_path / "staticfiles.json").read_text())["paths"]
    for path, url in urls.items():
        hashed = manifest[path]
        assert re.fullmatch(re.escape(path.rsplit(".", 1)[0]) + r"\.[0-9a-f]{12}\." + path.rsplit(".", 1)[1], hashed)
        assert url == f"/static/{hashed}"
        assert (tmp_path / hashed).is_file()
    # WhiteNoise keeps a .gz only where it saves space; these are the big ones every page loads.
    for path in ("admin/css/base.css", *(p for p in DOCS_ASSETS if not p.endswith(".png"))):
        assert (tmp_path / f"{manifest[path]}.gz").stat().st_size < (tmp_path / manifest[path]).stat().st_size / 2
