"""The latent-space explorer without a browser: projection math, endpoints, and request validation over HTTP."""

from __future__ import annotations

import base64
import http.client
import json
import socket
import threading
import urllib.error
import urllib.request

import numpy as np
import pytest
import torch
from cli_helpers import cli

import aekit
from aekit.data import load_data
from aekit.tasks.explore import ExploreState, make_server
from aekit.tasks.explore.validate import MAX_BODY, MAX_STEPS


@pytest.fixture(scope="module")
def digits():
    ds = load_data("digits", max_samples=200)
    return ds.test, ds.y_test  # (N, 1, 8, 8), (N,)


@pytest.fixture(scope="module")
def server(digits):
    model = aekit.build("ae", input_shape=(1, 8, 8), hidden=[16], latent_dim=3, seed=0)  # latent 3: a PCA map
    srv = make_server(ExploreState(model, *digits), "127.0.0.1", 0)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def request(srv, method, path, body=None, headers=None, raw: bytes | None = None):
    """(status, parsed JSON or text) over one fresh connection."""
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    req = urllib.request.Request(srv.url.rstrip("/") + path, data=data, method=method,
                                 headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=10) as res:
            status, text, kind = res.status, res.read().decode(), res.headers["Content-Type"]
    except urllib.error.HTTPError as exc:
        status, text, kind = exc.code, exc.read().decode(), exc.headers["Content-Type"]
    return status, (json.loads(text) if kind.startswith("application/json") else text)


def read_until_closed(sock: socket.socket) -> bytes:
    """Every byte the server sends until it closes the connection (one recv may return only a part)."""
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def values(image: dict) -> np.ndarray:
    """An image of the API: base64 little-endian float32 -> flat array."""
    assert image["dtype"] == "float32"
    return np.frombuffer(base64.b64decode(image["data"]), dtype="<f4")


# ---------------------------------------------------------------------------------------- projection math
def test_pca_map_matches_sklearn_and_inverts_in_its_plane(digits):
    from sklearn.decomposition import PCA

    model = aekit.build("ae", input_shape=(1, 8, 8), hidden=[16], latent_dim=5, seed=1)
    state = ExploreState(model, *digits)
    ref = PCA(2).fit(state.codes)
    signs = np.sign(np.sum(ref.transform(state.codes) * state.points, axis=0))  # PCA's sign is arbitrary
    np.testing.assert_allclose(state.points, ref.transform(state.codes) * signs, atol=1e-8)
    assert state.explained == pytest.approx(ref.explained_variance_ratio_.tolist(), rel=1e-6)
    p = np.array([0.3, -0.2])
    z = state.unproject(p)
    np.testing.assert_allclose(state.project(z[None])[0], p, atol=1e-12)  # project(unproject(p)) = p
    z_plane = state.unproject(state.project(state.codes[:1])[0])  # the code's foot in the plane
    np.testing.assert_allclose(state.project(z_plane[None]), state.project(state.codes[:1]), atol=1e-12)


@pytest.mark.parametrize("latent", [1, 2])
def test_small_codes_are_their_own_map(digits, latent):
    model = aekit.build("ae", input_shape=(1, 8, 8), hidden=[8], latent_dim=latent, seed=0)
    state = ExploreState(model, *digits, max_points=50)
    assert state.projection == "identity" and len(state.points) == 50
    np.testing.assert_allclose(state.points[:, :latent], state.codes, atol=0)
    if latent == 1:
        assert np.all(state.points[:, 1] == 0)
    np.testing.assert_allclose(state.unproject([0.4, 0.7]), [0.4, 0.7][:latent])


def test_unet_with_skips_is_refused(digits):
    model = aekit.build(input_shape=(1, 8, 8), backbone="unet", channels=[2, 4], latent_dim=2, seed=0)
    with pytest.raises(aekit.ConfigError, match="skip connections"):
        ExploreState(model, *digits)


# ---------------------------------------------------------------------------------------- endpoints
def test_page_script_and_info(server):
    status, page = request(server, "GET", "/")
    assert status == 200 and '<canvas id="map"' in page and "/explore.js" in page
    status, script = request(server, "GET", "/explore.js")
    assert status == 200 and "api/decode" in script
    status, info = request(server, "GET", "/api/info?cache=1")
    assert status == 200 and info["latent_dim"] == 3 and info["projection"] == "pca"
    assert info["input_shape"] == [1, 8, 8] and len(info["points"]) == len(info["labels"]) == info["n_points"]
    assert all(lo < hi for lo, hi in zip(info["slider_min"], info["slider_max"]))


