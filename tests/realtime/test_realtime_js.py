"""static/js/realtime.js in Node with a fake WebSocket: one socket, resubscribe and re-follow from
the last cursor after a reconnect, backoff, hidden tabs, the status indicator."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(shutil.which("node") is None, reason="needs Node.js")
def test_realtime_js_client_behaviour():
    result = subprocess.run(
        ["node", str(Path(__file__).with_name("realtime_js_harness.js")), str(ROOT / "static/js/realtime.js")],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "ok\n"
