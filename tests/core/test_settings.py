"""Settings fail fast: production refuses to start without its secrets and services."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GOOD = {
    "ROTA_ENV": "production",
    "SECRET_KEY": "Zq3" + "x7Kp-_9vLmW2" * 5,
    "ALLOWED_HOSTS": "rota.example.org",
    "DATABASE_URL": "postgres://rota@127.0.0.1:5432/rota",
    "REDIS_URL": "redis://127.0.0.1:6379/0",
}


def load_settings(env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in {*GOOD, "DEBUG", "ROTA_DATA_DIR", "SECURE_SSL_REDIRECT"}}
    clean.update(env)
    clean["ROTA_DATA_DIR"] = str(tmp_path)
    clean["DJANGO_SETTINGS_MODULE"] = "portal.settings"
    code = (
        "import django; django.setup(); from django.conf import settings; "
        "print(settings.PROFILE, settings.DATABASES['default']['ENGINE'])"
    )
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=clean, capture_output=True, text=True, timeout=60)


def test_embedded_is_the_default(tmp_path):
    result = load_settings({}, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["embedded", "django.db.backends.sqlite3"]
    assert (tmp_path / "secret_key").stat().st_mode & 0o777 == 0o600


def test_production_with_everything_set(tmp_path):
    result = load_settings(GOOD, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["production", "django.db.backends.postgresql"]


def test_database_url_alone_switches_to_production(tmp_path):
    env = {k: v for k, v in GOOD.items() if k != "ROTA_ENV"}
    assert load_settings(env, tmp_path).stdout.split()[0] == "production"


@pytest.mark.parametrize(
    ("missing", "message"),
    [
        ("SECRET_KEY", "SECRET_KEY must be set"),
        ("ALLOWED_HOSTS", "ALLOWED_HOSTS must list"),
        ("DATABASE_URL", "DATABASE_URL must point"),
        ("REDIS_URL", "REDIS_URL must point"),
    ],
)
def test_production_refuses_to_start_without(tmp_path, missing, message):
    env = {k: v for k, v in GOOD.items() if k != missing}
    result = load_settings(env, tmp_path)
    assert result.returncode != 0
    assert message in result.stderr


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({**GOOD, "SECRET_KEY": "django-insecure-" + "x" * 60}, "SECRET_KEY must be set"),
        ({**GOOD, "SECRET_KEY": "short"}, "SECRET_KEY must be set"),
        ({**GOOD, "SECRET_KEY": "k" * 64}, "SECRET_KEY must be set"),
        ({**GOOD, "DEBUG": "true"}, "DEBUG must be off"),
        ({**GOOD, "DEBUG": "maybe"}, "DEBUG must be a boolean"),
        ({"ROTA_ENV": "staging"}, "ROTA_ENV must be"),
        ({"ROTA_SCHED_MIN_RUN_SECONDS": "soon"}, "ROTA_SCHED_MIN_RUN_SECONDS must be a number"),
        ({**GOOD, "REDIS_URL": "redis://127.0.0.1:6379/cache"}, "REDIS_URL must select a numbered database"),
        ({"ROTA_CONTAINER_STOP_GRACE_SECONDS": "-1"}, "ROTA_CONTAINER_STOP_GRACE_SECONDS must be at least 0, got -1"),
        ({"ROTA_CONTAINER_STOP_GRACE_SECONDS": "1.5"}, "ROTA_CONTAINER_STOP_GRACE_SECONDS must be an integer"),
    ],
)
def test_bad_values_are_rejected_with_a_clear_message(tmp_path, env, message):
    result = load_settings(env, tmp_path)
    assert result.returncode != 0
    assert message in result.stderr


def test_production_fans_events_out_by_redis_pubsub_apart_per_database(tmp_path):
    """Pub/sub channels are shared by every database of a Redis server: names carry the number."""
    code = "import django; django.setup(); from django.conf import settings; print(settings.CHANNEL_LAYERS)"
    seen = []
    for url in ("redis://127.0.0.1:6379/3", "redis://127.0.0.1:6379?db=7", "redis://127.0.0.1:6379"):
        env = {k: v for k, v in os.environ.items() if k not in {*GOOD, "DEBUG", "SECURE_SSL_REDIRECT"}}
        env.update(GOOD, REDIS_URL=url, ROTA_DATA_DIR=str(tmp_path), DJANGO_SETTINGS_MODULE="portal.settings")
        result = subprocess.run(
            [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stderr
        seen.append(result.stdout.strip())
    assert seen == [
        str(
            {
                "default": {
                    "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
                    "CONFIG": {"hosts": [{"address": url}], "prefix": prefix},
                }
            }
        )
        for url, prefix in (
            ("redis://127.0.0.1:6379/3", "rota.db3."),
            ("redis://127.0.0.1:6379?db=7", "rota.db7."),
            ("redis://127.0.0.1:6379", "rota.db0."),
        )
    ]


def test_check_deploy_is_clean_with_production_env(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in {*GOOD, "DEBUG", "SECURE_SSL_REDIRECT"}}
    env.update(GOOD, ROTA_DATA_DIR=str(tmp_path), DJANGO_SETTINGS_MODULE="portal.settings")
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout
