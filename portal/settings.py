"""Rota settings: one module, two profiles, everything from the environment.

Embedded profile (the default, nothing configured): SQLite in ``ROTA_DATA_DIR``, the in-memory
channel layer, background passes run inside the server process, the ``local`` backend.

Production profile (``ROTA_ENV=production``, or ``DATABASE_URL`` / ``REDIS_URL`` set): Postgres,
Redis for Channels and as the django-q2 broker. It refuses to start without ``SECRET_KEY`` and
``ALLOWED_HOSTS`` and turns on every ``check --deploy`` protection.

Every variable is documented in ``.env.example``.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


# --- small typed helpers ------------------------------------------------------------------------


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default).strip()


def env_bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (true/false), got {raw!r}")


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be an integer, got {raw!r}") from exc


def env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be a number, got {raw!r}") from exc


def env_list(name: str, default: list[str] | None = None) -> list[str]:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return list(default or [])
    return [item.strip() for item in raw.split(",") if item.strip()]


def redis_database(url: str) -> int:
    """The database number a Redis URL selects (``redis://host:6379/3``, ``?db=3``; 0 if none)."""
    parts = urlsplit(url)
    raw = parse_qs(parts.query).get("db", [""])[0] or parts.path.strip("/") or "0"
    if not raw.isdigit():
        raise ImproperlyConfigured(f"REDIS_URL must select a numbered database, got {url!r}")
    return int(raw)


# --- profile ------------------------------------------------------------------------------------

ROTA_ENV = env_str("ROTA_ENV", "")
if ROTA_ENV not in {"", "embedded", "production"}:
    raise ImproperlyConfigured(f"ROTA_ENV must be 'embedded' or 'production', got {ROTA_ENV!r}")
DATABASE_URL = env_str("DATABASE_URL")
REDIS_URL = env_str("REDIS_URL")
PRODUCTION = ROTA_ENV == "production" or (ROTA_ENV != "embedded" and bool(DATABASE_URL or REDIS_URL))
PROFILE = "production" if PRODUCTION else "embedded"

DATA_DIR = Path(env_str("ROTA_DATA_DIR", str(BASE_DIR / "var"))).resolve()

DEBUG = env_bool("DEBUG", default=not PRODUCTION)

if PRODUCTION:
    SECRET_KEY = env_str("SECRET_KEY")
    if len(SECRET_KEY) < 50 or len(set(SECRET_KEY)) < 5 or SECRET_KEY.startswith("django-insecure"):
        raise ImproperlyConfigured(
            "SECRET_KEY must be set to a random string of at least 50 characters in production "
            "(generate one with: python -c 'import secrets; print(secrets.token_urlsafe(64))')"
        )
    ALLOWED_HOSTS = env_list("ALLOWED_HOSTS")
    if not ALLOWED_HOSTS:
        raise ImproperlyConfigured("ALLOWED_HOSTS must list the host names Rota is served on in production")
    if not DATABASE_URL:
        raise ImproperlyConfigured("DATABASE_URL must point at PostgreSQL in production")
    if not REDIS_URL:
        raise ImproperlyConfigured("REDIS_URL must point at Redis in production")
    if DEBUG:
        raise ImproperlyConfigured("DEBUG must be off in production")
else:
    # The embedded profile runs on one machine for one team; a stable per-install key is kept in
    # the data directory so sessions survive restarts.
    SECRET_KEY = env_str("SECRET_KEY")
    if not SECRET_KEY:
        DATA_DIR.mkdir(parents=True, exist_ok=True)
        key_file = DATA_DIR / "secret_key"
        if not key_file.exists():
            import secrets

            key_file.write_text(secrets.token_urlsafe(64))
            key_file.chmod(0o600)
        SECRET_KEY = key_file.read_text().strip()
    ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"])

CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

# --- applications -------------------------------------------------------------------------------

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "django_prometheus",
    "drf_spectacular_sidecar",  # Swagger UI and Redoc served from here, not a CDN
    "channels",
    "django_q",
    "axes",
    "csp",
    # django-htmx is used for its middleware and HX-* helpers only (apps/core/htmx.py): not an
    # installed app, so its own copies of htmx stay out of the static files (ours is vendored).
    "apps.core",
    "apps.accounts",
    "apps.cluster",
    "apps.quotas",
    "apps.experiments",
    "apps.scheduler",
    "apps.launcher",
    "apps.containers",
    "apps.web",
    "apps.notifications",
    "discussion",
    "monitor",
]

