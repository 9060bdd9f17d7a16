"""Device memory through the fake libcuda.so.1 (tests/fake/fake_cuda.c): runs tests/fake_device/
in a child pytest with the fake first in LD_LIBRARY_PATH (a process loads its driver once).
scripts/test.sh sets KVIK_TEST_FAKE_CUDA_DIR to the build tree's directory of the fake."""

import os
import subprocess
import sys

import pytest


def test_fake_device_suite():
    d = os.environ.get("KVIK_TEST_FAKE_CUDA_DIR")
    if not d or not os.path.exists(os.path.join(d, "libcuda.so.1")):
        pytest.skip("KVIK_TEST_FAKE_CUDA_DIR does not name a directory holding the fake "
                    "libcuda.so.1 (scripts/test.sh sets it to <build>/tests/fake/lib)")
    env = dict(os.environ)
    env["LD_LIBRARY_PATH"] = d + (":" + env["LD_LIBRARY_PATH"] if env.get("LD_LIBRARY_PATH") else "")
    env["KVIK_FAKE_CUDA_ACTIVE"] = "1"
    # The child imports the kvik this process imported (a relative PYTHONPATH would not survive
    # the child's working directory).
    import kvik

    pkg_root = os.path.dirname(os.path.dirname(os.path.abspath(kvik.__file__)))
    env["PYTHONPATH"] = pkg_root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    here = os.path.dirname(os.path.abspath(__file__))
    r = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
         os.path.join(here, "fake_device")],
        env=env, cwd=here, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    print(r.stdout[-20000:], r.stderr[-5000:])
    assert r.returncode == 0, r.stdout[-8000:] + r.stderr[-4000:]
    assert " passed" in r.stdout
