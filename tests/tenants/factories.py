"""factory-boy factories for the tenants app's models that tests build directly.

Tenants themselves are created by the onboarding service (their schema is cloned), never by a factory.
"""

from __future__ import annotations

from typing import Any

import factory

from tenants.models import User


class UserFactory(factory.django.DjangoModelFactory[User]):
    """A person with an unusable password unless one is given (created through the model's manager)."""

    class Meta:
        model = User

    email = factory.Sequence(lambda n: f"user{n}@netia.test")

    @classmethod
    def _create(cls, model_class: type[User], *args: Any, **kwargs: Any) -> User:
        return model_class.objects.create_user(*args, **kwargs)


class StaffFactory(UserFactory):
    """A Netia employee with every permission of the staff console."""

    email = factory.Sequence(lambda n: f"staff{n}@netia.test")
    is_staff = True
    is_superuser = True