MIDDLEWARE = [
    # First: probes come by pod IP over plain HTTP (no ALLOWED_HOSTS check, no HTTPS redirect).
    "apps.core.health.HealthMiddleware",
    "apps.web.metrics.MetricsMiddleware",  # /metrics: same reasons (Prometheus scrapes pod IPs)
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_htmx.middleware.HtmxMiddleware",  # request.htmx: partial or whole page (apps/core/htmx.py)
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Late, as django-axes asks: a sign-in refused for guessing becomes a 429 (apps/accounts/lockout.py).
    "axes.middleware.AxesMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "portal.urls"
WSGI_APPLICATION = "portal.wsgi.application"
ASGI_APPLICATION = "portal.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "django.template.context_processors.i18n",
            ],
        },
    },
]

# --- data ---------------------------------------------------------------------------------------

if PRODUCTION:
    # Django's psycopg connection pool, bounded, instead of persistent per-thread connections: under
    # ASGI every request runs in a thread of its own, and CONN_MAX_AGE kept one connection per thread
    # open long after the thread was gone (20 clients drove one daphne to 62 connections and PostgreSQL
    # refused everyone). A request now borrows a connection and returns it when it ends; when all are
    # busy it waits up to ROTA_DB_POOL_TIMEOUT seconds. Every process (daphne, rota_worker, each qcluster
    # worker) has its own pool: size them so their sum stays below PostgreSQL's max_connections.
    DB_POOL_MIN_SIZE = env_int("ROTA_DB_POOL_MIN_SIZE", 2)
    DB_POOL_MAX_SIZE = env_int("ROTA_DB_POOL_MAX_SIZE", 20)
    if not 1 <= DB_POOL_MIN_SIZE <= DB_POOL_MAX_SIZE:
        raise ImproperlyConfigured("ROTA_DB_POOL_MIN_SIZE must be at least 1 and at most ROTA_DB_POOL_MAX_SIZE")
    # Health checks make the pool replace a connection PostgreSQL dropped instead of handing it out.
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=0, conn_health_checks=True)}
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": DB_POOL_MIN_SIZE,
        "max_size": DB_POOL_MAX_SIZE,
        "timeout": env_float("ROTA_DB_POOL_TIMEOUT", 20.0),
    }
else:
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(DATA_DIR / "rota.sqlite3"),
            # Several threads (server, scheduler and launcher loops) write; WAL and a generous
            # busy timeout keep SQLite's single writer from failing requests.
            "OPTIONS": {
                "timeout": 30,
                "transaction_mode": "IMMEDIATE",
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
        }
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "accounts.User"

if PRODUCTION:
    # Redis pub/sub: a process subscribes once to each group its fan-out (portal/fanout.py) is in,
    # so an event costs one Redis message per (group, process), not one queue push and one
    # blocking pop per socket (which collapsed past ~100 viewers of a job: docs/PERFORMANCE.md).
    # Delivery is at most once, as realtime events are meant to be (pages re-fetch on reconnect).
    # Pub/sub channels are shared by every database of a Redis server, so
    # their names carry the database's number: deployments (and test runs) on one server stay apart.
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [{"address": REDIS_URL}], "prefix": f"rota.db{redis_database(REDIS_URL)}."},
        }
    }
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "portal.layers.EmbeddedChannelLayer"}}  # see portal/layers.py
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# django-q2: Redis broker in production; the database broker in the embedded profile so that
# `manage.py qcluster` works without Redis.
Q_CLUSTER: dict[str, object] = {
    "name": "rota",
    "workers": env_int("ROTA_Q_WORKERS", 2),
    "timeout": 120,
    "retry": 180,
    "max_attempts": 1,
    "catch_up": False,
    "ack_failures": True,
    "save_limit": 500,
}
if PRODUCTION:
    Q_CLUSTER["redis"] = REDIS_URL
    # django-q2's Redis broker whose sentinel status saves also touch ROTA_WORKER_HEARTBEAT_DIR/
    # qcluster: the qcluster container's liveness probe (apps/core/qcluster.py).
    Q_CLUSTER["broker_class"] = "apps.core.qcluster.HeartbeatRedis"
