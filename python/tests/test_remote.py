"""RemoteFile against servers started here on 127.0.0.1: a small HTTP server with Range support
(in a thread of this process), and moto's S3 server (a child process; the S3 tests skip, saying
why, without a python that has moto and boto3: KVIK_TEST_MOTO_PYTHON, as for the C tests)."""

import http.server
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import kvik
from kvik import RemoteEndpointType as T

pytestmark = pytest.mark.skipif(
    not kvik.is_remote_file_available(), reason="libkvik was built without libcurl"
)

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


class RangeHandler(http.server.BaseHTTPRequestHandler):
    data = b""
    requests = []

    def log_message(self, *a):
        pass

    def do_HEAD(self):
        if self.path != "/blob":
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.data)))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()

    def do_GET(self):
        RangeHandler.requests.append(self.headers.get("Range"))
        if self.path != "/blob":
            self.send_error(404)
            return
        m = re.fullmatch(r"bytes=(\d+)-(\d+)", self.headers.get("Range", ""))
        if not m:
            self.send_response(200)
            self.send_header("Content-Length", str(len(self.data)))
            self.end_headers()
            self.wfile.write(self.data)
            return
        a, b = int(m.group(1)), min(int(m.group(2)), len(self.data) - 1)
        if a >= len(self.data):
            self.send_error(416)
            return
        self.send_response(206)
        self.send_header("Content-Range", f"bytes {a}-{b}/{len(self.data)}")
        self.send_header("Content-Length", str(b - a + 1))
        self.end_headers()
        self.wfile.write(self.data[a : b + 1])


@pytest.fixture(scope="module")
def server():
    RangeHandler.data = np.random.default_rng(4).integers(0, 256, 3 << 20, np.uint8).tobytes()
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RangeHandler)
    srv.daemon_threads = True
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}", RangeHandler.data
    srv.shutdown()


def test_http_read(server):
    base, data = server
    with kvik.RemoteFile.open_http(base + "/blob") as f:
        assert f.nbytes() == len(data)
        assert f.remote_endpoint_type() is T.HTTP
        a = np.zeros(len(data), np.uint8)
        assert f.read(a) == len(data) and a.tobytes() == data
        b = bytearray(1000)
        assert f.read(b, 700, 12345) == 700 and bytes(b[:700]) == data[12345:13045]
        RangeHandler.requests.clear()
        c = np.zeros(1 << 20, np.uint8)
        assert f.pread(c, file_offset=7, task_size=256 << 10).get() == 1 << 20
        assert c.tobytes() == data[7 : 7 + (1 << 20)]
        assert len(RangeHandler.requests) == 4  # split into task_size ranges
        assert "http://127.0.0.1" in str(f)
    assert f.closed
    with pytest.raises(ValueError, match="closed"):
        f.nbytes()


def test_http_open_with_size_and_auto(server):
    base, data = server
    f = kvik.RemoteFile.open(base + "/blob", nbytes=len(data))
    assert f.remote_endpoint_type() is T.HTTP and f.nbytes() == len(data)
    f = kvik.RemoteFile.open(base + "/blob", T.HTTP, allow_list=[T.HTTP, T.S3])
    assert f.nbytes() == len(data)
    assert kvik.infer_remote_endpoint_type(base + "/blob") is T.HTTP
    assert kvik.infer_remote_endpoint_type("s3://bucket/key") in (T.S3, T.S3_PUBLIC)


def test_http_errors(server):
    base, data = server
    with pytest.raises(kvik.Error) as ei:
        kvik.RemoteFile.open_http(base + "/missing")
    assert ei.value.name == "KVIK_EHTTP" and "404" in str(ei.value)
    with pytest.raises(kvik.Error) as ei:
        kvik.RemoteFile.open(base + "/blob", T.HTTP, allow_list=[T.S3])
    assert ei.value.name == "KVIK_EINVAL"
    with kvik.RemoteFile.open_http(base + "/blob") as f:
        with pytest.raises(ValueError) as ei:  # past the end of the object
            f.read(bytearray(10), 10, len(data) - 5)
        assert isinstance(ei.value, kvik.Error) and ei.value.name == "KVIK_EOVERFLOW"
        with pytest.raises(ValueError, match="read-only"):
            f.read(b"abc")
        with pytest.raises(ValueError, match="exceeds"):
            f.read(bytearray(3), 4)
    with pytest.raises(ValueError):
        kvik.RemoteFile.open_http(base + "/blob", nbytes=-1)
    with pytest.raises(ValueError):
        kvik.RemoteFile.open_s3_url("ftp://x/y")
    with pytest.raises(TypeError):
        kvik.RemoteFile("not a handle")


