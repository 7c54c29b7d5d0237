"""Test settings: the project's settings in local-development mode.

Settings default to production (DJANGO_DEBUG off, secrets and servers required); the suite runs in local
mode unless the environment says otherwise, so `pytest` works from a fresh clone. Tests of the production
configuration start their own processes with their own environment (tests/test_production_settings.py).
"""

import os

os.environ.setdefault("DJANGO_DEBUG", "true")

from netia.settings import *  # noqa: F403

# A password is hashed in microseconds instead of ~0.6 s (PBKDF2's 1,000,000 iterations): staff fixtures set
# one and the sign-in throttle test checks several. The tests are about signing in, not about the hash's cost;
# production keeps Django's default hashers.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