else:
    Q_CLUSTER["orm"] = "default"

# How passes triggered by events run: "django_q" hands them to qcluster workers (production);
# "thread" runs them in a worker thread of the current process (embedded: the in-memory channel
# layer only reaches websockets in the server's own process); "inline" runs them on commit in the
# caller's thread (tests).
ROTA_TASK_RUNNER = env_str("ROTA_TASK_RUNNER", "django_q" if PRODUCTION else "thread")
if ROTA_TASK_RUNNER not in {"django_q", "thread", "inline"}:
    raise ImproperlyConfigured("ROTA_TASK_RUNNER must be one of django_q, thread, inline")

# --- auth ---------------------------------------------------------------------------------------

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/login/"

# --- i18n ---------------------------------------------------------------------------------------

LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("zh-hans", "简体中文")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

# --- static -------------------------------------------------------------------------------------

STATIC_URL = "/static/"
# Where collectstatic writes (the image builds it at /app/staticfiles) and whitenoise serves from.
STATIC_ROOT = Path(env_str("ROTA_STATIC_ROOT", str(BASE_DIR / "staticfiles"))).resolve()
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "portal.storage.StaticFilesStorage"  # hashed names, the modules' imports included
            if PRODUCTION
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}

# --- API ----------------------------------------------------------------------------------------

# Password guessing (apps/accounts/lockout.py): django-axes, first among the authentication
# backends, so every door that takes a password (portal, Django admin, API token exchange) counts
# failures per account and per client address, and refuses both for a while past the limit.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env_int("ROTA_SIGNIN_MAX_FAILURES", 10)
AXES_COOLOFF_TIME = timedelta(seconds=env_int("ROTA_SIGNIN_LOCKOUT_SECONDS", 900))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_ON_SUCCESS = True
AXES_USERNAME_CALLABLE = "apps.accounts.lockout.username_of"
AXES_LOCKOUT_CALLABLE = "apps.web.lockout.lockout_response"
AXES_HTTP_RESPONSE_CODE = 429
AXES_VERBOSE = False
AXES_ENABLE_ACCESS_FAILURE_LOG = False
AXES_DISABLE_ACCESS_LOG = True

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "apps.accounts.authentication.BearerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["apps.accounts.permissions.IsActiveUser"],
    # A JSON body is one object, nested a bounded number of levels (apps/core/api/parsers.py).
    "DEFAULT_PARSER_CLASSES": [
        "apps.core.api.parsers.JSONObjectParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "apps.core.api.pagination.PageNumberPagination",
    "PAGE_SIZE": 25,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "apps.core.api.exception_handler.api_exception_handler",
    "DEFAULT_THROTTLE_RATES": {"login": env_str("ROTA_LOGIN_RATE", "20/min")},
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Rota API",
    "DESCRIPTION": "Time-sharing GPU cluster platform. Authenticate with `Authorization: Bearer <token>`.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # The docs pages work without internet: their assets come from drf-spectacular-sidecar.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "apps.core.api.schema.add_error_responses",  # the error statuses every operation can answer
    ],
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "ENUM_NAME_OVERRIDES": {
        "TokenScopeEnum": "apps.accounts.choices.TokenScope",
        "TokenCreateScopeEnum": ["all", "except_jupyter", "read_only"],
        "QuotaKindEnum": "apps.quotas.choices.QuotaKind",
        "EntrypointKindEnum": "apps.experiments.choices.EntrypointKind",
        "ChainStatusEnum": "apps.experiments.choices.ChainStatus",
        "ChainActionEnum": "apps.experiments.choices.ChainAction",
        "NodeStateEnum": "apps.cluster.choices.NodeState",
        "RankStatusEnum": "apps.experiments.choices.RankStatus",
        "WorkerStatusEnum": "apps.experiments.choices.WorkerStatus",
        "QueueStatusEnum": "apps.experiments.choices.QueueStatus",
    },
}

# --- Rota ---------------------------------------------------------------------------------------

