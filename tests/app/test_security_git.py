"""Git sources attacked over the network, for real: redirects to a blocked address, ssh to any port, and
error texts that would turn the feature into a port scanner. Listeners on loopback aliases record every
connection; a test fails if one that must see none sees any."""
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from app.services.sources_config import _url_guard
from knowledge.connectors.git import UNREACHABLE, GitConnector
from knowledge.types import IngestError
from tests.app.test_sync_api import sync


class Listener:
    """A TCP listener on (host, any port) that counts connections and closes each at once."""

    def __init__(self, host: str):
        self.sock = socket.create_server((host, 0))
        self.host, self.port = host, self.sock.getsockname()[1]
        self.connections = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            conn.close()

    def close(self):
        self.sock.close()


class _Recorder(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - the http.server API
        self.server.requests.append((self.path, self.headers.get("Host")))
        if self.server.redirect_to:
            self.send_response(302)
            self.send_header("Location", self.server.redirect_to + self.path)
        else:
            self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def http_server():
    """An HTTP server on 127.0.0.1 (allowlisted in the tests' config) that records requests and may
    answer every one with a redirect."""
    servers = []

    def start(redirect_to=None):
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
        server.requests, server.redirect_to = [], redirect_to
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def blocked_listener():
    listener = Listener("127.0.0.2")  # a second loopback address: not in the outbound allowlist
    yield listener
    listener.close()


def _git_source(api, url):
    return api.post("/api/knowledge-sources", json={"name": "repo", "type": "git",
                                                    "configuration": {"url_or_path": url}})


def test_a_redirect_to_a_blocked_address_is_never_followed(app, api, worker, http_server, blocked_listener):
    redirector = http_server(redirect_to=f"http://127.0.0.2:{blocked_listener.port}")
    res = _git_source(api, f"http://127.0.0.1:{redirector.server_address[1]}/team/repo.git")
    assert res.status_code == 201, res.json
    run = sync(api, res.json["data"]["id"])
    assert run["status"] == "failed"
    assert redirector.requests, "git never reached the allowlisted redirector"
    assert blocked_listener.connections == 0  # the redirect target saw no connection at all
    assert "redirect" in run["message"] and "127.0.0.2" not in run["message"]


def test_a_direct_url_to_a_blocked_address_is_refused_before_any_connection(app, api, worker, blocked_listener):
    res = _git_source(api, f"http://127.0.0.2:{blocked_listener.port}/repo.git")
    run = sync(api, res.json["data"]["id"])
    assert run["status"] == "failed" and "blocked" in run["message"]
    assert blocked_listener.connections == 0


@pytest.mark.parametrize("form", ["ssh://git@{host}:{port}/repo.git", "git@{host}:repo.git"])
def test_ssh_to_a_host_the_allowlist_does_not_name_is_refused(app, api, blocked_listener, form):
    url = form.format(host=blocked_listener.host, port=blocked_listener.port)
    res = _git_source(api, url)
    assert res.status_code == 422, res.json
    assert res.json["error"]["code"] == "outbound_blocked"
    assert "allowlist" in res.json["error"]["message"]
    # The guard the sync uses refuses it too, without a connection (e.g. a source saved before this rule).
    connector = GitConnector(url, checkout_dir=app.extensions["magnet.config"].data_dir / "attack-co",
                             allow_url=_url_guard(), timeout=10)
    with pytest.raises(IngestError) as info:
        list(connector.run())
    assert info.value.code == "blocked"
    assert blocked_listener.connections == 0


def test_ssh_is_not_open_to_public_hosts_either(api):
    res = _git_source(api, "ssh://git@github.com/org/repo.git")
    assert res.status_code == 422 and res.json["error"]["code"] == "outbound_blocked"


def test_errors_do_not_tell_an_open_port_from_a_closed_one(app, api, worker):
    closed = socket.create_server(("127.0.0.1", 0))
    closed_port = closed.getsockname()[1]
    closed.close()  # nothing listens there now
    opened = Listener("127.0.0.1")  # accepts, then hangs up: a port that is open but speaks no git
    try:
        messages = []
        for port in (closed_port, opened.port):
            res = _git_source(api, f"http://127.0.0.1:{port}/repo.git")
            run = sync(api, res.json["data"]["id"])
            assert run["status"] == "failed"
            messages.append(run["message"].replace(str(port), "PORT"))
            api.delete(f"/api/knowledge-sources/{res.json['data']['id']}")
        assert opened.connections >= 1
        assert messages[0] == messages[1]
        assert UNREACHABLE in messages[0]
    finally:
        opened.close()


def test_git_connects_only_to_the_address_the_guard_approved(tmp_path, http_server):
    """Pinning: the host name below resolves nowhere (.invalid), so the request can reach the recorder
    only through the address the guard returned, never through a second DNS answer."""
    recorder = http_server()
    port = recorder.server_address[1]
    connector = GitConnector(f"http://repo.example.invalid:{port}/r.git", checkout_dir=tmp_path / "co",
                             allow_url=lambda url: ["127.0.0.1"], timeout=20)
    with pytest.raises(IngestError):
        list(connector.run())  # the recorder answers 404: not a repository
    assert recorder.requests, "git did not connect to the pinned address"
    assert all(host == f"repo.example.invalid:{port}" for _, host in recorder.requests)


def test_transports_that_run_commands_or_read_local_files_are_refused(api):
    for url in ("ext::sh -c touch% /tmp/pwned", "file:///etc", "fd::17", "--upload-pack=touch /tmp/x"):
        res = _git_source(api, url)
        assert res.status_code in (403, 422), (url, res.json)