def test_decode_a_code_and_a_map_point(server):
    state = server.state
    z = [0.5, -1.0, 2.0]
    status, res = request(server, "POST", "/api/decode", {"z": z})
    assert status == 200 and res["image"]["shape"] == [1, 8, 8]
    with torch.no_grad():
        want = state.model.decode(torch.tensor([z])).reshape(-1).numpy()
    np.testing.assert_allclose(values(res["image"]), want, atol=1e-7)  # float32 as computed
    np.testing.assert_allclose(res["point"], state.project(np.array([z]))[0], atol=1e-5)
    status, res = request(server, "POST", "/api/decode", {"point": [0.2, -0.1]})
    assert status == 200
    np.testing.assert_allclose(res["z"], state.unproject([0.2, -0.1]), atol=1e-5)  # inverse projection
    np.testing.assert_allclose(res["point"], [0.2, -0.1], atol=1e-5)


def test_interpolate_two_samples(server):
    state = server.state
    status, res = request(server, "POST", "/api/interpolate", {"a": 0, "b": 3, "steps": 5})
    assert status == 200 and len(res["images"]) == 5 and len(res["originals"]) == 2
    np.testing.assert_allclose(res["z"][0], state.codes[0], atol=1e-5)
    np.testing.assert_allclose(res["z"][-1], state.codes[3], atol=1e-5)
    np.testing.assert_allclose(res["z"][2], (state.codes[0] + state.codes[3]) / 2, atol=1e-5)  # the midpoint
    np.testing.assert_array_equal(values(res["originals"][1]), state.x[3].reshape(-1).numpy())
    np.testing.assert_allclose(values(res["images"][-1]), state.decode(state.codes[3:4]).reshape(-1), atol=1e-6)


# ---------------------------------------------------------------------------------------- validation
BAD = [  # method, path, body (JSON, or raw bytes), extra headers, status, a piece of the message
    ("GET", "/nope", None, {}, 404, "no such path '/nope'"),
    ("GET", "/../../etc/passwd", None, {}, 404, "no such path"),
    ("GET", "/api/decode", None, {}, 405, "accepts POST"),
    ("DELETE", "/api/info", None, {}, 405, "accepts GET, HEAD"),
    ("POST", "/api/decode", {"z": [1, 2]}, {}, 400, "z must have 3 numbers; got 2"),
    ("POST", "/api/decode", {"z": [1, 2, "3"]}, {}, 400, "z[2] must be a number; got a JSON string"),
    ("POST", "/api/decode", {"z": [1, True, 3]}, {}, 400, "z[1] must be a number; got a JSON boolean"),
    ("POST", "/api/decode", {"z": [1, 2, 1e5]}, {}, 400, "within +-10000"),
    ("POST", "/api/decode", b'{"z": [1, 2, NaN]}', {}, 400, "NaN"),
    ("POST", "/api/decode", b'{"z": [1, 2, 1e999]}', {}, 400, "finite"),
    ("POST", "/api/decode", b'{"z": [1, 2, -Infinity]}', {}, 400, "-Infinity"),
    ("POST", "/api/decode", {"z": 5}, {}, 400, "z must be an array of 3 numbers"),
    ("POST", "/api/decode", {"point": [1]}, {}, 400, "point must have 2 numbers"),
    ("POST", "/api/decode", {"z": [0, 0, 0], "point": [0, 0]}, {}, 400, "exactly one of"),
    ("POST", "/api/decode", {}, {}, 400, "exactly one of"),
    ("POST", "/api/decode", {"zz": [1, 2, 3]}, {}, 400, "Did you mean 'z'?"),
    ("POST", "/api/decode", [1, 2, 3], {}, 400, "must be a JSON object; got a JSON array"),
    ("POST", "/api/decode", b"{not json", {}, 400, "not valid JSON"),
    ("POST", "/api/decode", b"\xff\xfe", {}, 400, "not UTF-8"),
    ("POST", "/api/decode", b"[" * 100000, {}, 413, "at most"),
    ("POST", "/api/decode", b"[" * 5000 + b"]" * 5000, {}, 400, "nested too deeply"),
    ("POST", "/api/decode", b"1" * 5000, {}, 400, "not acceptable JSON"),
    ("POST", "/api/decode", {"z": [0, 0, 0]}, {"Content-Type": "text/html"}, 415, "application/json"),
    ("POST", "/api/decode", {"z": [0, 0, 0]}, {"Host": "evil.example:80"}, 403, "not a loopback name"),
    ("POST", "/api/interpolate", {"a": 0}, {}, 400, '"b"'),
    ("POST", "/api/interpolate", {"a": 0, "b": 10**6}, {}, 400, "b must be an integer in [0, "),
    ("POST", "/api/interpolate", {"a": -1, "b": 0}, {}, 400, "a must be an integer"),
    ("POST", "/api/interpolate", {"a": 0.5, "b": 0}, {}, 400, "a must be an integer"),
    ("POST", "/api/interpolate", {"a": 0, "b": 1, "steps": 1000}, {}, 400, f"[2, {MAX_STEPS}]"),
]