ROTA_PUBLIC_URL = env_str("ROTA_PUBLIC_URL", "http://127.0.0.1:8000")
ROTA_LOG_ROOT = Path(env_str("ROTA_LOG_ROOT", str(DATA_DIR / "logs"))).resolve()
ROTA_RUN_ROOT = Path(env_str("ROTA_RUN_ROOT", str(DATA_DIR / "run"))).resolve()
ROTA_BACKEND = env_str("ROTA_BACKEND", "kubernetes" if PRODUCTION else "local")
if ROTA_BACKEND not in {"local", "kubernetes"}:
    raise ImproperlyConfigured("ROTA_BACKEND must be 'local' or 'kubernetes'")

# Accounts and tokens.
ROTA_TOKEN_PREFIX = "rota_"  # noqa: S105 - a prefix, not a secret
ROTA_MAX_UNFINISHED_CHAINS_PER_USER = env_int("ROTA_MAX_UNFINISHED_CHAINS_PER_USER", 1000)

# Scheduler policy: every threshold is a setting (see docs/scheduler.md).
# The dashboard's queue counts (the same for everyone) are computed at most once per this many
# seconds, in the shared cache (apps/web/selectors.py, queue_summary); 0 computes them every time.
ROTA_QUEUE_SUMMARY_SECONDS = env_int("ROTA_QUEUE_SUMMARY_SECONDS", 5)

ROTA_SCHEDULER = {
    "MIN_RUN_SECONDS": env_float("ROTA_SCHED_MIN_RUN_SECONDS", 900.0),
    "TIME_SLICE_SECONDS": env_float("ROTA_SCHED_TIME_SLICE_SECONDS", 21600.0),
    "TIMESHARE_WAIT_SECONDS": env_float("ROTA_SCHED_TIMESHARE_WAIT_SECONDS", 900.0),
    "ABOVE_NORMAL_AGING_SECONDS": env_float("ROTA_SCHED_ABOVE_NORMAL_AGING_SECONDS", 1800.0),
    "FAIRSHARE_HALF_LIFE_SECONDS": env_float("ROTA_SCHED_FAIRSHARE_HALF_LIFE_SECONDS", 3600.0),
    "RESERVATION_WAIT_SECONDS": env_float("ROTA_SCHED_RESERVATION_WAIT_SECONDS", 1800.0),
    "RESERVATION_HOLD_SECONDS": env_float("ROTA_SCHED_RESERVATION_HOLD_SECONDS", 1800.0),
    "RESTART_COST_SECONDS": env_float("ROTA_SCHED_RESTART_COST_SECONDS", 300.0),
    "URGENT_PRIORITY": env_int("ROTA_SCHED_URGENT_PRIORITY", 30),
    "CHECKPOINT_FRESH_SECONDS": env_float("ROTA_SCHED_CHECKPOINT_FRESH_SECONDS", 60.0),
    "CHECKPOINT_WAIT_SECONDS": env_float("ROTA_SCHED_CHECKPOINT_WAIT_SECONDS", 1800.0),
    "TIMESHARE_MAX_RATIO": env_float("ROTA_SCHED_TIMESHARE_MAX_RATIO", 2.0),
    "VICTIM_WAIT_SECONDS": env_float("ROTA_SCHED_VICTIM_WAIT_SECONDS", 600.0),
    "PREEMPT_WAIT_SECONDS": env_float("ROTA_SCHED_PREEMPT_WAIT_SECONDS", 900.0),
    "STARVATION_SECONDS": env_float("ROTA_SCHED_STARVATION_SECONDS", 21600.0),
    "REQUEST_CHECKPOINTS": env_bool("ROTA_SCHED_REQUEST_CHECKPOINTS", True),
    "PASS_INTERVAL_SECONDS": env_float("ROTA_SCHED_PASS_INTERVAL_SECONDS", 2.0),
}
# Days the per-minute load samples behind the scheduler overview's charts are kept
# (apps/scheduler/history.py; the last day at every minute, older days at every tenth).
ROTA_LOAD_HISTORY_DAYS = env_int("ROTA_LOAD_HISTORY_DAYS", 30)
if ROTA_LOAD_HISTORY_DAYS < 1:
    raise ImproperlyConfigured(f"ROTA_LOAD_HISTORY_DAYS must be at least 1, got {ROTA_LOAD_HISTORY_DAYS}")

