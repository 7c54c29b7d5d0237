"""`manage.py netia_demo` (run by `make run`): the demo business with a week of chats, its demo page, and a
ready sign-in link for its owner."""

from __future__ import annotations

import re
from io import StringIO
from urllib.parse import urlsplit

from django.core.management import call_command
from django.test import Client

from dashboard.demo import DEMO_CHATS
from tenants.models import Tenant


def test_the_demo_prints_a_working_sign_in_link_and_demo_page(db, session_tenants, settings, tmp_path):
    settings.NETIA_PUBLIC_URL = "http://netia.test"
    settings.DATA_DIR = tmp_path
    out = StringIO()

    call_command("netia_demo", stdout=out)

    text = out.getvalue()
    link = re.search(r"http://netia\.test(/login/link\?\S+)", text).group(1)
    demo = re.search(r"Demo page: +http://netia\.test(/demo/[a-z0-9-]+/)", text).group(1)
    client = Client()
    assert b"Demo Bakery" in client.get(demo).content
    token = dict(p.split("=", 1) for p in urlsplit(link).query.split("&"))["token"]
    assert client.get(link).status_code == 200
    signed_in = client.post("/login/link", {"token": token, "next": "/portal/"})
    assert (signed_in.status_code, signed_in["Location"]) == (302, "/portal/")
    figures = client.get("/portal/?days=7").context["figures"]
    assert figures.conversations == len(DEMO_CHATS)
    assert sum(1 for d in figures.conversations_per_day if d.count) == 7
    assert figures.handoffs_by_reason == [("visitor_asked_for_human", 1)]
    assert figures.new_leads >= 1

    again = StringIO()
    call_command("netia_demo", stdout=again)
    assert Tenant.objects.filter(name="Demo Bakery").count() == 1
    assert re.search(r"/login/link\?\S+", again.getvalue()).group(0) != link