def _moto_python():
    for cand in (os.environ.get("KVIK_TEST_MOTO_PYTHON"), os.environ.get("KVIK_TEST_PYTHON"),
                 sys.executable):  # fmt: skip
        try:
            if cand and subprocess.run([cand, "-c", "import moto.server, boto3"],
                                       capture_output=True).returncode == 0:  # fmt: skip
                return cand
        except OSError:
            continue
    return None


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    py = _moto_python()
    if not py:
        pytest.skip("no python with moto and boto3 (set KVIK_TEST_MOTO_PYTHON, as .ci/run does)")
    d = tmp_path_factory.mktemp("s3")
    data = np.random.default_rng(5).integers(0, 256, (1 << 20) + 77, np.uint8).tobytes()
    (d / "files").mkdir()
    (d / "files" / "obj.bin").write_bytes(data)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = open(d / "moto.log", "w")
    proc = subprocess.Popen([py, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    endpoint = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        r = subprocess.run([py, os.path.join(ROOT, "tests", "remote", "s3_setup.py"), endpoint,
                            "kvik-py", str(d / "files")], capture_output=True, text=True)  # fmt: skip
        if r.returncode != 0:
            pytest.fail("s3_setup.py failed: " + r.stderr[-2000:])
        out = dict(line.split(" ", 1) for line in r.stdout.splitlines() if line.startswith(("access_key", "secret_key")))
        presigned = dict(line.split(" ", 1)[1].split("\t") for line in r.stdout.splitlines() if line.startswith("presigned"))
        yield {"endpoint": endpoint, "key": out["access_key"], "secret": out["secret_key"],
               "presigned": presigned["obj.bin"], "data": data}  # fmt: skip
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
        shutil.rmtree(d, ignore_errors=True)


def test_s3_signed(s3):
    f = kvik.RemoteFile.open_s3("kvik-py", "obj.bin", aws_region_name="us-east-1",
                                aws_access_key_id=s3["key"], aws_secret_access_key=s3["secret"],
                                aws_endpoint_url=s3["endpoint"])  # fmt: skip
    assert f.remote_endpoint_type() is T.S3 and f.nbytes() == len(s3["data"])
    a = np.zeros(len(s3["data"]), np.uint8)
    assert f.read(a) == len(s3["data"]) and a.tobytes() == s3["data"]
    assert s3["secret"] not in str(f)
    g = kvik.RemoteFile.open_s3_url(f"{s3['endpoint']}/kvik-py/obj.bin", aws_region_name="us-east-1",
                                    aws_access_key_id=s3["key"], aws_secret_access_key=s3["secret"])  # fmt: skip
    b = bytearray(100)
    assert g.read(b, 100, 1000) == 100 and bytes(b) == s3["data"][1000:1100]
    with pytest.raises(kvik.Error) as ei:
        kvik.RemoteFile.open_s3("kvik-py", "obj.bin", aws_region_name="us-east-1",
                                aws_access_key_id=s3["key"], aws_secret_access_key="wrong",
                                aws_endpoint_url=s3["endpoint"])  # fmt: skip
    assert ei.value.name == "KVIK_EHTTP" and "wrong" not in str(ei.value)


def _moto_auth(endpoint, value):
    import urllib.request

    req = urllib.request.Request(endpoint + "/moto-api/reset-auth", data=value.encode(),
                                 headers={"Content-Type": "text/plain"}, method="POST")
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status == 200


def test_s3_presigned(s3):
    # moto answers 500 to presigned URLs while it checks header signatures (as the C test
    # notes), so its authentication is off for this part.
    _moto_auth(s3["endpoint"], "inf")
    try:
        f = kvik.RemoteFile.open_s3_presigned_url(s3["presigned"])
        assert f.remote_endpoint_type() is T.S3_PRESIGNED_URL and f.nbytes() == len(s3["data"])
        a = np.zeros(4096, np.uint8)
        assert f.read(a, file_offset=5) == 4096 and a.tobytes() == s3["data"][5:4101]
        assert "X-Amz-Signature=***" in str(f)
    finally:
        _moto_auth(s3["endpoint"], "0")
