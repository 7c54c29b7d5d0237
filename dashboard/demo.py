"""The demo tenant `make run` creates once: a small bakery with a knowledge base the bot can answer from."""

from __future__ import annotations

DEMO_TENANT_NAME = "Demo Bakery"
DEMO_OWNER_EMAIL = "owner@demo-bakery.example"
DEMO_ADMIN_EMAIL = "admin@netia.localhost"

DEMO_ARTICLES: list[tuple[str, str]] = [
    (
        "Opening hours",
        "Demo Bakery is open Monday to Friday from 7:00 to 19:00, Saturday from 8:00 to 14:00. "
        "We are closed on Sundays and public holidays.",
    ),
    (
        "Location and parking",
        "You will find us at 12 Baker Street, next to the central market. "
        "Free parking is available behind the shop for 30 minutes.",
    ),
    (
        "Prices",
        "A sourdough loaf costs 4.50 euros, croissants cost 1.80 euros each and a dozen assorted pastries "
        "cost 18 euros. Celebration cakes start at 35 euros.",
    ),
    (
        "Custom cakes and orders",
        "Custom celebration cakes must be ordered at least 48 hours in advance. "
        "Leave your name, phone number and the date you need the cake, and we will call you back.",
    ),
    (
        "Delivery",
        "We deliver within 5 km of the shop from Tuesday to Saturday. Delivery costs 3 euros and is free "
        "for orders above 30 euros.",
    ),
    (
        "Allergens",
        "All our bread contains gluten. We bake a gluten-free loaf on Fridays, but it is made in a kitchen "
        "that also handles wheat, nuts and sesame.",
    ),
]
