#!/usr/bin/env python3
"""The safetensors loader benchmark: one file of 32 tensors of 256 MiB (8 GiB) loaded into
cuda:0 by each loader, each in a fresh process, hot (page cache filled first) and cold
(posix_fadvise(DONTNEED) first); the time runs from the load call to torch.cuda.synchronize(),
and every tensor is checked after (dtype, shape, and a checksum computed on the GPU).

Loaders: kvik (kvik.safetensors.load_file), Hugging Face safetensors (load_file(device=
"cuda:0")), fastsafetensors (nogds=True), InstantTensor (safe_open(...).tensors(), cloned),
kvikio (CuFile.read of the data region into one torch buffer, at its defaults and with 16
threads and compat mode ON), torch.from_file(...).cuda(). A loader that cannot be imported is
reported as "not installed". Baselines in the same run: the pinned host-to-device copy and a
multi-threaded O_DIRECT read of the file (cold) into pinned memory.

Usage: python3 bench/loaders.py [--peers-path DIR] [--file PATH] [--size-mib 256]
          [--tensors 32] [--only kvik,hf,...] [--json-out FILE]
Peers come from --peers-path (prepended to sys.path and PYTHONPATH), e.g. a pip --target dir.
kvik itself: the installed package, or PYTHONPATH=<build>/python.
"""

from __future__ import annotations

import argparse
import json
import os
import struct
import subprocess
import sys
import time

LOADERS = ["kvik", "hf", "fastsafetensors", "instanttensor", "kvikio", "kvikio16compat", "torch"]
GiB = 1 << 30