@pytest.mark.parametrize("method, path, body, headers, status, message", BAD, ids=[f"{b[4]}-{i}" for i, b in enumerate(BAD)])
def test_bad_requests_get_a_4xx_with_a_message(server, method, path, body, headers, status, message):
    raw = body if isinstance(body, bytes) else None
    got, res = request(server, method, path, None if raw is not None else body, headers, raw=raw)
    assert got == status, res
    assert isinstance(res, dict) and res["status"] == status and message in res["error"], res


def raw_exchange(srv, payload: bytes) -> bytes:
    host, port = srv.server_address[:2]
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(payload)
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_missing_or_bad_content_length(server):
    reply = raw_exchange(server, b"POST /api/decode HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 411") and b"Content-Length" in reply
    reply = raw_exchange(server, b"POST /api/decode HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: abc\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 400")
    reply = raw_exchange(server, b"POST /api/decode HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 50\r\n\r\n{}")
    assert reply.startswith(b"HTTP/1.1 400") and b"ended after 2 of 50 bytes" in reply
    big = MAX_BODY + 1
    reply = raw_exchange(server, f"POST /api/decode HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {big}\r\n\r\n".encode())
    assert reply.startswith(b"HTTP/1.1 413")
    reply = raw_exchange(server, b"BREW /api/info HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 405") and b"accepts GET, HEAD; got BREW" in reply
    reply = raw_exchange(server, b"GET /api/info HTTP/2.0\r\nHost: 127.0.0.1\r\n\r\n")
    assert reply.split(b" ")[1] == b"400" and b'"status":400' in reply  # stdlib protocol errors: JSON 4xx too
    reply = raw_exchange(server, b"GET /api/info HTTP/1.1\r\n" + b"X-A: 1\r\n" * 200 + b"\r\n")
    assert reply.split(b" ")[1] == b"431"


def test_keep_alive_stays_in_step_after_errors(server):
    host, port = server.server_address[:2]
    conn = http.client.HTTPConnection(host, port, timeout=10)
    try:
        for body, want in [({"z": [1]}, 400), ({"z": [0, 0, 0]}, 200), ({"zz": 1}, 400), ({"point": [0, 0]}, 200)]:
            conn.request("POST", "/api/decode", json.dumps(body), {"Content-Type": "application/json"})
            res = conn.getresponse()
            assert res.status == want and json.loads(res.read())
        conn.request("DELETE", "/api/decode", b'{"z": [0, 0, 0]}')  # a refused body is consumed too
        res = conn.getresponse()
        assert res.status == 405 and res.read()
        conn.request("GET", "/api/info", b'{"ignored": true}')  # a body on a GET is read and ignored
        res = conn.getresponse()
        assert res.status == 200 and json.loads(res.read())["latent_dim"] == 3
        conn.request("GET", "/api/info")
        assert conn.getresponse().status == 200
    finally:
        conn.close()


# ---------------------------------------------------------------------------------------- command line
def test_explore_command_prints_its_address(tmp_path, monkeypatch, no_fsync):
    from aekit.tasks.explore.server import ExploreServer

    run = tmp_path / "run"
    code, _, err = cli("train", "ae", "--data", "digits", "--max-samples", "100", "--epochs", "1", "--hidden", "8",
                       "--latent-dim", "2", "--quiet", "--out", run)
    assert code == 0, err
    seen = {}

    def fake_serve(self, poll_interval=0.5):  # answer one request, then stop as Ctrl-C would
        seen["url"] = self.url
        seen["info"] = json.loads(self.info_bytes)
        raise KeyboardInterrupt

    monkeypatch.setattr(ExploreServer, "serve_forever", fake_serve)
    code, out, err = cli("explore", run, "--port", "0", "--max-points", "10")
    assert code == 0, err
    assert f"serving {run} at {seen['url']}" in out and seen["url"].startswith("http://127.0.0.1:")
    assert not seen["url"].endswith(":0/") and seen["info"]["n_points"] == 10


