"""kvik's Python package on a real GPU: CuPy arrays, torch CUDA tensors, DLPack, raw_read_async
on a torch stream with kernels before and after, safetensors to and from cuda:0 against Hugging
Face's package, a 1 GiB safetensors round trip, kvik.Mmap with CuPy arrays and torch tensors.

Run as a script (`python3 tests/gpu/python/test_gpu_python.py`, as tests/gpu/run.sh does),
since the GPU machine may have no pytest: every test_* function, a temporary directory each,
and a closing 'N passed, N failed, N skipped' line. A test whose framework is missing says so
and counts as skipped."""

import importlib
import os
import sys
import tempfile
import traceback

import kvik
import kvik.safetensors as ks


class Skip(Exception):
    pass


def need(mod):
    try:
        return importlib.import_module(mod)
    except ImportError as e:
        raise Skip(f"{mod} is not installed ({e})")


def blob(n, seed=5):
    import numpy as np

    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()


def test_cupy_arrays(tmp):
    cp = need("cupy")
    data = blob((64 << 20) + 12345)
    p = os.path.join(tmp, "cupy")
    with open(p, "wb") as fh:
        fh.write(data)
    with kvik.CuFile(p, "r+") as f:
        a = cp.empty(len(data), dtype=cp.uint8)
        assert f.read(a) == len(data)
        assert a.get().tobytes() == data
        b = cp.zeros(1000, dtype=cp.uint8)
        assert f.raw_read(b, 500, 4097, dev_offset=100) == 500
        assert b[100:600].get().tobytes() == data[4097:4597]
        c = cp.arange(1 << 20, dtype=cp.float32)
        assert f.pwrite(c, file_offset=0).get() == 4 << 20
        d = cp.empty_like(c)
        assert f.pread(d).get() == 4 << 20 and bool((c == d).all())
        try:
            f.read(cp.zeros((64, 64), cp.uint8)[:, ::2])
            raise AssertionError("non-contiguous CuPy array accepted")
        except ValueError:
            pass


def test_torch_cuda_and_dlpack(tmp):
    torch = need("torch")
    data = blob(32 << 20)
    p = os.path.join(tmp, "torch")
    with open(p, "wb") as fh:
        fh.write(data)
    expect = torch.frombuffer(bytearray(data), dtype=torch.uint8).cuda()
    with kvik.CuFile(p) as f:
        t = torch.empty(len(data), dtype=torch.uint8, device="cuda:0")
        assert f.read(t) == len(data) and torch.equal(t, expect)

        class OnlyDLPack:  # as JAX arrays look: DLPack, no __cuda_array_interface__
            def __init__(self, x):
                self.x = x

            def __dlpack__(self, stream=None, **kw):
                return self.x.__dlpack__(stream=stream)

            def __dlpack_device__(self):
                return self.x.__dlpack_device__()

        u = torch.zeros(len(data), dtype=torch.uint8, device="cuda:0")
        assert f.read(OnlyDLPack(u)) == len(data) and torch.equal(u, expect)
        cpu = torch.zeros(1 << 20, dtype=torch.uint8)  # CPU tensor: DLPack on the host
        assert f.read(cpu) == 1 << 20 and bytes(cpu.numpy()) == data[: 1 << 20]


