"""kvik.safetensors against Hugging Face's safetensors package (numpy tensors), and malformed
files."""

import json
import struct

import numpy as np
import pytest

import kvik.safetensors as ks

hf = pytest.importorskip("safetensors.numpy", reason="the safetensors package is not installed")


def tensors(seed=0):
    rng = np.random.default_rng(seed)
    return {
        "weight": rng.standard_normal((17, 33)).astype(np.float32),
        "bias": rng.standard_normal(33).astype(np.float16),
        "ids": rng.integers(-(2**62), 2**62, (5, 2, 3), dtype=np.int64),
        "mask": rng.integers(0, 2, 9).astype(bool),
        "bytes": rng.integers(0, 256, 4097, dtype=np.uint8),
        "scalar": np.array(2.5, dtype=np.float64),
        "empty": np.zeros((0, 4), np.int32),
        "u16": rng.integers(0, 65535, 7, dtype=np.uint16),
        "c": (rng.standard_normal(3) + 1j).astype(np.complex64),
        "ünï/cödé.name": np.arange(3, dtype=np.int8),
    }


@pytest.mark.parametrize("metadata", [None, {}, {"format": "np"}])
def test_save_is_byte_identical(tmp_path, metadata):
    t = tensors()
    hf.save_file(t, tmp_path / "hf.safetensors", metadata=metadata)
    ks.save_file(t, tmp_path / "kv.safetensors", metadata=metadata)
    assert (tmp_path / "kv.safetensors").read_bytes() == (tmp_path / "hf.safetensors").read_bytes()


def test_load_what_hf_saved(tmp_path):
    t = tensors(1)
    hf.save_file(t, tmp_path / "a.safetensors", metadata={"k": "v"})
    got = ks.load_file(tmp_path / "a.safetensors", device="cpu", framework="numpy")
    assert set(got) == set(t)
    for k in t:
        assert got[k].dtype == t[k].dtype and got[k].shape == t[k].shape
        assert got[k].tobytes() == t[k].tobytes(), k


def test_hf_loads_what_kvik_saved(tmp_path):
    t = tensors(2)
    ks.save_file(t, tmp_path / "k.safetensors", metadata={"a": "b"})
    back = hf.load_file(tmp_path / "k.safetensors")
    for k in t:
        assert back[k].dtype == t[k].dtype and np.array_equal(back[k], t[k]), k


def test_several_files_and_duplicates(tmp_path):
    hf.save_file({"a": np.arange(10, dtype=np.float32)}, tmp_path / "1.safetensors")
    hf.save_file({"b": np.arange(5, dtype=np.int64)}, tmp_path / "2.safetensors")
    got = ks.load_file([tmp_path / "1.safetensors", tmp_path / "2.safetensors"], "cpu", "numpy")
    assert np.array_equal(got["a"], np.arange(10, dtype=np.float32))
    assert np.array_equal(got["b"], np.arange(5, dtype=np.int64))
    hf.save_file({"a": np.zeros(1, np.uint8)}, tmp_path / "3.safetensors")
    with pytest.raises(ks.SafetensorError, match="in both"):
        ks.load_file([tmp_path / "1.safetensors", tmp_path / "3.safetensors"], "cpu", "numpy")


def test_safe_open(tmp_path):
    t = tensors(3)
    hf.save_file(t, tmp_path / "o.safetensors", metadata={"who": "me"})
    with ks.safe_open(tmp_path / "o.safetensors", framework="numpy") as f:
        assert f.keys() == sorted(t)
        assert f.metadata() == {"who": "me"}
        for k in ("weight", "scalar", "empty", "ids"):
            v = f.get_tensor(k)
            assert v.dtype == t[k].dtype and v.shape == t[k].shape and np.array_equal(v, t[k])
        with pytest.raises(ks.SafetensorError, match="no tensor named"):
            f.get_tensor("nope")
    with ks.safe_open(tmp_path / "o.safetensors", "np") as f:
        hf_keys = hf.safe_open(tmp_path / "o.safetensors", "np").keys()
        assert f.keys() == list(hf_keys)


