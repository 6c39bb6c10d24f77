"""The fixture the data set tests share: no network, and every cache (fastdl's, Keras's, HOME)
inside the test's tmp_path. Import it into a test module to apply it to every test there."""
import urllib.error

import pytest

from fastdl.datasets import _files


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    """No network (each URL asked for is recorded), caches and HOME inside tmp_path."""
    calls = []

    def no_network(url, timeout):
        calls.append(url)
        raise urllib.error.URLError("network disabled in tests")

    monkeypatch.setattr(_files, "_urlopen", no_network)
    monkeypatch.setenv("FASTDL_HOME", str(tmp_path / "fastdl_home"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return calls
