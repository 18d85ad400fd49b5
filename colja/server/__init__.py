"""The HTTP service of ``colja serve`` and its client.

| module | job |
| --- | --- |
| ``app`` | :func:`create_app`: the FastAPI app (routes, errors, request limits, metrics) |
| ``service`` | loading the named indexes, worker pools, serialised writes, shutdown |
| ``batching`` | micro-batching concurrent queries into one encoder call |
| ``auth`` | read-only / read-write API keys |
| ``schemas`` | request bodies (the OpenAPI schema) |
| ``wire`` | the JSON of hits, results and errors, shared with the client |
| ``metrics`` | Prometheus counters and histograms |
| ``client`` | :class:`Client`: the index API over HTTP (needs only ``httpx``) |
| ``static/`` | the search page served at ``/`` |

``create_app`` needs the ``colja[server]`` extra; ``Client`` the ``colja[client]`` extra.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from colja._lazy import lazy_exports

_LAZY = {
    "create_app": "colja.server.app",
    "ServerSettings": "colja.server.service",
    "ApiKeys": "colja.server.auth",
    "Client": "colja.server.client",
}

__all__ = sorted(_LAZY)

__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())

if TYPE_CHECKING:  # pragma: no cover
    from colja.server.app import create_app
    from colja.server.auth import ApiKeys
    from colja.server.client import Client
    from colja.server.service import ServerSettings