def test_numpy_refusals(tmp_path):
    hf.save_file({"a": np.zeros(1)}, tmp_path / "x.safetensors")
    with pytest.raises(ValueError, match="device must be 'cpu'"):
        ks.load_file(tmp_path / "x.safetensors", device="cuda:0", framework="numpy")
    with pytest.raises(ks.SafetensorError, match="not C-contiguous"):
        ks.save_file({"a": np.zeros((4, 4))[:, ::2]}, tmp_path / "y.safetensors")
    with pytest.raises(ks.SafetensorError, match="big-endian"):
        ks.save_file({"a": np.zeros(4, ">f4")}, tmp_path / "y.safetensors")
    with pytest.raises(ks.SafetensorError, match="cannot be saved"):
        ks.save_file({"a": np.zeros(4, "U3")}, tmp_path / "y.safetensors")
    with pytest.raises(ValueError, match="framework"):
        ks.load_file(tmp_path / "x.safetensors", "cpu", "tf")


def write_raw(path, header, data=b"", raw_header=None, n=None):
    h = raw_header if raw_header is not None else json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(h) if n is None else n) + h + data)
    return path


BAD = [
    ("too short", None, b"", b"", None, "too short"),
    ("header past end", {}, b"", b"{}", 1000, "past the end of the file"),
    ("huge header", {}, b"", b"{}", 10**12, "exceeds the limit"),
    ("not json", None, b"", b"{nope", None, "not valid UTF-8 JSON"),
    ("not utf8", None, b"", b'{"\xff":1}', None, "not valid UTF-8 JSON"),
    ("not object", None, b"", b"[1,2]", None, "not a JSON object"),
    ("unknown dtype", {"a": {"dtype": "F7", "shape": [1], "data_offsets": [0, 1]}}, b"x", None, None, "unknown dtype"),
    ("subbyte", {"a": {"dtype": "F4", "shape": [2], "data_offsets": [0, 1]}}, b"x", None, None, "sub-byte"),
    ("bad shape", {"a": {"dtype": "U8", "shape": [-1], "data_offsets": [0, 1]}}, b"x", None, None, "shape"),
    ("bad offsets", {"a": {"dtype": "U8", "shape": [1], "data_offsets": [0]}}, b"x", None, None, "data_offsets"),
    ("reversed", {"a": {"dtype": "U8", "shape": [0], "data_offsets": [1, 0]}}, b"x", None, None, "not a range"),
    ("out of file", {"a": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]}}, b"xx", None, None, "past the end of the data"),
    ("size mismatch", {"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}}, b"xxxx", None, None, "needs 8"),
    ("overlap", {"a": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]},
                 "b": {"dtype": "U8", "shape": [4], "data_offsets": [2, 6]}}, b"x" * 6, None, None, "overlap"),
    ("gap", {"a": {"dtype": "U8", "shape": [2], "data_offsets": [2, 4]}}, b"xxxx", None, None, "belong to no tensor"),
    ("trailing", {"a": {"dtype": "U8", "shape": [2], "data_offsets": [0, 2]}}, b"xxxx", None, None, "belong to no tensor"),
    ("bad metadata", {"__metadata__": {"a": 1}}, b"", None, None, "__metadata__"),
    ("entry not object", {"a": 3}, b"", None, None, "not an object"),
]  # fmt: skip


@pytest.mark.parametrize("name,header,data,raw,n,match", BAD, ids=[b[0] for b in BAD])
def test_malformed(tmp_path, name, header, data, raw, n, match):
    p = tmp_path / "bad.safetensors"
    if name == "too short":
        p.write_bytes(b"abc")
    else:
        write_raw(p, header, data, raw, n)
    with pytest.raises(ks.SafetensorError, match=match):
        ks.load_file(p, "cpu", "numpy")
    with pytest.raises(ks.SafetensorError, match=match):
        ks.safe_open(p, "numpy")