# ---- the file ----------------------------------------------------------------------------
def make_file(path: str, ntensors: int, mib: int) -> dict:
    """Writes the file with kvik.safetensors.save_file from GPU tensors (random bf16) unless a
    file with the same layout exists; returns name -> checksum (sidecar path + '.json')."""
    import torch

    side = path + ".json"
    want = {"ntensors": ntensors, "mib": mib}
    if os.path.exists(path) and os.path.exists(side):
        with open(side) as fh:
            meta = json.load(fh)
        if meta.get("layout") == want:
            return meta["checks"]
    g = torch.Generator(device="cuda:0").manual_seed(1234)
    n = mib * (1 << 20) // 2
    tensors, checks = {}, {}
    for i in range(ntensors):
        t = torch.randint(-(2**15), 2**15, (n // 4096, 4096), generator=g, device="cuda:0",
                          dtype=torch.int16).view(torch.bfloat16)  # fmt: skip
        name = f"layers.{i}.weight"
        tensors[name] = t
        checks[name] = checksum(t)
    import kvik.safetensors

    kvik.safetensors.save_file(tensors, path, metadata={"format": "pt"})
    del tensors
    torch.cuda.empty_cache()
    with open(side, "w") as fh:
        json.dump({"layout": want, "checks": checks}, fh)
    return checks


def checksum(t) -> list:
    import torch

    v = t.reshape(-1).view(torch.int16).to(torch.int64)
    w = torch.arange(v.numel(), device=v.device) % 251 + 1  # position matters, not only values
    return [int(v.sum()), int((v * w).sum())]


def header(path: str):
    with open(path, "rb") as fh:
        (n,) = struct.unpack("<Q", fh.read(8))
        doc = json.loads(fh.read(n))
    doc.pop("__metadata__", None)
    return 8 + n, doc


def views(buf, data_start_in_buf: int, doc: dict):
    import torch

    names = {"BF16": torch.bfloat16, "F16": torch.float16, "F32": torch.float32, "I16": torch.int16,
             "U8": torch.uint8, "I64": torch.int64, "I32": torch.int32}  # fmt: skip
    out = {}
    for name, e in doc.items():
        b, end = e["data_offsets"]
        out[name] = buf[data_start_in_buf + b : data_start_in_buf + end].view(names[e["dtype"]]).reshape(e["shape"])
    return out


# ---- the loaders (each runs in a child process) --------------------------------------------
def load(loader: str, path: str):
    """Returns (tensors dict, keepalive). Imports happen in prepare()."""
    import torch

    if loader == "kvik":
        import kvik.safetensors

        return kvik.safetensors.load_file(path, device="cuda:0"), None
    if loader == "hf":
        import safetensors.torch

        return safetensors.torch.load_file(path, device="cuda:0"), None
    if loader == "fastsafetensors":
        from fastsafetensors import SafeTensorsFileLoader, SingleGroup

        ld = SafeTensorsFileLoader(SingleGroup(), torch.device("cuda:0"), nogds=True)
        ld.add_filenames({0: [path]})
        fb = ld.copy_files_to_device()
        _, doc = header(path)
        return {k: fb.get_tensor(k) for k in doc}, (ld, fb)
    if loader == "instanttensor":
        from instanttensor import safe_open

        out = {}
        with safe_open(path, framework="pt", device=0) as f:
            for name, t in f.tensors():
                out[name] = t.clone()
        return out, None
    if loader in ("kvikio", "kvikio16compat"):
        import kvikio
        import kvikio.defaults

        if loader == "kvikio16compat":
            kvikio.defaults.set({"num_threads": 16, "compat_mode": kvikio.CompatMode.ON})
        start, doc = header(path)
        size = os.path.getsize(path) - start
        buf = torch.empty(size, dtype=torch.uint8, device="cuda:0")
        with kvikio.CuFile(path, "r") as f:
            f.read(buf, size, start)
        return views(buf, 0, doc), buf
    if loader == "torch":
        start, doc = header(path)
        size = os.path.getsize(path)
        host = torch.from_file(path, shared=False, size=size, dtype=torch.uint8)
        buf = host.cuda()
        return views(buf, start, doc), buf
    raise ValueError(loader)


def prepare(loader: str) -> None:
    """Imports the loader (outside the timing); ImportError means not installed."""
    mods = {"kvik": ["kvik.safetensors"], "hf": ["safetensors.torch"],
            "fastsafetensors": ["fastsafetensors"], "instanttensor": ["instanttensor"],
            "kvikio": ["kvikio"], "kvikio16compat": ["kvikio"], "torch": []}[loader]  # fmt: skip
    for m in mods:
        __import__(m)


def drop_cache(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fdatasync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def warm_cache(path: str) -> None:
    with open(path, "rb", buffering=0) as fh:
        b = bytearray(64 << 20)
        while fh.readinto(b):
            pass


def child(loader: str, cache: str, path: str) -> dict:
    res = {"loader": loader, "cache": cache}
    try:
        prepare(loader)
    except ImportError as e:
        res.update(status="not installed", error=str(e))
        return res
    import torch

    torch.empty(1, device="cuda:0")  # the context, outside the timing
    torch.cuda.synchronize()
    with open(path + ".json") as fh:
        checks = json.load(fh)["checks"]
    if cache == "cold":
        drop_cache(path)
    else:
        warm_cache(path)
    size = os.path.getsize(path)
    try:
        t0 = time.perf_counter()
        tensors, keep = load(loader, path)
        torch.cuda.synchronize()
        dt = time.perf_counter() - t0
    except Exception as e:  # a peer failing is reported, not fatal for the table
        res.update(status="failed", error=f"{type(e).__name__}: {e}")
        return res
    bad = [k for k, c in checks.items()
           if k not in tensors or tensors[k].device != torch.device("cuda:0") or checksum(tensors[k]) != c]  # fmt: skip
    res.update(status="ok" if not bad and len(tensors) == len(checks) else "WRONG DATA",
               seconds=round(dt, 4), gbps=round(size / dt / 1e9, 2), bad=bad[:4])  # fmt: skip
    return res


# ---- baselines ---------------------------------------------------------------------------
def pinned_h2d() -> float:
    import torch

    n = 2 * GiB
    h = torch.empty(n, dtype=torch.uint8, pin_memory=True)
    d = torch.empty(n, dtype=torch.uint8, device="cuda:0")
    d.copy_(h, non_blocking=True)
    torch.cuda.synchronize()
    best = 0.0
    for _ in range(3):
        t0 = time.perf_counter()
        d.copy_(h, non_blocking=True)
        torch.cuda.synchronize()
        best = max(best, n / (time.perf_counter() - t0) / 1e9)
    return round(best, 2)


def odirect_read(path: str, threads: int = 16, chunk: int = 16 << 20) -> float:
    import mmap
    from concurrent.futures import ThreadPoolExecutor

    drop_cache(path)
    size = os.path.getsize(path) // 4096 * 4096
    fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
    bufs = [mmap.mmap(-1, chunk) for _ in range(threads)]

    def work(i):
        b = bufs[i]
        off = i * chunk
        while off < size:
            os.preadv(fd, [memoryview(b)[: min(chunk, size - off)]], off)
            off += threads * chunk

    try:
        t0 = time.perf_counter()
        with ThreadPoolExecutor(threads) as ex:
            list(ex.map(work, range(threads)))
        dt = time.perf_counter() - t0
    finally:
        os.close(fd)
    return round(size / dt / 1e9, 2)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--peers-path", default=os.environ.get("KVIK_PEERS_PATH"))
    ap.add_argument("--file", default=os.path.join(os.environ.get("TMPDIR", "/tmp"), "kvik-loaders.safetensors"))
    ap.add_argument("--size-mib", type=int, default=256, help="MiB per tensor (default 256)")
    ap.add_argument("--tensors", type=int, default=32)
    ap.add_argument("--only", default=",".join(LOADERS))
    ap.add_argument("--json-out")
    ap.add_argument("--child", nargs=2, metavar=("LOADER", "CACHE"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.peers_path:
        sys.path.insert(0, a.peers_path)
    if a.child:
        print("RESULT " + json.dumps(child(a.child[0], a.child[1], a.file)), flush=True)
        return 0

    import torch

    env = dict(os.environ)
    if a.peers_path:
        env["PYTHONPATH"] = a.peers_path + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    card = torch.cuda.get_device_name(0)
    make_file(a.file, a.tensors, a.size_mib)
    size = os.path.getsize(a.file)
    rows = []
    base = {"pinned_h2d_gbps": pinned_h2d(), "odirect_read_gbps": odirect_read(a.file)}
    torch.cuda.empty_cache()
    for cache in ("hot", "cold"):
        for loader in a.only.split(","):
            r = subprocess.run([sys.executable, os.path.abspath(__file__), "--file", a.file,
                                "--child", loader, cache], env=env, capture_output=True, text=True)  # fmt: skip
            line = [ln for ln in r.stdout.splitlines() if ln.startswith("RESULT ")]
            res = json.loads(line[-1][7:]) if line else {
                "loader": loader, "cache": cache, "status": f"crashed (exit {r.returncode})",
                "error": (r.stderr or r.stdout)[-400:]}  # fmt: skip
            rows.append(res)
            print(json.dumps(res), flush=True)
    print()
    print(f"safetensors loaders, {card}: {a.tensors} tensors x {a.size_mib} MiB = {size / GiB:.2f} GiB file {a.file}")
    print(f"baselines: pinned host-to-device copy {base['pinned_h2d_gbps']} GB/s; "
          f"O_DIRECT read of the file (16 threads, 16 MiB, cold) {base['odirect_read_gbps']} GB/s")  # fmt: skip
    print(f"{'loader':<16} {'hot GB/s':>9} {'hot s':>7} {'cold GB/s':>10} {'cold s':>7}  status")
    for loader in a.only.split(","):
        h = next(r for r in rows if r["loader"] == loader and r["cache"] == "hot")
        c = next(r for r in rows if r["loader"] == loader and r["cache"] == "cold")
        st = h["status"] if h["status"] == c["status"] else f"hot {h['status']}, cold {c['status']}"
        if st not in ("ok", "not installed"):
            st += ": " + (h.get("error") or c.get("error") or str(h.get("bad") or c.get("bad")))[:120]
        print(f"{loader:<16} {h.get('gbps', '-'):>9} {h.get('seconds', '-'):>7} "
              f"{c.get('gbps', '-'):>10} {c.get('seconds', '-'):>7}  {st}")  # fmt: skip
    if a.json_out:
        with open(a.json_out, "a") as fh:
            for r in rows:
                fh.write(json.dumps({"card": card, **base, **r}) + "\n")
    failed = [r for r in rows if r["status"] not in ("ok", "not installed")]
    kvik_rows = [r for r in rows if r["loader"] == "kvik"]
    return 1 if any(r["status"] != "ok" for r in kvik_rows) or any(
        r["status"] == "WRONG DATA" for r in failed) else 0


if __name__ == "__main__":
    sys.exit(main())
