#!/usr/bin/env python3
"""A scripted HTTP server for kvik's remote tests: what real servers do on bad days, a small
WebHDFS, and presigned-URL (SigV4 query) verification. Python standard library only.

Serves the files of --root. Binds 127.0.0.1 on a free port and writes the port to --port-file
once it listens. Routes (NAME is a file under --root):

  /f/NAME                      a well-behaved server: HEAD, GET, single byte ranges
  /redirect/NAME               302 to /f/NAME
  /fault/KIND/ID/NAME          misbehaviour KIND, counted per ID (see fault() below)
  /webhdfs/v1/NAME?op=...      GETFILESTATUS; OPEN&offset=&length= answered with a 307 to
                               /datanode/NAME (as a namenode does); --hdfs-user is required
                               in user.name when given
  /presigned/NAME?X-Amz-...    SigV4 query-string auth checked against --secret; HEAD refused
  /presign/NAME                answers a presigned URL for /presigned/NAME (valid 1 hour)
  /stats/ID                    requests seen for ID so far; /stats: all requests so far
"""
import argparse
import datetime
import hashlib
import hmac
import http.server
import json
import os
import socket
import socketserver
import struct
import sys
import threading
import time
import urllib.parse

ARGS = None
LOCK = threading.Lock()
COUNTS = {}  # ID -> requests
TOTAL = [0]

ACCESS_KEY = "AKIDKVIKTEST"
REGION = "us-east-1"


def bump(key):
    with LOCK:
        COUNTS[key] = COUNTS.get(key, 0) + 1
        return COUNTS[key]


def aws_quote(s):
    return urllib.parse.quote(s, safe="-_.~")