# Execution.
ROTA_LAUNCHER = {
    "GRACE_SECONDS": env_float("ROTA_SUSPEND_GRACE_SECONDS", 60.0),
    "START_TIMEOUT_SECONDS": env_float("ROTA_START_TIMEOUT_SECONDS", 300.0),
    # Ranks still progressing at the start timeout (pulling a large image) may take this long.
    "PULL_TIMEOUT_SECONDS": env_float("ROTA_PULL_TIMEOUT_SECONDS", 1800.0),
    # Attempts in a row whose ranks do not start before the chain fails with their reasons.
    "START_RETRIES": env_int("ROTA_START_RETRIES", 3),
    # Back-off before the next attempt after one whose ranks did not start: this, doubled each
    # time in a row, at most the cap.
    "START_RETRY_BACKOFF_SECONDS": env_float("ROTA_START_RETRY_BACKOFF_SECONDS", 30.0),
    "START_RETRY_BACKOFF_MAX_SECONDS": env_float("ROTA_START_RETRY_BACKOFF_MAX_SECONDS", 600.0),
    "DEFAULT_WATCHDOG_SECONDS": env_float("ROTA_DEFAULT_WATCHDOG_SECONDS", 1800.0),
    "PASS_INTERVAL_SECONDS": env_float("ROTA_LAUNCHER_PASS_INTERVAL_SECONDS", 1.0 if PRODUCTION else 0.25),
    "LOG_LINE_MAX_BYTES": env_int("ROTA_LOG_LINE_MAX_BYTES", 4096),
    # A log search stops with a 400 after this long (RE2 keeps each line linear; huge logs are not).
    "LOG_SEARCH_SECONDS": env_float("ROTA_LOG_SEARCH_SECONDS", 10.0),
    "MASTER_PORT": env_int("ROTA_MASTER_PORT", 29500),
    # May this process own the cluster (watch, follow logs, reconcile)? One owner at a time, by
    # lease; false for the django-q2 workers, whose reconcile tasks the owner's loop then covers.
    "CLUSTER_OWNER": env_bool("ROTA_CLUSTER_OWNER", default=True),
    # The owner renews its lease well within this; a standby on another host takes over after it.
    "OWNER_LEASE_SECONDS": env_float("ROTA_OWNER_LEASE_SECONDS", 30.0),
}

# The local backend running as root starts each job as its owner's POSIX account (mapped by an
# admin, or this machine's account of the same name). A job whose owner has neither is refused
# ("refuse", the production default) or runs as the server's own user, root, unisolated
# ("run-as-server": a one-person embedded install).
ROTA_LOCAL_UNMAPPED_OWNERS = env_str("ROTA_LOCAL_UNMAPPED_OWNERS", "refuse" if PRODUCTION else "run-as-server")
if ROTA_LOCAL_UNMAPPED_OWNERS not in {"refuse", "run-as-server"}:
    raise ImproperlyConfigured("ROTA_LOCAL_UNMAPPED_OWNERS must be 'refuse' or 'run-as-server'")

# /metrics answers only with "Authorization: Bearer <this>"; empty = no /metrics at all.
ROTA_METRICS_TOKEN = env_str("ROTA_METRICS_TOKEN")
# /readyz?full=1 fails when the last scheduling or reconcile pass is older than this.
ROTA_READY_MAX_PASS_AGE_SECONDS = env_float("ROTA_READY_MAX_PASS_AGE_SECONDS", 120.0)
# rota_worker's loops touch <dir>/<pass> after every pass, and qcluster's guard loop <dir>/qcluster
# every few seconds, so a liveness probe can tell a hung loop from a live one
# (deploy/kubernetes/rota.yaml); empty = no heartbeat files.
ROTA_WORKER_HEARTBEAT_DIR = env_str("ROTA_WORKER_HEARTBEAT_DIR")

