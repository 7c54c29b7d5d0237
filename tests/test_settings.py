"""Settings: the .env file is read before any setting reads the environment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import redis.utils
from django.conf import settings


def test_every_setting_sees_the_env_file_data_dir_included(tmp_path):
    data_dir = tmp_path / "netia-data"
    env_file = tmp_path / "netia.env"
    env_file.write_text(f"NETIA_DATA_DIR={data_dir}\nBILLING_TRIAL_DAYS=21\n")
    environment = {
        key: value for key, value in os.environ.items() if key not in ("NETIA_DATA_DIR", "BILLING_TRIAL_DAYS")
    }
    environment.update(NETIA_ENV_FILE=str(env_file), DJANGO_SETTINGS_MODULE="netia.settings")

    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "from django.conf import settings; print(settings.DATA_DIR, settings.BILLING_TRIAL_DAYS)",
        ],
        cwd=Path(settings.BASE_DIR),
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert (result.returncode, result.stdout.split()) == (0, [str(data_dir), "21"]), result.stderr


def test_redis_py_uses_hiredis():
    # redis-py takes hiredis (its reply parser and command packer in C) only from a version it supports.
    assert redis.utils.HIREDIS_AVAILABLE
