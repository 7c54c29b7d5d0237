"""factory-boy factories for the billing app's models that tests build directly."""

from __future__ import annotations

import factory

from billing.models import Plan


class PlanFactory(factory.django.DjangoModelFactory[Plan]):
    """A plan without a Stripe price; limits as given (None: unlimited)."""

    class Meta:
        model = Plan

    code = factory.Sequence(lambda n: f"plan{n}")
    name = factory.LazyAttribute(lambda plan: plan.code.title())
    ai_replies_per_month = 1000
