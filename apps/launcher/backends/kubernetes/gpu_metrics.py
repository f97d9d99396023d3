"""GPU utilisation of a container's pod, from Prometheus scraping NVIDIA's DCGM exporter.

A GPU cluster run with NVIDIA's GPU Operator has ``dcgm-exporter`` on every GPU node; it exports
``DCGM_FI_DEV_GPU_UTIL`` (percent, per GPU) labelled with the pod and namespace holding the GPU
(from the kubelet's pod-resources API), and the operator's ServiceMonitor has Prometheus scrape it.
Rota asks Prometheus's HTTP API (``/api/v1/query``) for the busiest GPU of the run's pod, with the
query ``ROTA_CONTAINER_GPU_UTIL_QUERY`` (``{namespace}`` and ``{pod}`` filled in). Where Prometheus
keeps the exporter's own labels as ``exported_pod``/``exported_namespace`` (``honorLabels: false``),
change the query accordingly. No answer, an empty result or a value that is not a number is
*unknown* (None), which never counts as idle.
"""

from __future__ import annotations

import logging
import math

import httpx

log = logging.getLogger(__name__)

DEFAULT_QUERY = 'max(DCGM_FI_DEV_GPU_UTIL{{namespace="{namespace}",pod="{pod}"}})'


class PrometheusGpuMetrics:
    """Reads one pod's GPU utilisation from Prometheus (module docstring)."""

    def __init__(
        self, url: str, *, query: str = DEFAULT_QUERY, timeout: float = 5.0, client: httpx.Client | None = None
    ) -> None:
        self._url = url.rstrip("/")
        self._query = query
        self._client = client or httpx.Client(timeout=timeout)

    def utilisation(self, *, namespace: str, pod: str) -> float | None:
        query = self._query.format(namespace=namespace, pod=pod)
        try:
            response = self._client.get(f"{self._url}/api/v1/query", params={"query": query})
            response.raise_for_status()
            data = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            log.info("GPU utilisation of %s unknown: %s", pod, type(exc).__name__)
            return None
        result = (data.get("data") or {}).get("result") if isinstance(data, dict) else None
        if data.get("status") != "success" or not result:
            return None
        try:
            value = float(result[0]["value"][1])
        except (KeyError, IndexError, TypeError, ValueError):
            return None
        return value if math.isfinite(value) else None

    def close(self) -> None:
        self._client.close()


__all__ = ["DEFAULT_QUERY", "PrometheusGpuMetrics"]
