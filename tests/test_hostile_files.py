"""Hostile model files: each is built here, small, and must be refused quickly with a
ModelFileError naming the file, in bounded memory. Loads that could hang or exhaust memory run
in a child Python under an address-space limit (its own size after importing fastdl, NumPy
and h5py, plus ``CAP``) and a timeout."""
import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import zipfile
import zlib

import numpy as np
import pytest

import fastdl
from fastdl import layers
from fastdl.models import Sequential
from fastdl.saving import ModelFileError, common, load_model, load_weights, native, save_model

CAP = 3 << 29                   # 1.5 GiB above the child's size after its imports
# children import the fastdl this process tests (the working tree or the installed package)
FASTDL_PATH = os.path.dirname(os.path.dirname(os.path.abspath(fastdl.__file__)))
linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="the memory bound uses /proc and RLIMIT_AS (Linux)")

_CHILD = textwrap.dedent("""
    import json, resource, sys, time
    import numpy
    try:
        import h5py
    except ImportError:
        pass
    from fastdl.models import Sequential
    from fastdl import layers
    from fastdl.saving import ModelFileError, load_model, load_weights

    def vm_size():
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024

    resource.setrlimit(resource.RLIMIT_AS, (vm_size() + int(sys.argv[1]), resource.RLIM_INFINITY))
    path = sys.argv[2]
    start = time.perf_counter()
    try:
        exec(sys.argv[3])
    except ModelFileError as e:
        result = ["ModelFileError", str(e)]
    except BaseException as e:
        result = [type(e).__name__, str(e)[:300]]
    else:
        result = ["loaded", ""]
    print(json.dumps(result + [time.perf_counter() - start]))
""")