# Development containers (apps/containers, docs/containers.md).
ROTA_CONTAINERS: dict[str, Any] = {
    # Each user's containers run in {WORKSPACE_ROOT}/{username} on the local backend.
    "WORKSPACE_ROOT": Path(env_str("ROTA_CONTAINER_WORKSPACE_ROOT", str(DATA_DIR / "workspaces"))).resolve(),
    "RUN_ROOT": Path(env_str("ROTA_CONTAINER_RUN_ROOT", str(DATA_DIR / "containers"))).resolve(),
    "START_TIMEOUT_SECONDS": env_float("ROTA_CONTAINER_START_TIMEOUT_SECONDS", 120.0),
    # A stop, a restart and a restart of one service send the services SIGTERM (JupyterLab shuts
    # its kernels down, a service saves), then SIGKILL what is left after this many seconds: the
    # pods' terminationGracePeriodSeconds (ROTA_STOP_GRACE_SECONDS in their wrapper) on Kubernetes.
    "STOP_GRACE_SECONDS": env_int("ROTA_CONTAINER_STOP_GRACE_SECONDS", 10),
    "NODE_PORT_MIN": env_int("ROTA_CONTAINER_NODE_PORT_MIN", 30000),
    "NODE_PORT_MAX": env_int("ROTA_CONTAINER_NODE_PORT_MAX", 32767),
    # Local backend: each running container with SSH gets a port of this range for its own sshd
    # (freed when it stops), listening on SSH_LISTEN ("127.0.0.1": this machine only; "0.0.0.0":
    # every interface). docs/containers.md, "SSH".
    "SSH_PORT_MIN": env_int("ROTA_CONTAINER_SSH_PORT_MIN", 22000),
    "SSH_PORT_MAX": env_int("ROTA_CONTAINER_SSH_PORT_MAX", 22999),
    "SSH_LISTEN": env_str("ROTA_CONTAINER_SSH_LISTEN", "127.0.0.1"),
    # Host name users ssh to (NodePorts on Kubernetes, the machine locally); empty = the host of
    # ROTA_PUBLIC_URL.
    "SSH_HOST": env_str("ROTA_CONTAINER_SSH_HOST"),
    # Ingress (Kubernetes): a host of its own for containers' HTTP services (a separate origin
    # from the portal; empty = no Ingress, the portal's proxy only), its IngressClass, and where
    # the ingress controller reaches Rota's /containers/auth/ (docs/containers.md, "Ingress").
    "INGRESS_CLASS": env_str("ROTA_CONTAINER_INGRESS_CLASS", "nginx"),
    "INGRESS_HOST": env_str("ROTA_CONTAINER_INGRESS_HOST"),
    "INGRESS_AUTH_URL": env_str("ROTA_CONTAINER_INGRESS_AUTH_URL", f"{ROTA_PUBLIC_URL.rstrip('/')}/containers/auth/"),
    "IDLE_CHECK_SECONDS": env_float("ROTA_CONTAINER_IDLE_CHECK_SECONDS", 60.0),
    # Kubernetes: Prometheus scraping NVIDIA's DCGM exporter, for GPU utilisation as an idle signal
    # (empty = unknown: containers with GPUs are then never stopped as idle), and the query.
    "GPU_METRICS_URL": env_str("ROTA_CONTAINER_GPU_METRICS_URL"),
    "GPU_UTIL_QUERY": env_str("ROTA_CONTAINER_GPU_UTIL_QUERY")
    or 'max(DCGM_FI_DEV_GPU_UTIL{{namespace="{namespace}",pod="{pod}"}})',
    # Kubernetes: the image of containers without an environment (it must have JupyterLab and bash).
    "IMAGE": env_str("ROTA_CONTAINER_IMAGE", "quay.io/jupyter/minimal-notebook:2024-12-09"),
}
if ROTA_CONTAINERS["STOP_GRACE_SECONDS"] < 0:
    raise ImproperlyConfigured(
        f"ROTA_CONTAINER_STOP_GRACE_SECONDS must be at least 0, got {ROTA_CONTAINERS['STOP_GRACE_SECONDS']}"
    )
if ROTA_CONTAINERS["INGRESS_HOST"]:
    if ROTA_CONTAINERS["INGRESS_HOST"] == urlsplit(ROTA_PUBLIC_URL).hostname:
        raise ImproperlyConfigured(
            "ROTA_CONTAINER_INGRESS_HOST must differ from the portal's host: containers are served "
            "from an origin of their own"
        )
    # Only /containers/enter/ is routed to Rota on that host (it sets the container's ticket cookie).
    ALLOWED_HOSTS = [*ALLOWED_HOSTS, ROTA_CONTAINERS["INGRESS_HOST"]]

