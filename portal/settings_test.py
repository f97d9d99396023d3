"""Settings for the test suite: the active profile's settings plus fast, deterministic knobs.

The profile (embedded SQLite or production Postgres + Redis) still comes from the environment,
so the same suite runs against both (see ``scripts/test``).
"""

import atexit
import os
import shutil
import tempfile
from pathlib import Path

if not os.environ.get("ROTA_DATA_DIR"):
    _tmp = tempfile.mkdtemp(prefix="rota-test-")
    os.environ["ROTA_DATA_DIR"] = _tmp
    atexit.register(shutil.rmtree, _tmp, ignore_errors=True)

from portal.settings import *  # noqa: F403
from portal.settings import PRODUCTION, REDIS_URL, redis_database

STATIC_ROOT = Path(os.environ["ROTA_DATA_DIR"]) / "static"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# Passes triggered by events run on commit in the caller's thread: tests see their effects at once.
ROTA_TASK_RUNNER = "inline"
ROTA_TEST_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "main")
# Dashboards show current queue counts in tests (the cached summary is tested on its own).
ROTA_QUEUE_SUMMARY_SECONDS = 0
# The suite runs jobs of made-up users, as root in CI: let them run as the server's user (the tests
# of the production default, "refuse", set it themselves).
ROTA_LOCAL_UNMAPPED_OWNERS = "run-as-server"

if not PRODUCTION:
    # A file, not SQLite's shared-cache memory database: tests run real passes in threads (the
    # live server, the scheduler and launcher loops), and shared-cache mode has table locks that
    # ignore the busy timeout.
    DATABASES["default"]["TEST"] = {"NAME": str(Path(os.environ["ROTA_DATA_DIR"]) / "test.sqlite3")}  # noqa: F405

if PRODUCTION:
    # The production channel layer (Redis pub/sub), with a prefix per xdist worker and Redis database so
    # parallel tests never see each other's messages (pub/sub channels span a server's databases).
    # Not channels_redis.core's RedisChannelLayer: it allows one event loop to receive at a time per
    # process, and the suite has several (each async test's, the test ASGI server's): a receive left
    # pending on a closed loop made every later websocket test of that worker fail ("Two event loops
    # are trying to receive() on one channel layer at once!"). The pub/sub layer keeps one connection
    # per event loop, as daphne and the worker do in production.
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {
                "hosts": [{"address": REDIS_URL}],
                "prefix": f"rota-test.db{redis_database(REDIS_URL)}.{ROTA_TEST_WORKER}.",
            },
        }
    }
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": f"rota-test-{ROTA_TEST_WORKER}",
        }
    }