def refused_in_child(path, statement="load_model(path)", timeout=60):
    """Run ``statement`` on ``path`` in a limited child; the ModelFileError message."""
    env = dict(os.environ, PYTHONPATH=FASTDL_PATH, OMP_NUM_THREADS="1")
    try:
        out = subprocess.run([sys.executable, "-c", _CHILD, str(CAP), str(path), statement],
                             capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{statement} on {path} did not finish within {timeout} s")
    assert out.returncode == 0, out.stderr[-2000:]
    kind, message, seconds = json.loads(out.stdout.strip().splitlines()[-1])
    assert kind == "ModelFileError", (kind, message)
    assert str(path) in message
    assert seconds < 20
    return message


def _has_h5py():
    try:
        import h5py  # noqa: F401
    except ImportError:
        return False
    return True


def small_model():
    return Sequential([layers.Input((3,)), layers.Dense(2)])


def keras_members(tmp_path, model=None):
    pytest.importorskip("h5py", reason="the .keras format needs h5py")
    save_model(model or small_model(), tmp_path / "base.keras")
    with zipfile.ZipFile(tmp_path / "base.keras") as zf:
        return {n: zf.read(n) for n in zf.namelist()}


def write_zip(path, members, compression=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, "w", compression=compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def h5_bytes(fill):
    import h5py
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as h5:
        fill(h5)
    return buffer.getvalue()


def small_weights(h5):
    h5.create_group("vars")
    h5["layers/dense/vars/0"] = np.ones((3, 2), np.float32)
    h5["layers/dense/vars/1"] = np.ones(2, np.float32)


def fdl_bytes(header_bytes, data=b""):
    """A native file around ``header_bytes`` with a correct checksum."""
    head = native.PREFIX.pack(native.MAGIC, native.FORMAT_VERSION, len(header_bytes),
                              b"\0" * 32)[:20]
    digest = hashlib.sha256(head + header_bytes + data).digest()
    return native.PREFIX.pack(native.MAGIC, native.FORMAT_VERSION, len(header_bytes),
                              digest) + header_bytes + data


def fdl_header(layer_entries, tensors=()):
    return {"format": "fastdl", "kind": "model", "fastdl_version": "0",
            "model_config": {"module": "keras", "class_name": "Sequential",
                             "config": {"name": "m", "trainable": True,
                                        "layers": layer_entries}},
            "compile_config": None, "tensors": list(tensors)}


# ---------------------------------------------------------------------------------------------
# 1. HDF5 groups hard-linked into a DAG; the number of objects

@linux_only
def test_hdf5_dag_of_hard_links_is_refused_fast(tmp_path):
    def fill(h5):
        small_weights(h5)
        group = h5.create_group("dag")
        for _ in range(30):                     # 2**30 paths, 31 groups
            child = group.create_group("a")
            group["b"] = child
            group = child
    members = keras_members(tmp_path)
    path = write_zip(tmp_path / "dag.keras", {**members, "model.weights.h5": h5_bytes(fill)})
    assert os.path.getsize(path) < 100_000
    assert "linked 2 times" in refused_in_child(path)


def test_hdf5_object_count_is_bounded(tmp_path, monkeypatch):
    def fill(h5):
        small_weights(h5)
        for i in range(60):
            h5[f"junk/{i}"] = np.zeros(1, np.float32)
    pytest.importorskip("h5py", reason="the .weights.h5 format needs h5py")
    path = tmp_path / "many.weights.h5"
    path.write_bytes(h5_bytes(fill))
    monkeypatch.setattr(common, "MAX_HDF5_OBJECTS", 50)
    with pytest.raises(ModelFileError, match="MAX_HDF5_OBJECTS") as info:
        load_weights(small_model(), path)
    assert str(path) in str(info.value)


# ---------------------------------------------------------------------------------------------
# 2. declared but never written HDF5 storage

@linux_only
def test_unallocated_datasets_do_not_build_a_huge_model(tmp_path):
    members = keras_members(tmp_path)
    config = json.loads(members["config.json"])
    config["config"]["layers"][0]["config"]["batch_shape"] = [None, 20000]
    config["config"]["layers"][1]["config"]["units"] = 20000

    def fill(h5):                               # 400 M parameters declared, none stored
        h5.create_group("vars")
        h5.create_dataset("layers/dense/vars/0", shape=(20000, 20000), dtype="f4")
        h5.create_dataset("layers/dense/vars/1", shape=(20000,), dtype="f4")
    path = write_zip(tmp_path / "unallocated.keras",
                     {**members, "config.json": json.dumps(config),
                      "model.weights.h5": h5_bytes(fill)})
    assert os.path.getsize(path) < 20_000
    assert "more weights than the file holds" in refused_in_child(path)


def test_never_written_weights_are_refused(tmp_path):
    pytest.importorskip("h5py", reason="the .weights.h5 format needs h5py")
    model = small_model()
    before = [w.copy() for w in model.weights]

    def contiguous(h5):
        h5.create_group("vars")
        h5.create_dataset("layers/dense/vars/0", shape=(3, 2), dtype="f4")
        h5["layers/dense/vars/1"] = np.ones(2, np.float32)

    def missing_chunk(h5):
        small_weights(h5)
        del h5["layers/dense/vars/0"]
        ds = h5.create_dataset("layers/dense/vars/0", shape=(3, 2), dtype="f4", chunks=(1, 2),
                               compression="gzip")
        ds[:2] = 1.0                            # the third chunk is never written

    for name, fill, pattern in [("contiguous", contiguous, "0 of its 24 bytes are stored"),
                                ("chunked", missing_chunk, "chunks missing")]:
        path = tmp_path / f"{name}.weights.h5"
        path.write_bytes(h5_bytes(fill))
        with pytest.raises(ModelFileError, match=pattern) as info:
            load_weights(model, path)
        assert str(path) in str(info.value)
    for a, b in zip(model.weights, before):
        assert np.array_equal(a, b)


# ---------------------------------------------------------------------------------------------
# 3. compressed weights

def _deflated_zeros_member(path, members, size):
    """A .keras whose weights member inflates to ``size`` zero bytes from a few MB: the same
    deflate block (16 MiB of zeros, full flush) repeated, written through zipfile."""
    chunk = bytes(1 << 24)
    compressor = zlib.compressobj(1, zlib.DEFLATED, -15)
    block = compressor.compress(chunk) + compressor.flush(zlib.Z_FULL_FLUSH)
    tail = compressor.flush()

    class Repeat:
        def compress(self, data):
            return block

        def flush(self):
            return tail

    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            if name != "model.weights.h5":
                zf.writestr(name, data)
        info = zipfile.ZipInfo("model.weights.h5")
        info.compress_type = zipfile.ZIP_DEFLATED
        original = zipfile._get_compressor
        zipfile._get_compressor = lambda *args, **kwargs: Repeat()
        try:
            with zf.open(info, "w", force_zip64=True) as f:
                for _ in range(size // len(chunk)):
                    f.write(chunk)
        finally:
            zipfile._get_compressor = original
    return path


@linux_only
def test_compressed_weights_member_is_bounded_by_the_model(tmp_path):
    members = keras_members(tmp_path)
    path = _deflated_zeros_member(tmp_path / "bomb.keras", members, 2 << 30)
    assert os.path.getsize(path) < 16 << 20
    message = refused_in_child(path)
    assert "model.weights.h5 is 2147483648 bytes uncompressed" in message
    message = refused_in_child(
        path, "m = Sequential([layers.Input((3,)), layers.Dense(2)]); load_weights(m, path)")
    assert "model.weights.h5 is 2147483648 bytes uncompressed" in message


def test_compressed_hdf5_datasets_cannot_describe_more_weights_than_stored(tmp_path):
    members = keras_members(tmp_path)
    config = json.loads(members["config.json"])
    config["config"]["layers"][0]["config"]["batch_shape"] = [None, 4000]
    config["config"]["layers"][1]["config"]["units"] = 4000

    def fill(h5):                               # 16 M zeros in a few KB
        h5.create_group("vars")
        h5.create_dataset("layers/dense/vars/0", data=np.zeros((4000, 4000), np.float32),
                          chunks=(1000, 4000), compression="gzip", compression_opts=9)
        h5["layers/dense/vars/1"] = np.zeros(4000, np.float32)
    path = write_zip(tmp_path / "gzip.keras", {**members, "config.json": json.dumps(config),
                                               "model.weights.h5": h5_bytes(fill)})
    with pytest.raises(ModelFileError, match="more weights than the file holds") as info:
        load_model(path)
    assert str(path) in str(info.value)


def test_compressed_real_weights_still_load(tmp_path):
    model = Sequential([layers.Input((30,)), layers.Dense(40)])
    members = keras_members(tmp_path, model)

    def fill(h5):
        h5.create_group("vars")
        for i, w in enumerate(model.weights):
            h5.create_dataset(f"layers/dense/vars/{i}", data=w, compression="gzip")
    path = write_zip(tmp_path / "real.keras", {**members, "model.weights.h5": h5_bytes(fill)},
                     zipfile.ZIP_DEFLATED)
    loaded = load_model(path)
    for a, b in zip(loaded.weights, model.weights):
        assert np.array_equal(a, b)


# ---------------------------------------------------------------------------------------------
# 4. huge JSON

@linux_only
def test_huge_config_json_is_refused_before_parsing(tmp_path):
    members = keras_members(tmp_path)
    config = members["config.json"]
    junk = b'{"junk":[' + b"{}," * (20 << 20) + b'{}],' + config[1:]     # 60 MiB
    path = write_zip(tmp_path / "json.keras", {**members, "config.json": junk},
                     zipfile.ZIP_DEFLATED)
    assert os.path.getsize(path) < 1 << 20
    assert f"more than the limit of {common.MAX_CONFIG_BYTES} bytes" in refused_in_child(path)


@linux_only
def test_huge_native_header_is_refused_before_parsing(tmp_path):
    header = json.dumps(fdl_header([])).encode()
    header = header[:-1] + b',"junk":[' + b"{}," * (21 << 20) + b"{}]}"   # 63 MiB
    path = tmp_path / "header.fdl"
    path.write_bytes(fdl_bytes(header))
    message = refused_in_child(path)
    assert f"outside the allowed range [2, {common.MAX_CONFIG_BYTES}]" in message


# ---------------------------------------------------------------------------------------------
# 5. layer count: each layer is built once, and at most MAX_LAYERS load

@pytest.fixture
def output_shape_calls(monkeypatch):
    calls = []
    original = layers.Dense.compute_output_shape

    def counted(self, input_shape):
        calls.append(self)
        return original(self, input_shape)
    monkeypatch.setattr(layers.Dense, "compute_output_shape", counted)
    return calls


def test_each_layer_is_built_once(tmp_path, output_shape_calls):
    n = 3000
    model = Sequential([layers.Input((1,))] + [layers.Dense(1) for _ in range(n)])
    assert len(output_shape_calls) == n
    del output_shape_calls[:]
    grown = Sequential([layers.Input((1,))])
    for _ in range(n):
        grown.add(layers.Dense(1))
    assert len(output_shape_calls) == n and grown.output_shape == (None, 1)
    save_model(model, tmp_path / "deep.fdl")
    del output_shape_calls[:]
    loaded = load_model(tmp_path / "deep.fdl")
    assert len(output_shape_calls) == n and len(loaded.layers) == n
    # the failing layer is still named, and a later add rebuilds only what is needed
    with pytest.raises(ValueError, match="conv2d"):
        grown.add(layers.Conv2D(1, 1))
    grown.pop()
    grown.pop()
    del output_shape_calls[:]
    grown.add(layers.Dense(3))
    assert grown.output_shape == (None, 3)


def test_layer_count_is_capped(tmp_path):
    entry = {"module": "keras.layers", "class_name": "Dense", "config": {"units": 1}}
    path = tmp_path / "wide.fdl"
    path.write_bytes(fdl_bytes(json.dumps(fdl_header([entry] * (common.MAX_LAYERS + 1)))
                               .encode()))
    with pytest.raises(ModelFileError, match=f"MAX_LAYERS = {common.MAX_LAYERS}") as info:
        load_model(path)
    assert str(path) in str(info.value)


# ---------------------------------------------------------------------------------------------
# 9. FIFOs and devices

@linux_only
@pytest.mark.parametrize("name", ["m.fdl", "m.keras", "m.weights.h5"])
def test_fifo_is_refused_without_blocking(tmp_path, name):
    if name != "m.fdl":
        pytest.importorskip("h5py", reason="Keras formats need h5py")
    path = tmp_path / name
    os.mkfifo(path)
    statement = ("load_weights(Sequential([layers.Input((3,)), layers.Dense(2)]), path)"
                 if name.endswith(".h5") else "load_model(path)")
    assert "not a regular file" in refused_in_child(path, statement, timeout=30)


@linux_only
def test_device_is_refused(tmp_path):
    path = tmp_path / "zero.fdl"
    os.symlink("/dev/zero", path)
    with pytest.raises(ModelFileError, match="not a regular file"):
        load_model(path)
    with pytest.raises(IsADirectoryError):
        load_model(tmp_path)


# ---------------------------------------------------------------------------------------------
# 16. saving: killed saves, symlinks; header overflow; truncated archives

@linux_only
def test_temporaries_of_a_killed_save_are_removed_by_the_next(tmp_path, monkeypatch):
    target = tmp_path / "m.fdl"
    script = textwrap.dedent(f"""
        import os, signal
        from fastdl.models import Sequential
        from fastdl import layers
        from fastdl.saving import native, save_model
        native._write_array = lambda f, a: os.kill(os.getpid(), signal.SIGKILL)
        save_model(Sequential([layers.Input((3,)), layers.Dense(2)]), {str(target)!r})
    """)
    env = dict(os.environ, PYTHONPATH=FASTDL_PATH)
    for _ in range(3):              # each killed save removes the one killed before it
        child = subprocess.Popen([sys.executable, "-c", script], env=env)
        assert child.wait(timeout=60) == -signal.SIGKILL
        stale = [p.name for p in tmp_path.iterdir()]
        assert len(stale) == 1 and stale[0].startswith(f".m.fdl.{child.pid}.") \
            and stale[0].endswith(".fdl-tmp")
    live = tmp_path / f".m.fdl.{os.getpid()}.abcdefgh.fdl-tmp"     # a save still running
    other = tmp_path / ".m.fdl.x.1.abcdefgh.fdl-tmp"               # another target's
    live.write_bytes(b"")
    other.write_bytes(b"")
    monkeypatch.chdir(tmp_path)
    save_model(small_model(), "m.fdl")             # a relative name finds them too
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, other.name, "m.fdl"])
    load_model(target)


def test_saving_through_a_symlink_writes_its_target(tmp_path):
    real = tmp_path / "store" / "model.fdl"
    real.parent.mkdir()
    link = tmp_path / "link.fdl"
    os.symlink(real, link)                      # dangling until the first save
    first, second = small_model(), small_model()
    save_model(first, link)
    save_model(second, link)
    assert link.is_symlink() and real.is_file()
    for a, b in zip(load_model(real).weights, second.weights):
        assert np.array_equal(a, b)
    with pytest.raises(FileExistsError):
        save_model(first, link, overwrite=False)


def test_overflowing_native_dimension_is_a_model_file_error(tmp_path):
    tensor = {"name": "layers/dense/kernel", "dtype": "float32", "shape": [0, 1 << 40, 1 << 40],
              "offset": 0, "nbytes": 0}
    path = tmp_path / "overflow.fdl"
    path.write_bytes(fdl_bytes(json.dumps(fdl_header([], [tensor])).encode()))
    with pytest.raises(ModelFileError, match="too large for an array") as info:
        load_model(path)
    assert str(path) in str(info.value)


def test_truncated_keras_file_is_called_truncated(tmp_path):
    keras_members(tmp_path)
    data = (tmp_path / "base.keras").read_bytes()
    path = tmp_path / "cut.keras"
    path.write_bytes(data[:len(data) // 2])
    with pytest.raises(ModelFileError, match="damaged or truncated") as info:
        load_model(path)
    assert "extension" not in str(info.value)


def test_a_description_the_loader_would_refuse_is_not_saved(tmp_path, monkeypatch):
    monkeypatch.setattr(common, "MAX_CONFIG_BYTES", 200)
    names = ["m.fdl"] + (["m.keras"] if _has_h5py() else [])
    for name in names:
        with pytest.raises(ValueError, match="MAX_CONFIG_BYTES = 200"):
            save_model(small_model(), tmp_path / name)
    assert list(tmp_path.iterdir()) == []
