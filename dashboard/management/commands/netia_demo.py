"""Create (once) the local demo: a staff admin and a demo tenant with a knowledge base; print how to use it."""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand
from django_tenants.utils import tenant_context

from chat.knowledge import knowledge_article_create
from dashboard.demo import (
    DEMO_ADMIN_EMAIL,
    DEMO_ARTICLES,
    DEMO_OWNER_EMAIL,
    DEMO_TENANT_NAME,
    demo_conversations_seed,
)
from tenants.audit import Actor
from tenants.models import Tenant, User
from tenants.selectors import tenant_demo_slug
from tenants.services import login_link_url, tenant_onboard


class Command(BaseCommand):
    help = "Create the local demo admin and tenant if missing, then print the credentials."

    def handle(self, *args: Any, **options: Any) -> None:
        state_file = Path(settings.DATA_DIR) / "demo.json"
        state: dict[str, Any] = json.loads(state_file.read_text()) if state_file.exists() else {}

        if not User.objects.filter(email=DEMO_ADMIN_EMAIL).exists():
            state["admin_password"] = secrets.token_urlsafe(12)
            User.objects.create_superuser(DEMO_ADMIN_EMAIL, state["admin_password"])

        tenant = Tenant.objects.filter(owner_email=DEMO_OWNER_EMAIL, name=DEMO_TENANT_NAME).first()
        if tenant is None:
            result = tenant_onboard(
                name=DEMO_TENANT_NAME, owner_email=DEMO_OWNER_EMAIL, actor=Actor.system("manage.py netia_demo")
            )
            tenant = result.tenant
            state["api_key"] = result.api_key_secret
            with tenant_context(tenant):
                for title, content in DEMO_ARTICLES:
                    knowledge_article_create(tenant=tenant, title=title, content=content)
            demo_conversations_seed(tenant=tenant)

        state_file.parent.mkdir(parents=True, exist_ok=True)
        state_file.write_text(json.dumps(state, indent=2))
        state_file.chmod(0o600)

        base = settings.NETIA_PUBLIC_URL
        owner = User.objects.get(email=DEMO_OWNER_EMAIL)
        sign_in = login_link_url(user=owner, next_path="/portal/", tenant=tenant)
        lines = [
            "",
            f"Netia is running at {base}/",
            f"  Customer portal, signed in as the demo's owner ({DEMO_OWNER_EMAIL}; the link works once,",
            f"    within {settings.SESAME_MAX_AGE // 60} minutes; later, ask for a new one at {base}/login):",
            f"    {sign_in}",
            f"  Demo page:     {base}/demo/{tenant_demo_slug(tenant=tenant)}/",
            f"  Staff console: {base}/admin/",
            f"    login {DEMO_ADMIN_EMAIL} / {state.get('admin_password', '(see .data/demo.json)')}",
            f"  API docs:      {base}/api/v1/docs",
            f"  Health:        {base}/api/v1/health",
            f"  Demo tenant:   {tenant.name} (schema {tenant.schema_name})",
            f"  Chat token:    {tenant.chat_token}",
            f"  API key:       {state.get('api_key', '(shown once at creation)')}",
            "  Try the bot:",
            f"    curl -s {base}/api/v1/chat -H 'Authorization: Bearer {tenant.chat_token}' \\",
            "      -H 'Content-Type: application/json' \\",
            '      -d \'{"session_id": "demo", "message": "When are you open?"}\'',
            "",
        ]
        self.stdout.write("\n".join(lines))
