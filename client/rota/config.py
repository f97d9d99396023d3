"""Where ``rota`` keeps the server URL and the token, and how the environment overrides them.

The file is ``$XDG_CONFIG_HOME/rota/config.json`` (``~/.config/rota/config.json`` by default; the
``ROTA_CONFIG`` variable names another file). It holds a secret, so it is written atomically with
mode 0600 inside a 0700 directory, and a warning is printed if it ever becomes readable by others.

``ROTA_URL`` and ``ROTA_TOKEN`` override what the file says, for CI jobs and scripts.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import stat
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_URL = "http://127.0.0.1:8000"
_TOKEN_PREFIX_RE = re.compile(r"^[A-Za-z0-9]+_([a-z0-9]{8})_")


def config_path() -> Path:
    """The config file: ``$ROTA_CONFIG``, else ``$XDG_CONFIG_HOME/rota/config.json``."""
    explicit = os.environ.get("ROTA_CONFIG")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or ""
    root = Path(base).expanduser() if base and Path(base).is_absolute() else Path.home() / ".config"
    return root / "rota" / "config.json"


def normalize_url(url: str) -> str:
    """``host:8000`` → ``http://host:8000``; drop a trailing slash or ``/api/v1``."""
    url = url.strip()
    if not url:
        return url
    if "://" not in url:
        host = url.split("/", 1)[0].split(":", 1)[0]
        local = host in {"localhost", "::1"} or host.startswith("127.")
        url = ("http://" if local else "https://") + url
    url = url.rstrip("/")
    for suffix in ("/api/v1", "/api"):
        if url.endswith(suffix):
            url = url[: -len(suffix)]
    return url


def token_prefix(token: str) -> str | None:
    """The public prefix of a token (``rota_<prefix>_<secret>``), as ``rota tokens list`` shows it."""
    match = _TOKEN_PREFIX_RE.match(token.strip())
    return match.group(1) if match else None


@dataclass
class Settings:
    """The effective URL and token, and where each came from (``env``, ``file``, or ``None``)."""

    url: str | None
    token: str | None
    url_source: str | None = None
    token_source: str | None = None
    username: str | None = None
    path: Path = field(default_factory=config_path)
    warnings: list[str] = field(default_factory=list)


def read_file(path: Path | None = None) -> dict[str, Any]:
    """The stored config, or ``{}`` when there is none. A corrupt file reads as empty."""
    path = path or config_path()
    try:
        text = path.read_text(encoding="utf-8")
    except (FileNotFoundError, NotADirectoryError):
        return {}
    try:
        data = json.loads(text)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def insecure_permissions(path: Path) -> bool:
    """True when the file can be read or written by anyone but its owner (POSIX only)."""
    if os.name != "posix":
        return False
    try:
        mode = path.stat().st_mode
    except OSError:
        return False
    return bool(mode & (stat.S_IRWXG | stat.S_IRWXO))


def load() -> Settings:
    """Merge the config file with ``ROTA_URL`` / ``ROTA_TOKEN`` (the environment wins)."""
    path = config_path()
    data = read_file(path)
    settings = Settings(url=None, token=None, path=path, username=data.get("username"))
    if data and insecure_permissions(path):
        settings.warnings.append(f"{path} is readable by other users; fix it with: chmod 600 {path}")
    if data.get("url"):
        settings.url, settings.url_source = normalize_url(str(data["url"])), "file"
    if data.get("token"):
        settings.token, settings.token_source = str(data["token"]), "file"
    env_url, env_token = os.environ.get("ROTA_URL"), os.environ.get("ROTA_TOKEN")
    if env_url:
        settings.url, settings.url_source = normalize_url(env_url), "env"
    if env_token:
        settings.token, settings.token_source = env_token.strip(), "env"
        settings.username = None  # the stored name belongs to the stored token
    return settings


def write_file(data: dict[str, Any], path: Path | None = None) -> Path:
    """Replace the config file atomically; the file is 0600 and its directory 0700."""
    path = path or config_path()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".config-", suffix=".tmp", dir=str(path.parent))  # created 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=2, sort_keys=True)
            handle.write("\n")
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


def save_login(*, url: str, token: str, username: str | None, token_id: int | None, source: str) -> Path:
    """Store a new login, keeping nothing of the previous one."""
    return write_file({"url": url, "token": token, "username": username, "token_id": token_id, "token_source": source})


def forget_token(path: Path | None = None) -> dict[str, Any]:
    """Remove the token from the file (the URL stays, so the next ``rota login`` offers it)."""
    path = path or config_path()
    data = read_file(path)
    if not data:
        return {}
    kept = {"url": data["url"]} if data.get("url") else {}
    write_file(kept, path)
    return data
