"""Connect to the address the outbound guard approved, not to whatever DNS answers next.

The guard resolves a host and judges its addresses; the HTTP client would then resolve the name again to
connect. A hostile DNS server can answer a public address to the first lookup and a private one to the
second (DNS rebinding). ``PinnedAdapter`` closes that window: a connection to a pinned host opens a
socket to the approved address, while TLS still sends the host name (SNI) and checks the certificate
against it, and the Host header is the name as before.
"""
from __future__ import annotations

import threading

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.util import connection


def _pinned_connection(base: type, pins: dict[str, str]) -> type:
    class Pinned(base):
        def _new_conn(self):
            address = pins.get(self.host.lower())
            if address is None:
                return super()._new_conn()
            # As urllib3's own _new_conn, with the approved address in place of a fresh lookup.
            return connection.create_connection((address, self.port), self.timeout,
                                                source_address=self.source_address,
                                                socket_options=self.socket_options)

    return Pinned


class PinnedAdapter(HTTPAdapter):
    """A requests adapter whose connections to a pinned host go to its pinned address."""

    def __init__(self, **kwargs) -> None:
        self.pins: dict[str, str] = {}
        self._lock = threading.Lock()
        super().__init__(**kwargs)

    def pin(self, host: str, address: str) -> None:
        with self._lock:
            self.pins[host.lower().rstrip(".")] = address.split("%", 1)[0]

    def init_poolmanager(self, *args, **kwargs) -> None:
        super().init_poolmanager(*args, **kwargs)
        pools = {}
        for scheme, pool, conn in (("http", HTTPConnectionPool, HTTPConnection),
                                   ("https", HTTPSConnectionPool, HTTPSConnection)):
            pools[scheme] = type(f"Pinned{pool.__name__}", (pool,),
                                 {"ConnectionCls": _pinned_connection(conn, self.pins)})
        self.poolmanager.pool_classes_by_scheme = pools
