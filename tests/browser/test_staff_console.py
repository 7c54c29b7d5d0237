"""What a browser sees of the staff console and the API docs: styled, whole, and served by the platform alone."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
from playwright.sync_api import Page

from tenants.models import User
from tests.browser.conftest import LiveNetia

STAFF_EMAIL = "browser-staff@netia.test"
STAFF_PASSWORD = "a-long-browser-test-password-7"
# The admin theme's header (base.css: --header-bg: var(--secondary) = #417690); unstyled it is transparent.
ADMIN_HEADER_BG = "rgb(65, 118, 144)"
ADMIN_CORE_ASSETS = {"/static/admin/css/base.css", "/static/admin/js/theme.js", "/static/admin/js/nav_sidebar.js"}


@pytest.fixture
def staff(db: None) -> Iterator[User]:
    user = User.objects.create_user(STAFF_EMAIL, STAFF_PASSWORD, is_staff=True, is_superuser=True)
    yield user
    user.delete()


def header_background(page: Page) -> str:
    return page.eval_on_selector("#header", "el => getComputedStyle(el).backgroundColor")


def test_staff_signs_in_and_sees_a_styled_console(page, network, staff, tenant, screenshot):
    page.goto("/admin/")
    page.fill("#id_username", STAFF_EMAIL)
    page.fill("#id_password", STAFF_PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url("**/admin/")
    index_header = header_background(page)
    apps = page.locator("#content-main .module caption a").all_text_contents()
    screenshot(page, "index")

    page.click("#content-main a[href='/admin/tenants/tenant/']")
    page.wait_for_url("**/admin/tenants/tenant/")
    listed = page.locator("#result_list tbody th a").all_inner_texts()
    list_header = header_background(page)
    screenshot(page, "tenant-list")

    page.click(f"#result_list a:text-is('{tenant.name}')")
    page.wait_for_url(f"**/admin/tenants/tenant/{tenant.pk}/change/")
    name_field = page.input_value("#id_name")
    detail_header = header_background(page)
    screenshot(page, "tenant")

    assert [index_header, list_header, detail_header] == [ADMIN_HEADER_BG] * 3
    assert apps == [
        "Tenants and accounts",
        "Billing",
        "Webhooks",
        "Staff",
        "Authentication and Authorization",
        "Axes",
        "Djstripe",
    ]
    assert tenant.name in listed
    assert name_field == tenant.name
    assert network.asset_paths() >= ADMIN_CORE_ASSETS
    assert network.bad_assets() == []
    assert network.off_platform() == []


def _operations(live_netia: LiveNetia) -> set[tuple[str, str]]:
    """(first tag, operationId) of every operation in the OpenAPI document the docs pages load."""
    schema = requests.get(live_netia("/api/v1/schema"), headers={"Accept": "application/json"}, timeout=10).json()
    return {
        (operation["tags"][0], operation["operationId"])
        for operations in schema["paths"].values()
        for operation in operations.values()
        if isinstance(operation, dict) and "operationId" in operation
    }


def test_swagger_ui_renders_every_operation_from_the_platform_alone(page, network, live_netia, screenshot):
    expected = _operations(live_netia)

    page.goto("/api/v1/docs")
    page.wait_for_selector(".swagger-ui .opblock")
    rendered = page.eval_on_selector_all(".swagger-ui .opblock", "blocks => blocks.map(b => b.id)")
    title = page.inner_text(".swagger-ui .info .title")
    screenshot(page, "swagger")

    assert len(expected) > 10
    assert sorted(rendered) == sorted(f"operations-{tag}-{operation_id}" for tag, operation_id in expected)
    assert title.startswith("Netia API")
    assert {
        "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui.css",
        "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js",
        "/api/v1/docs",  # its start-up script, a request of its own (no inline script)
    } <= network.asset_paths()
    assert network.bad_assets() == []
    assert network.off_platform() == []
    assert network.blocked_by_csp() == []


def test_redoc_renders_every_operation_from_the_platform_alone(page, network, live_netia, screenshot):
    expected = _operations(live_netia)

    page.goto("/api/v1/redoc")
    page.wait_for_selector("[data-section-id^='tag/']")
    rendered = page.eval_on_selector_all(
        "[data-section-id*='/operation/']", "sections => sections.map(s => s.dataset.sectionId)"
    )
    screenshot(page, "redoc")

    assert sorted(rendered) == sorted(f"tag/{tag}/operation/{operation_id}" for tag, operation_id in expected)
    assert "/static/drf_spectacular_sidecar/redoc/bundles/redoc.standalone.js" in network.asset_paths()
    assert network.bad_assets() == []
    assert network.off_platform() == []
    # ReDoc always shows its vendor's logo from a CDN; the page's policy stops it inside the browser.
    assert network.blocked_by_csp() == ["https://cdn.redoc.ly/redoc/logo-mini.svg"]


def test_the_network_log_catches_a_missing_stylesheet_and_an_outside_script_the_csp_stops(page, network, live_netia):
    missing = live_netia("/static/admin/css/no-such-file.css")
    page.goto("/admin/login/")  # a page of the platform's origin, so the browser reports the 404 as such
    network.clear()
    page.set_content(f'<link rel="stylesheet" href="{missing}"><script src="https://cdn.example.com/x.js"></script>')
    page.wait_for_load_state("networkidle")

    assert [url for url, _ in network.bad_assets()] == [missing, "https://cdn.example.com/x.js"]
    # Every page carries the platform's Content-Security-Policy: the outside script never leaves the browser.
    assert network.blocked_by_csp() == ["https://cdn.example.com/x.js"]
    assert network.off_platform() == []