def sigv4_presigned_ok(method, raw_path, raw_query, host, secret):
    """Checks an AWS SigV4 presigned (query-string) signature. Returns (ok, why)."""
    pairs = [p for p in raw_query.split("&") if p]
    params = []
    sig = None
    for p in pairs:
        k, _, v = p.partition("=")
        k = urllib.parse.unquote(k)
        v = urllib.parse.unquote(v)
        if k == "X-Amz-Signature":
            sig = v
            continue
        params.append((k, v))
    d = dict(params)
    for need in ("X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-SignedHeaders"):
        if need not in d:
            return False, "missing " + need
    if sig is None:
        return False, "missing X-Amz-Signature"
    cred = d["X-Amz-Credential"].split("/")
    if len(cred) != 5:
        return False, "bad credential"
    key_id, date, region, service, term = cred
    if key_id != ACCESS_KEY:
        return False, "InvalidAccessKeyId"
    expires = int(d.get("X-Amz-Expires", "3600"))
    t = datetime.datetime.strptime(d["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.timezone.utc)
    if (datetime.datetime.now(datetime.timezone.utc) - t).total_seconds() > expires:
        return False, "expired"
    cq = "&".join(aws_quote(k) + "=" + aws_quote(v) for k, v in sorted(params))
    signed = d["X-Amz-SignedHeaders"].split(";")
    hdrs = {"host": host}
    ch = "".join(h + ":" + hdrs.get(h, "").strip() + "\n" for h in signed)
    creq = "\n".join([method, raw_path, cq, ch, ";".join(signed), "UNSIGNED-PAYLOAD"])
    scope = "/".join([date, region, service, term])
    sts = "\n".join(["AWS4-HMAC-SHA256", d["X-Amz-Date"], scope,
                     hashlib.sha256(creq.encode()).hexdigest()])
    k = ("AWS4" + secret).encode()
    for part in (date, region, service, term):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    want = hmac.new(k, sts.encode(), hashlib.sha256).hexdigest()
    return hmac.compare_digest(want, sig), "SignatureDoesNotMatch"


def presign(host, path, secret):
    now = datetime.datetime.now(datetime.timezone.utc)
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    date = now.strftime("%Y%m%d")
    params = [("X-Amz-Algorithm", "AWS4-HMAC-SHA256"),
              ("X-Amz-Credential", "%s/%s/%s/s3/aws4_request" % (ACCESS_KEY, date, REGION)),
              ("X-Amz-Date", amz_date), ("X-Amz-Expires", "3600"),
              ("X-Amz-SignedHeaders", "host")]
    cq = "&".join(aws_quote(k) + "=" + aws_quote(v) for k, v in sorted(params))
    creq = "\n".join(["GET", path, cq, "host:" + host + "\n", "host", "UNSIGNED-PAYLOAD"])
    scope = "%s/%s/s3/aws4_request" % (date, REGION)
    sts = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(creq.encode()).hexdigest()])
    k = ("AWS4" + secret).encode()
    for part in (date, REGION, "s3", "aws4_request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    sig = hmac.new(k, sts.encode(), hashlib.sha256).hexdigest()
    return "http://%s%s?%s&X-Amz-Signature=%s" % (host, path, cq, sig)


def parse_range(h, size):
    """Returns (first, last) or None for no/ignored range, or 'bad' for unsatisfiable."""
    if not h or not h.startswith("bytes=") or "," in h:
        return None
    a, _, b = h[6:].partition("-")
    try:
        if a == "":
            n = int(b)
            if n == 0:
                return "bad"
            return (max(0, size - n), size - 1)
        first = int(a)
        last = int(b) if b else size - 1
    except ValueError:
        return None
    if first >= size or first > last:
        return "bad"
    return (first, min(last, size - 1))


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "kvik-scripted/1"

    def log_message(self, fmt, *args):
        if ARGS.verbose:
            sys.stderr.write("%s\n" % (fmt % args))

    # -- helpers ------------------------------------------------------------------------------
    def send_plain(self, code, body=b"", ctype="text/plain", extra=None):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def s3_error(self, code, s3code, msg):
        body = ("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>%s</Code>"
                "<Message>%s</Message></Error>" % (s3code, msg)).encode()
        self.send_plain(code, body, "application/xml")

    def load(self, name):
        path = os.path.join(ARGS.root, os.path.basename(name))
        try:
            with open(path, "rb") as f:
                return f.read()
        except OSError:
            return None

    def serve(self, data, honour_range=True, cut=None, reset=False, len_delta=0,
              shift=0):
        """Serves data with an optional range. cut: send only this fraction of the body then
        close; reset: then send a TCP RST; len_delta: lie in Content-Length; shift: claim and
        send a range shifted by this many bytes."""
        size = len(data)
        rng = parse_range(self.headers.get("Range"), size) if honour_range else None
        if rng == "bad":
            self.send_plain(416, b"", extra={"Content-Range": "bytes */%d" % size})
            return
        if rng is None:
            code, body, cr = 200, data, None
        else:
            first, last = rng
            first = min(first + shift, size - 1)
            last = min(last + shift, size - 1)
            code, body, cr = 206, data[first:last + 1], "bytes %d-%d/%d" % (first, last, size)
        self.send_response(code)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(len(body) + len_delta))
        if cr:
            self.send_header("Content-Range", cr)
        if cut is not None:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command == "HEAD":
            return
        if cut is not None:
            self.wfile.write(body[: int(len(body) * cut)])
            self.wfile.flush()
            if reset:
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                           struct.pack("ii", 1, 0))
            self.close_connection = True
            return
        if len_delta > 0:
            self.wfile.write(body)
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body[: len(body) + len_delta] if len_delta < 0 else body)

    # -- routes -------------------------------------------------------------------------------
    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        with LOCK:
            TOTAL[0] += 1
        u = urllib.parse.urlsplit(self.path)
        parts = u.path.split("/")
        q = urllib.parse.parse_qs(u.query)
        host = self.headers.get("Host", "")
        if u.path == "/stats":
            return self.send_plain(200, str(TOTAL[0]).encode())
        if parts[1] == "stats" and len(parts) == 3:
            with LOCK:
                n = COUNTS.get(parts[2], 0)
            return self.send_plain(200, str(n).encode())
        if parts[1] == "f" and len(parts) == 3:
            data = self.load(parts[2])
            if data is None:
                return self.s3_error(404, "NoSuchKey", "The specified key does not exist.")
            return self.serve(data)
        if parts[1] == "redirect" and len(parts) == 3:
            return self.send_plain(302, b"", extra={"Location": "/f/" + parts[2]})
        if parts[1] == "fault" and len(parts) == 5:
            return self.fault(parts[2], parts[3], parts[4], q)
        if parts[1] == "presign" and len(parts) == 3:
            return self.send_plain(200, presign(host, "/presigned/" + parts[2], ARGS.secret).encode())
        if parts[1] == "presigned" and len(parts) == 3:
            if self.command == "HEAD":
                return self.s3_error(403, "AccessDenied", "HEAD is not allowed with this URL")
            ok, why = sigv4_presigned_ok("GET", u.path, u.query, host, ARGS.secret)
            if not ok:
                return self.s3_error(403, why, "The request signature we calculated does not "
                                              "match the signature you provided.")
            data = self.load(parts[2])
            if data is None:
                return self.s3_error(404, "NoSuchKey", "The specified key does not exist.")
            return self.serve(data)
        if u.path.startswith("/webhdfs/v1/"):
            return self.webhdfs(u.path[len("/webhdfs/v1/"):], q)
        if parts[1] == "datanode" and len(parts) == 3:
            data = self.load(parts[2])
            off = int(q.get("offset", ["0"])[0])
            length = int(q.get("length", [str(len(data) - off)])[0])
            return self.send_plain(200, data[off:off + length], "application/octet-stream")
        self.send_plain(404, b"no such route\n")

    def webhdfs(self, name, q):
        op = q.get("op", [""])[0]
        if ARGS.hdfs_user and q.get("user.name", [""])[0] != ARGS.hdfs_user:
            body = json.dumps({"RemoteException": {"exception": "SecurityException",
                                                   "message": "user.name missing or wrong"}})
            return self.send_plain(401, body.encode(), "application/json")
        data = self.load(name)
        if data is None:
            body = json.dumps({"RemoteException": {
                "exception": "FileNotFoundException",
                "javaClassName": "java.io.FileNotFoundException",
                "message": "File does not exist: /" + name}})
            return self.send_plain(404, body.encode(), "application/json")
        if op == "GETFILESTATUS":
            body = json.dumps({"FileStatus": {
                "accessTime": 0, "blockSize": 134217728, "childrenNum": 0, "fileId": 16386,
                "group": "supergroup", "length": len(data), "modificationTime": 0,
                "owner": "kvik", "pathSuffix": "", "permission": "644", "replication": 1,
                "storagePolicy": 0, "type": "FILE"}})
            return self.send_plain(200, body.encode(), "application/json")
        if op == "OPEN":
            off = int(q.get("offset", ["0"])[0])
            length = int(q.get("length", [str(len(data) - off)])[0])
            loc = "/datanode/%s?offset=%d&length=%d" % (name, off, length)
            return self.send_plain(307, b"", extra={"Location": loc})
        body = json.dumps({"RemoteException": {"exception": "IllegalArgumentException",
                                               "message": "bad op " + op}})
        self.send_plain(400, body.encode(), "application/json")

    def fault(self, kind, ident, name, q):
        n = bump(ident)
        data = self.load(name)
        if data is None:
            return self.s3_error(404, "NoSuchKey", "The specified key does not exist.")
        first = n == 1
        if kind == "503once" and first or kind == "503always":
            return self.s3_error(503, "SlowDown", "Please reduce your request rate.")
        if kind == "404":
            return self.s3_error(404, "NoSuchKey", "The specified key does not exist.")
        if kind in ("short", "shortalways") and (first or kind == "shortalways"):
            return self.serve(data, cut=0.5)
        if kind in ("reset", "resetalways") and (first or kind == "resetalways"):
            return self.serve(data, cut=0.5, reset=True)
        if kind in ("slow", "slowalways") and (first or kind == "slowalways"):
            time.sleep(float(q.get("delay", ["3"])[0]))
            return self.serve(data)
        if kind == "onefails":
            # The range starting at byte ?at= fails at once (404, not retried); every other
            # request stalls for ?delay= seconds first.
            at = q.get("at", ["0"])[0]
            if self.headers.get("Range", "").startswith("bytes=%s-" % at):
                return self.s3_error(404, "NoSuchKey", "The specified key does not exist.")
            time.sleep(float(q.get("delay", ["3"])[0]))
            return self.serve(data)
        if kind == "bigheader":
            # A 300 KB response header (libcurl takes at most 100 KB).
            self.send_response(200)
            self.send_header("X-Big", "b" * 300000)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)
            return
        if kind == "hugelength":
            # A Content-Length that no 64-bit number holds.
            self.send_response(200)
            self.send_header("Content-Length", "99999999999999999999999")
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            return
        if kind == "norange":
            return self.serve(data, honour_range=False)
        if kind == "lenless":
            return self.serve(data, len_delta=-10)
        if kind == "lenmore":
            return self.serve(data, len_delta=10)
        if kind == "wrongrange":
            return self.serve(data, shift=1)
        return self.serve(data)


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


def main():
    global ARGS
    p = argparse.ArgumentParser()
    p.add_argument("--root", required=True)
    p.add_argument("--port-file", required=True)
    p.add_argument("--secret", default="kvik-test-secret")
    p.add_argument("--hdfs-user", default="")
    p.add_argument("--verbose", action="store_true")
    ARGS = p.parse_args()
    srv = Server(("127.0.0.1", 0), Handler)
    tmp = ARGS.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(srv.server_address[1]))
    os.rename(tmp, ARGS.port_file)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