def test_explore_command_errors(tmp_path):
    code, _, err = cli("explore", tmp_path / "missing", "--port", "0")
    assert code == 1 and "does not exist" in err
    code, _, err = cli("explore", tmp_path, "--port", "70000")
    assert code == 2 and "port number" in err
    code, _, err = cli("explore", tmp_path, "--prot", "1")
    assert code == 2 and "Did you mean '--port'?" in err


def test_a_stalled_body_times_out_with_408(server, monkeypatch):
    from aekit.tasks.explore.server import ExploreHandler

    monkeypatch.setattr(ExploreHandler, "timeout", 0.3)  # read per connection: affects only the one below
    host, port = server.server_address[:2]
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(b'POST /api/decode HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 20\r\n\r\n{"z":')
        reply = read_until_closed(sock)  # the status line and the body may arrive in separate segments
    assert reply.startswith(b"HTTP/1.1 408") and b"did not arrive" in reply


# ---------------------------------------------------------------------------------------- hostile clients (issue 18)
@pytest.mark.parametrize("target", [b"http://[", b"HTTP://[x]/api/info", b"http://[::1/api/info"])
def test_an_unparsable_request_target_is_a_400_not_a_500(server, target):
    reply = raw_exchange(server, b"GET " + target + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 400"), reply[:200]
    assert b"request target" in reply


def _own_server(digits, **attrs):
    model = aekit.build("ae", input_shape=(1, 8, 8), hidden=[16], latent_dim=3, seed=0)
    srv = make_server(ExploreState(model, *digits), "127.0.0.1", 0)
    for k, v in attrs.items():
        setattr(srv, k, v)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def test_a_body_dripped_byte_by_byte_is_dropped_at_the_request_deadline(digits, monkeypatch):
    import time

    from aekit.tasks.explore.server import ExploreHandler

    monkeypatch.setattr(ExploreHandler, "request_deadline", 1.0)  # whole request, however the bytes trickle in
    srv = _own_server(digits)
    try:
        host, port = srv.server_address[:2]
        with socket.create_connection((host, port), timeout=10) as sock:
            sock.sendall(b"POST /api/decode HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                         b"Content-Length: 40\r\n\r\n")
            t0 = time.monotonic()
            reply = b""
            for byte in b'{"z": [0.1, 0.2, 0.3]}' + b" " * 18:
                try:
                    sock.sendall(bytes([byte]))  # one byte every 0.2 s: each read is quick, the request is not
                except OSError:
                    break
                sock.settimeout(0.2)
                try:
                    reply += sock.recv(65536)
                except socket.timeout:
                    continue
                if reply:
                    break
            elapsed = time.monotonic() - t0
        assert reply.startswith(b"HTTP/1.1 408"), reply[:200]
        assert elapsed < 3.0
    finally:
        srv.shutdown()
        srv.server_close()


def test_dripped_headers_are_dropped_at_the_request_deadline(digits, monkeypatch):
    import time

    from aekit.tasks.explore.server import ExploreHandler

    monkeypatch.setattr(ExploreHandler, "request_deadline", 1.0)
    srv = _own_server(digits)
    try:
        host, port = srv.server_address[:2]
        with socket.create_connection((host, port), timeout=10) as sock:
            sock.sendall(b"GET /api/info HTTP/1.1\r\n")
            t0, closed = time.monotonic(), False
            while time.monotonic() - t0 < 5:
                try:
                    sock.sendall(b"X-Slow: 1\r\n")
                    sock.settimeout(0.2)
                    if sock.recv(65536) == b"":
                        closed = True
                        break
                except socket.timeout:
                    continue
                except OSError:
                    closed = True
                    break
            assert closed and time.monotonic() - t0 < 3.0
    finally:
        srv.shutdown()
        srv.server_close()


def test_held_connections_never_take_more_than_the_thread_bound(digits, monkeypatch):
    import time

    from aekit.tasks.explore.server import ExploreHandler

    monkeypatch.setattr(ExploreHandler, "request_deadline", 1.5)
    base = threading.active_count()
    srv = _own_server(digits, max_threads=4)
    held = []
    try:
        host, port = srv.server_address[:2]
        for _ in range(40):  # open and say nothing (a worker waits for a first byte only while nobody queues)
            held.append(socket.create_connection((host, port), timeout=10))
        time.sleep(0.5)
        assert threading.active_count() <= base + 1 + 4  # serve_forever's thread + the workers
        t0 = time.monotonic()
        status, body = request(srv, "GET", "/api/info")  # served once the held ones hit their deadline
        assert status == 200 and time.monotonic() - t0 < 8
        assert threading.active_count() <= base + 1 + 4
    finally:
        for s in held:
            s.close()
        srv.shutdown()
        srv.server_close()
