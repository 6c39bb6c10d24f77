"""RemoteMonitor posts each epoch's logs as Keras does, to a local HTTP server."""
import http.server
import json
import threading
import urllib.parse

import numpy as np
import pytest

from fastdl import callbacks as C, layers as L
from fastdl.models import Sequential


@pytest.fixture
def server():
    received = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((self.path, dict(self.headers), body))
            self.send_response(200 if self.path != "/refuse" else 500)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    httpd = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", received
    httpd.shutdown()
    httpd.server_close()


def _fit(callback, epochs=2):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 3)).astype(np.float32)
    y = rng.normal(size=(16, 1)).astype(np.float32)
    model = Sequential([L.Input((3,)), L.Dense(1)])
    model.compile(optimizer="sgd", loss="mse", metrics=["mae"])
    return model.fit(x, y, batch_size=8, epochs=epochs, validation_split=0.25, verbose=0,
                     callbacks=[callback])


def test_remote_monitor_posts_form_field_per_epoch(server):
    root, received = server
    history = _fit(C.RemoteMonitor(root=root, path="/epoch", field="payload",
                                   headers={"X-Run": "a1"}))
    assert len(received) == 2
    for epoch, (path, headers, body) in enumerate(received):
        assert path == "/epoch"
        assert headers["Content-Type"] == "application/x-www-form-urlencoded"
        assert headers["X-Run"] == "a1"
        form = urllib.parse.parse_qs(body.decode("ascii"), strict_parsing=True)
        assert list(form) == ["payload"]
        sent = json.loads(form["payload"][0])
        assert sent == {"epoch": epoch, **{k: pytest.approx(v[epoch])
                                           for k, v in history.history.items()}}
        assert set(sent) == {"epoch", "loss", "mae", "val_loss", "val_mae"}


def test_remote_monitor_send_as_json_and_numpy_values(server):
    root, received = server
    monitor = C.RemoteMonitor(root=root, send_as_json=True)
    monitor.on_epoch_end(3, {"loss": np.float32(0.5), "acc": np.array(0.25), "lr": 0.1})
    (path, headers, body), = received
    assert path == "/publish/epoch/end/"
    assert headers["Content-Type"] == "application/json"
    assert json.loads(body) == {"epoch": 3, "loss": 0.5, "acc": 0.25, "lr": 0.1}


def test_remote_monitor_unreachable_server_warns_and_training_goes_on(server):
    root, received = server
    # a port nothing listens on: bind one, then close it
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.warns(UserWarning, match="Could not reach RemoteMonitor root server at "
                                         f"http://127.0.0.1:{port}"):
        history = _fit(C.RemoteMonitor(root=f"http://127.0.0.1:{port}"), epochs=2)
    assert len(history.history["loss"]) == 2
    with pytest.warns(UserWarning, match="answered 500"):
        C.RemoteMonitor(root=root, path="/refuse").on_epoch_end(0, {"loss": 1.0})
    with pytest.warns(UserWarning, match="Could not reach"):
        C.RemoteMonitor(root="localhost-without-scheme").on_epoch_end(0, {})


def test_remote_monitor_signature_and_bad_headers():
    m = C.RemoteMonitor()
    assert (m.root, m.path, m.field, m.headers, m.send_as_json) == (
        "http://localhost:9000", "/publish/epoch/end/", "data", None, False)
    with pytest.raises(TypeError, match="headers must be a dict or None, received list"):
        C.RemoteMonitor(headers=["X: 1"])
