"""The wheel: built from the checkout with pip (scikit-build-core), installed into a clean
virtual environment without an index, imported there, and used for one read. Its name says
abi3 (one wheel for CPython 3.9+) and it holds libkvik beside the module."""

import os
import subprocess
import sys
import venv
import zipfile

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def test_wheel_installs_into_clean_venv(tmp_path):
    if not os.path.exists(os.path.join(ROOT, "pyproject.toml")):
        pytest.skip(f"no pyproject.toml at {ROOT}: not run from a checkout")
    if os.environ.get("KVIK_TEST_OFFLINE") == "1":
        pytest.skip("KVIK_TEST_OFFLINE=1: building a wheel needs scikit-build-core from the index")
    dist = tmp_path / "dist"
    r = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), ROOT],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    wheels = list(dist.glob("kvik-*.whl"))
    assert len(wheels) == 1, wheels
    whl = wheels[0]
    assert "-cp39-abi3-" in whl.name, whl.name
    names = zipfile.ZipFile(whl).namelist()
    for want in ("kvik/_kvik.abi3.so", "kvik/libkvik.so.0", "kvik/__init__.py",
                 "kvik/safetensors.py"):  # fmt: skip
        assert want in names, (want, names)
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True, clear=True).create(env_dir)
    py = str(env_dir / "bin" / "python")
    r = subprocess.run([py, "-m", "pip", "install", "-q", "--no-index", "--no-deps", str(whl)],
                       capture_output=True, text=True, timeout=300)  # fmt: skip
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    probe = tmp_path / "probe.bin"
    probe.write_bytes(b"kvik wheel")
    code = (
        "import kvik, sys; b = bytearray(10);"
        f"n = kvik.CuFile({str(probe)!r}).read(b);"
        "assert n == 10 and bytes(b) == b'kvik wheel', (n, b);"
        "assert 'numpy' not in sys.modules and 'torch' not in sys.modules;"
        "print(kvik.__version__, kvik.__file__)"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "LD_LIBRARY_PATH")}
    r = subprocess.run([py, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert str(env_dir) in r.stdout