def test_raw_read_async_on_torch_stream(tmp):
    torch = need("torch")
    n = 48 << 20
    data = blob(n, 9)
    p = os.path.join(tmp, "async")
    with open(p, "wb") as fh:
        fh.write(data)
    expect = torch.frombuffer(bytearray(data), dtype=torch.uint8).cuda().to(torch.int32)
    s = torch.cuda.Stream()
    buf = torch.empty(n, dtype=torch.uint8, device="cuda:0")
    with kvik.CuFile(p) as f, torch.cuda.stream(s):
        buf.fill_(7)  # a kernel before: the read must land after it
        fut = f.raw_read_async(buf, s)
        doubled = buf.to(torch.int32) * 2  # a kernel after: must see the read's data
        assert fut.check_bytes_done() == n
    s.synchronize()
    assert torch.equal(doubled, expect * 2)
    out = os.path.join(tmp, "async_w")
    src = torch.arange(n // 4, dtype=torch.int32, device="cuda:0")
    with kvik.CuFile(out, "w") as f, torch.cuda.stream(s):
        src.mul_(3)  # before the write
        assert f.raw_write_async(src, s).check_bytes_done() == n
    with open(out, "rb") as fh:
        got = torch.frombuffer(bytearray(fh.read()), dtype=torch.int32)
    assert torch.equal(got, (torch.arange(n // 4, dtype=torch.int32) * 3))


def test_safetensors_against_hf(tmp):
    torch = need("torch")
    st = need("safetensors.torch")
    g = torch.Generator(device="cuda:0").manual_seed(3)
    tensors = {
        "w": torch.randn(1000, 513, device="cuda:0", generator=g).to(torch.bfloat16),
        "b": torch.randn(513, device="cuda:0", generator=g),
        "i": torch.randint(0, 1000, (7, 9), device="cuda:0", generator=g),
        "h": torch.randn(3, device="cuda:0", generator=g).half(),
        "m": torch.rand(5, device="cuda:0", generator=g) > 0.5,
        "s": torch.tensor(3.0, device="cuda:0"),
    }
    if hasattr(torch, "float8_e4m3fn"):
        tensors["f8"] = torch.randn(64, device="cuda:0", generator=g).to(torch.float8_e4m3fn)
    a, b = os.path.join(tmp, "kv.st"), os.path.join(tmp, "hf.st")
    ks.save_file(tensors, a, metadata={"format": "pt"})
    st.save_file({k: v.cpu() for k, v in tensors.items()}, b, metadata={"format": "pt"})
    with open(a, "rb") as x, open(b, "rb") as y:
        assert x.read() == y.read(), "kvik's file differs from Hugging Face's"
    for dev in ("cuda:0", "cpu"):
        got = ks.load_file(b, device=dev)
        for k, v in tensors.items():
            assert got[k].device == torch.device(dev) and got[k].dtype == v.dtype, k
            assert torch.equal(got[k].cpu().reshape(-1).view(torch.uint8),
                               v.cpu().reshape(-1).view(torch.uint8)), k
    with ks.safe_open(b, framework="pt", device="cuda:0") as f:
        assert f.keys() == sorted(tensors) and f.metadata() == {"format": "pt"}
        assert torch.equal(f.get_tensor("i"), tensors["i"])


def test_safetensors_1gib_round_trip(tmp):
    torch = need("torch")
    g = torch.Generator(device="cuda:0").manual_seed(11)
    tensors = {f"t{i}": torch.randint(-(2**31), 2**31 - 1, ((64 << 20) // 4,), dtype=torch.int32,
                                      device="cuda:0", generator=g) for i in range(16)}  # fmt: skip
    p = os.path.join(tmp, "big.st")
    ks.save_file(tensors, p)
    kvik.drop_file_page_cache(p)
    got = ks.load_file(p, device="cuda:0")
    for k, v in tensors.items():
        assert torch.equal(got[k], v), k


def test_mmap_cupy_and_torch(tmp):
    """kvik.Mmap into and out of real device memory (kvikio's test_mmap.py with CuPy as xp,
    condensed): read, pread over several task sizes, a mapped sub-range, and kvik's writes."""
    cp = need("cupy")
    data = blob((16 << 20) + 333)
    p = os.path.join(tmp, "mmap")
    with open(p, "wb") as fh:
        fh.write(data)
    with kvik.Mmap(p) as m:
        a = cp.empty(len(data), dtype=cp.uint8)
        assert m.read(a) == len(data) and a.get().tobytes() == data
        for ts in (1024, 12345, 4 << 20):
            b = cp.zeros(len(data) - 4097, dtype=cp.uint8)
            assert m.pread(b, None, 4097, task_size=ts).get() == len(data) - 4097
            assert b.get().tobytes() == data[4097:], ts
    with kvik.Mmap(p, "r", 1 << 20, 512) as m:
        c = cp.empty(1 << 20, dtype=cp.uint8)
        assert m.pread(c, 1 << 20, 512).get() == 1 << 20
        assert c.get().tobytes() == data[512 : 512 + (1 << 20)]
    out = os.path.join(tmp, "mmap-out")
    src = cp.asarray(bytearray(data), dtype=cp.uint8)
    with kvik.Mmap(out, "w+", len(data)) as m:
        assert m.pwrite(src, task_size=1 << 20).get() == len(data)
        m.sync()
    with open(out, "rb") as fh:
        assert fh.read() == data
    try:
        torch = need("torch")
    except Skip:
        return
    t = torch.empty(len(data), dtype=torch.uint8, device="cuda:0")
    with kvik.Mmap(p) as m:
        assert m.pread(t).get() == len(data)
    assert bytes(t.cpu().numpy().tobytes()) == data


def main():
    tests = [(n, f) for n, f in sorted(globals().items()) if n.startswith("test_") and callable(f)]
    passed = failed = skipped = 0
    for name, fn in tests:
        with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR")) as tmp:
            try:
                fn(tmp)
                passed += 1
                print(f"PASS {name}")
            except Skip as e:
                skipped += 1
                print(f"SKIP {name}: {e}")
            except Exception:
                failed += 1
                print(f"FAIL {name}")
                traceback.print_exc()
    print(f"{passed} passed, {failed} failed, {skipped} skipped")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