ROTA_KUBERNETES = {
    "NAMESPACE": env_str("ROTA_K8S_NAMESPACE", "rota-jobs"),
    "IMAGE_PULL_SECRETS": env_list("ROTA_K8S_IMAGE_PULL_SECRETS"),
    "IN_CLUSTER": env_bool("ROTA_K8S_IN_CLUSTER", default=False),
    "KUBECONFIG": env_str("KUBECONFIG"),
    # Connections kept to the API server (urllib3 pool size of the shared client).
    "CONNECTION_POOL": env_int("ROTA_K8S_CONNECTION_POOL", 32),
    # Job pods request the node's allocatable CPU and memory less this, for the node's daemons.
    "HEADROOM_CPU": env_float("ROTA_K8S_HEADROOM_CPU", 1.0),
    "HEADROOM_MEMORY_BYTES": int(env_float("ROTA_K8S_HEADROOM_MEMORY_GIB", 2.0) * 2**30),
    # $HOME of job containers ({user} = the user name); empty = the job's workspace.
    "HOME": env_str("ROTA_K8S_HOME"),
}

# Forum image uploads (discussion/uploads.py): stored under ROTA_MEDIA_ROOT, served by the portal
# itself with safe headers (never as HTML, never sniffed), to signed-in users.
MEDIA_URL = "/media/"
MEDIA_ROOT = Path(env_str("ROTA_MEDIA_ROOT", str(DATA_DIR / "media"))).resolve()
ROTA_FORUM_IMAGE_MAX_BYTES = env_int("ROTA_FORUM_IMAGE_MAX_BYTES", 5 * 1024 * 1024)

MEILISEARCH_URL = env_str("MEILISEARCH_URL")
MEILISEARCH_API_KEY = env_str("MEILISEARCH_API_KEY")
MEILISEARCH_INDEX = env_str("MEILISEARCH_INDEX", "rota_forum_posts")

# --- security -----------------------------------------------------------------------------------

# Content-Security-Policy (django-csp) on every response: scripts only from our own origin, no inline
# scripts, no eval — an injected <script> or onclick= does not run. Inline *styles* stay allowed
# (templates use style attributes; htmx adds its indicator style). The API's documentation pages
# (Swagger UI, Redoc: served from drf-spectacular-sidecar) only add a blob: worker (portal/urls.py).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],  # 'self' covers the same origin's ws:// and wss:// (CSP level 3)
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}

SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
if PRODUCTION:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", default=True)
    # The ingress controller asks /containers/auth/ inside the cluster over plain HTTP; a redirect
    # would read to it as an error (docs/containers.md, "Ingress").
    SECURE_REDIRECT_EXEMPT = [r"^containers/auth/$"]
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True

# --- logging ------------------------------------------------------------------------------------

# Servers' access logs carry the full request line, query string included (HAI's client sends its
# token there): they go through the scrubbing handler, with the filter on the logger too so a server
# that re-installs its own handlers (uvicorn configures logging itself) still scrubs.
_SCRUBBED_SERVER_LOGGER = {"handlers": ["console"], "filters": ["scrub_tokens"], "level": "INFO", "propagate": False}
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"scrub_tokens": {"()": "apps.core.logging.ScrubTokensFilter"}},
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["scrub_tokens"]},
    },
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "daphne": {"level": "WARNING"},
        "django.server": _SCRUBBED_SERVER_LOGGER,
        "django.channels.server": _SCRUBBED_SERVER_LOGGER,
        "uvicorn.access": _SCRUBBED_SERVER_LOGGER,
        "uvicorn.error": _SCRUBBED_SERVER_LOGGER,
    },
}
# Error reports (500 e-mails, the debug page) with tokens scrubbed from the query string.
DEFAULT_EXCEPTION_REPORTER = "apps.core.error_reports.TokenSafeExceptionReporter"
DEFAULT_EXCEPTION_REPORTER_FILTER = "apps.core.error_reports.TokenSafeExceptionReporterFilter"
