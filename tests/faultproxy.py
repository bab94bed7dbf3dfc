#!/usr/bin/python3
"""faultproxy: an HTTP/1.1 proxy that injects faults between imgfs and S3.

imgfs talks to the proxy (-o endpoint=http://127.0.0.1:PORT); the proxy
relays each request to the real server byte for byte (the Host header
included, so SigV4 signatures made for the proxy's host:port verify at the
server, which checks them against the Host it receives) unless a rule says
otherwise. Rules are tried in order for every request; the first whose
filters match and whose dice roll hits decides what happens:

  {"action": "error", "status": 503, "code": "SlowDown"}
        answer with an S3 XML error body instead of forwarding
  {"action": "reset_request"}
        read half the request body, then reset the connection (RST)
  {"action": "reset_response"}
        forward, then send the response head and half its body, then RST
  {"action": "stall", "seconds": 20, "after": false}
        hold the request for `seconds` (after=true: forward it first, so the
        server acts on it, then hold its response); ends early when the
        client gives up, and the connection is closed afterwards
  {"action": "rewrite", ...}
        forward, then change the response before sending it:
          "status": N            replace the status code
          "body": "text"         replace the body (Content-Length fixed up)
          "truncate": 0.5        keep this fraction of the body (Content-Length
                                 fixed up: a complete reply of cut content)
          "drop_headers": [...]  remove these response headers
          "set_headers": {...}   set these response headers (verbatim, so an
                                 absurd Content-Length can be sent)
          "close": true          close the connection after the reply

Filters and dice (all optional):
  "rate": 0.1        probability for each matching request (default 1)
  "count": 5         inject at most this many times
  "ops": [...]       S3 operations: GetObject HeadObject PutObject
                     CopyObject DeleteObject ListObjects
                     CreateMultipartUpload UploadPart CompleteMultipartUpload
                     AbortMultipartUpload ListMultipartUploads Other
  "methods": [...]   HTTP methods
  "path": "regex"    searched in the request target (path and query)

Every decision comes from one random.Random(seed), so a run is repeatable
for a given order of requests. Counters: requests seen by op, injections by
action, body bytes relayed to the client by op (replies passed through
untouched only), and requests by op and by kind of x-amz-content-sha256
("signed": a SHA-256, "unsigned": UNSIGNED-PAYLOAD, "other").

Use in-process (FaultProxy(upstream).start()) or as a program:

  tests/faultproxy.py --upstream 127.0.0.1:7480 [--listen 127.0.0.1:0]
      [--control 127.0.0.1:0] [--seed N] [--rules FILE.json]

which prints one line "proxy=http://H:P control=http://H:C" once listening
and serves a control endpoint:
  GET  /stats              JSON counters
  PUT  /rules              JSON {"rules": [...], "seed": N} replaces the rules
  POST /reset              zero the counters
ProxyControl(control_url) wraps it for tests.
"""

import argparse
import json
import random
import re
import select
import socket
import struct
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HEAD_MAX = 64 * 1024
COPY_CHUNK = 256 * 1024

OPS = (
    "GetObject", "HeadObject", "PutObject", "CopyObject", "DeleteObject",
    "ListObjects", "CreateMultipartUpload", "UploadPart",
    "CompleteMultipartUpload", "AbortMultipartUpload",
    "ListMultipartUploads", "Other",
)


class Closed(Exception):
    """The peer closed the connection."""


class Message:
    """An HTTP message head: start line and headers, as received."""

    def __init__(self, raw):
        self.raw = raw
        lines = raw.decode("latin-1").split("\r\n")
        self.start = lines[0]
        self.headers = []
        for line in lines[1:]:
            if not line:
                continue
            name, _, value = line.partition(":")
            self.headers.append((name.strip(), value.strip()))

    def get(self, name, default=None):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return default

    def drop(self, name):
        self.headers = [(k, v) for k, v in self.headers if k.lower() != name.lower()]

    def put(self, name, value):
        self.drop(name)
        self.headers.append((name, value))

    def encode(self):
        lines = [self.start] + [f"{k}: {v}" for k, v in self.headers]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    # requests
    @property
    def method(self):
        return self.start.split(" ", 1)[0]

    @property
    def target(self):
        parts = self.start.split(" ")
        return parts[1] if len(parts) > 1 else ""

    # responses
    @property
    def status(self):
        parts = self.start.split(" ")
        return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0

    def set_status(self, status):
        reasons = {200: "OK", 404: "Not Found", 500: "Internal Server Error",
                   503: "Service Unavailable"}
        version = self.start.split(" ", 1)[0]
        self.start = f"{version} {status} {reasons.get(status, 'Status')}"


def s3_op(req):
    """The S3 operation a request performs."""
    method, target = req.method, req.target
    path, _, query = target.partition("?")
    params = {p.split("=", 1)[0] for p in query.split("&") if p}
    is_bucket = path.rstrip("/").count("/") <= 1
    if method == "GET" and "uploads" in params:
        return "ListMultipartUploads"
    if method == "GET" and is_bucket:
        return "ListObjects"
    if method == "GET":
        return "GetObject"
    if method == "HEAD":
        return "HeadObject"
    if method == "POST" and "uploads" in params:
        return "CreateMultipartUpload"
    if method == "POST" and "uploadId" in params:
        return "CompleteMultipartUpload"
    if method == "PUT" and "uploadId" in params:
        return "UploadPart"
    if method == "PUT" and req.get("x-amz-copy-source"):
        return "CopyObject"
    if method == "PUT" and not is_bucket:
        return "PutObject"
    if method == "DELETE" and "uploadId" in params:
        return "AbortMultipartUpload"
    if method == "DELETE":
        return "DeleteObject"
    return "Other"


def error_body(code, message, resource):
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message>"
        f"<Resource>{resource}</Resource>"
        "<RequestId>faultproxy</RequestId></Error>"
    ).encode()


class Stream:
    """A socket with a read buffer."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def fill(self):
        data = self.sock.recv(COPY_CHUNK)
        if not data:
            raise Closed()
        self.buf += data

    def read_head(self):
        """The next message head (through the blank line), or Closed."""
        while b"\r\n\r\n" not in self.buf:
            if len(self.buf) > HEAD_MAX:
                raise Closed()
            self.fill()
        end = self.buf.index(b"\r\n\r\n") + 4
        raw, self.buf = self.buf[:end], self.buf[end:]
        return Message(raw)

    def read_line(self):
        while b"\r\n" not in self.buf:
            self.fill()
        end = self.buf.index(b"\r\n") + 2
        line, self.buf = self.buf[:end], self.buf[end:]
        return line

    def read_exact(self, n):
        """Yield exactly n bytes in pieces."""
        while n > 0:
            if not self.buf:
                self.fill()
            piece, self.buf = self.buf[:n], self.buf[n:]
            n -= len(piece)
            yield piece

    def read_to_close(self):
        while True:
            if self.buf:
                piece, self.buf = self.buf, b""
                yield piece
            try:
                self.fill()
            except Closed:
                return

    def body_raw(self, head, no_body=False):
        """Yield the body's bytes as on the wire (chunk framing kept)."""
        if no_body:
            return
        if "chunked" in (head.get("Transfer-Encoding") or "").lower():
            yield from self._chunked_raw()
            return
        length = head.get("Content-Length")
        if length is not None:
            yield from self.read_exact(int(length))
        elif isinstance(head, Message) and head.start.startswith("HTTP/"):
            yield from self.read_to_close()

    def _chunked_raw(self):
        while True:
            line = self.read_line()
            yield line
            size = int(line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while True:
                    trailer = self.read_line()
                    yield trailer
                    if trailer == b"\r\n":
                        return
            yield from self.read_exact(size + 2)


def dechunk(raw):
    """The payload of a chunked body given as on the wire."""
    out, pos = [], 0
    while True:
        eol = raw.index(b"\r\n", pos)
        size = int(raw[pos:eol].split(b";")[0].strip() or b"0", 16)
        pos = eol + 2
        if size == 0:
            return b"".join(out)
        out.append(raw[pos:pos + size])
        pos += size + 2


def reset(sock):
    """Close with an RST rather than a FIN."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


class FaultProxy:
    def __init__(self, upstream, listen=("127.0.0.1", 0), seed=0, rules=None):
        if isinstance(upstream, str):
            host, _, port = upstream.rpartition(":")
            upstream = (host or "127.0.0.1", int(port))
        self.upstream = upstream
        self.lock = threading.Lock()
        self.rules = []
        self.rng = random.Random(seed)
        self.counts = {}
        self.set_rules(rules or [], seed)
        self.reset_counts()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(listen)
        self.sock.listen(256)
        self.port = self.sock.getsockname()[1]
        self.endpoint = f"http://{listen[0]}:{self.port}"
        self.stopping = False

    # ------------------------------------------------------------ control

    def set_rules(self, rules, seed=None):
        checked = []
        for r in rules:
            r = dict(r)
            if r.get("action") not in ("error", "reset_request", "reset_response", "stall", "rewrite"):
                raise ValueError(f"unknown action in rule {r!r}")
            for op in r.get("ops", []):
                if op not in OPS:
                    raise ValueError(f"unknown op {op!r}")
            if "path" in r:
                r["_path"] = re.compile(r["path"])
            checked.append(r)
        with self.lock:
            self.rules = checked
            if seed is not None:
                self.rng = random.Random(seed)

    def reset_counts(self):
        with self.lock:
            self.counts = {"requests": 0, "by_op": {}, "injected": {}, "injected_by_op": {},
                           "bytes_by_op": {}, "payload_by_op": {}}

    def stats(self):
        with self.lock:
            return json.loads(json.dumps(self.counts))

    def _count_bytes(self, op, n):
        with self.lock:
            by = self.counts["bytes_by_op"]
            by[op] = by.get(op, 0) + n

    def start(self):
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def stop(self):
        self.stopping = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()

    # ------------------------------------------------------------ serving

    def _accept(self):
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _choose(self, req):
        op = s3_op(req)
        with self.lock:
            self.counts["requests"] += 1
            self.counts["by_op"][op] = self.counts["by_op"].get(op, 0) + 1
            sha = req.get("x-amz-content-sha256", "")
            kind = "unsigned" if sha == "UNSIGNED-PAYLOAD" else \
                "signed" if re.fullmatch(r"[0-9a-f]{64}", sha) else "other"
            by = self.counts["payload_by_op"].setdefault(op, {})
            by[kind] = by.get(kind, 0) + 1
            for r in self.rules:
                if r.get("ops") and op not in r["ops"]:
                    continue
                if r.get("methods") and req.method not in r["methods"]:
                    continue
                if "_path" in r and not r["_path"].search(req.target):
                    continue
                if r.get("count") is not None and r["count"] <= 0:
                    continue
                if self.rng.random() >= r.get("rate", 1.0):
                    continue
                if r.get("count") is not None:
                    r["count"] -= 1
                name = r["action"] if r["action"] != "error" else f"error{r.get('status', 503)}"
                self.counts["injected"][name] = self.counts["injected"].get(name, 0) + 1
                by = self.counts["injected_by_op"].setdefault(op, {})
                by[name] = by.get(name, 0) + 1
                return op, r
        return op, None

    def _serve(self, conn):
        client = Stream(conn)
        up = None
        try:
            while True:
                req = client.read_head()
                op, rule = self._choose(req)
                action = rule["action"] if rule else None
                if action == "reset_request":
                    self._reset_request(client, req)
                    return
                if action == "error":
                    for _ in client.body_raw(req):
                        pass
                    self._send_error(conn, req, rule)
                    continue
                if action == "stall" and not rule.get("after"):
                    for _ in client.body_raw(req):
                        pass
                    self._stall(conn, rule)
                    return
                if up is None:
                    up = Stream(socket.create_connection(self.upstream))
                    up.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                up.sock.sendall(req.raw)
                for piece in client.body_raw(req):
                    up.sock.sendall(piece)
                if not self._relay_response(conn, client, up, req, rule):
                    return
        except (Closed, OSError, ValueError):
            pass
        finally:
            try:
                conn.close()
            except OSError:
                pass
            if up is not None:
                up.sock.close()

    def _reset_request(self, client, req):
        length = int(req.get("Content-Length") or 0)
        want = length // 2
        for piece in client.read_exact(want):
            pass
        reset(client.sock)

    def _send_error(self, conn, req, rule):
        status = int(rule.get("status", 503))
        code = rule.get("code", "SlowDown" if status == 503 else "InternalError")
        body = error_body(code, rule.get("message", "injected by faultproxy"),
                          req.target.partition("?")[0])
        reason = "Slow Down" if status == 503 else "Internal Server Error"
        head = (f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/xml\r\n"
                f"x-amz-request-id: faultproxy\r\nContent-Length: {len(body)}\r\n\r\n")
        conn.sendall(head.encode() + (b"" if req.method == "HEAD" else body))

    def _stall(self, conn, rule):
        """Wait rule["seconds"], or until the client closes or sends."""
        deadline = time.monotonic() + float(rule.get("seconds", 20))
        while not self.stopping:
            left = deadline - time.monotonic()
            if left <= 0:
                return True
            readable, _, _ = select.select([conn], [], [], min(left, 0.5))
            if readable:
                try:
                    if not conn.recv(1, socket.MSG_PEEK):
                        return False  # the client gave up
                except OSError:
                    return False
        return False

    def _relay_response(self, conn, client, up, req, rule):
        """Relay one response (after 1xx). False: the connection is done."""
        no_body = req.method == "HEAD"
        while True:
            resp = up.read_head()
            if 100 <= resp.status < 200:
                conn.sendall(resp.raw)
                continue
            break
        if resp.status in (204, 304):
            no_body = True
        action = rule["action"] if rule else None
        if action is None:
            conn.sendall(resp.raw)
            sent = 0
            try:  # a client that closes early is counted for what it got
                for piece in up.body_raw(resp, no_body):
                    conn.sendall(piece)
                    sent += len(piece)
            finally:
                self._count_bytes(s3_op(req), sent)
            return resp.get("Connection", "").lower() != "close" and (
                no_body or resp.get("Content-Length") is not None
                or "chunked" in (resp.get("Transfer-Encoding") or "").lower())
        raw = b"".join(up.body_raw(resp, no_body))
        if action == "reset_response":
            conn.sendall(resp.raw + raw[: len(raw) // 2])
            reset(conn)
            return False
        if action == "stall":
            if self._stall(conn, rule):
                conn.sendall(resp.raw + raw)
            return False
        return self._rewrite(conn, resp, raw, no_body, rule)

    def _rewrite(self, conn, resp, raw, no_body, rule):
        body = raw
        if "chunked" in (resp.get("Transfer-Encoding") or "").lower():
            body = dechunk(raw)
            resp.drop("Transfer-Encoding")
            resp.put("Content-Length", str(len(body)))
        if "status" in rule:
            resp.set_status(int(rule["status"]))
        if "body" in rule:
            body = rule["body"].encode("utf-8") if isinstance(rule["body"], str) else rule["body"]
        if "truncate" in rule:
            body = body[: int(len(body) * float(rule["truncate"]))]
        if not no_body:
            resp.put("Content-Length", str(len(body)))
        for name in rule.get("drop_headers", []):
            resp.drop(name)
        for name, value in rule.get("set_headers", {}).items():
            resp.put(name, value)
        conn.sendall(resp.encode() + (b"" if no_body else body))
        if rule.get("close") or rule.get("set_headers") or rule.get("drop_headers"):
            conn.shutdown(socket.SHUT_WR)
            return False
        return True


# ---------------------------------------------------------------- control


class ProxyControl:
    """A client of a faultproxy program's control endpoint."""

    def __init__(self, control_url):
        self.url = control_url.rstrip("/")

    def _call(self, method, path, payload=None):
        data = json.dumps(payload).encode() if payload is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method)
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read() or b"null")

    def set_rules(self, rules, seed=None):
        return self._call("PUT", "/rules", {"rules": rules, "seed": seed})

    def stats(self):
        return self._call("GET", "/stats")

    def reset_counts(self):
        return self._call("POST", "/reset", {})


class ProxyProcess(ProxyControl):
    """This file run as a program in a child process (so that its threads do
    not share an interpreter lock with the test): .endpoint, .control,
    .set_rules(), .stats(), .reset_counts(), .stop()."""

    def __init__(self, upstream_port, seed=0, rules=None):
        import subprocess

        cmd = [sys.executable, __file__, "--upstream", f"127.0.0.1:{upstream_port}",
               "--seed", str(seed)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
        line = self.proc.stdout.readline().decode()
        fields = dict(f.split("=", 1) for f in line.split())
        if "proxy" not in fields:
            self.proc.kill()
            raise RuntimeError(f"faultproxy did not start: {line!r}")
        self.endpoint = fields["proxy"]
        self.port = int(self.endpoint.rsplit(":", 1)[1])
        super().__init__(fields["control"])
        if rules:
            self.set_rules(rules, seed)

    def stop(self):
        self.proc.kill()
        self.proc.wait(30)


def control_server(proxy, listen):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def _reply(self, status, obj):
            body = json.dumps(obj).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _payload(self):
            n = int(self.headers.get("Content-Length") or 0)
            return json.loads(self.rfile.read(n) or b"{}")

        def do_GET(self):
            if self.path == "/stats":
                self._reply(200, proxy.stats())
            else:
                self._reply(404, {"error": "no such path"})

        def do_PUT(self):
            if self.path != "/rules":
                self._reply(404, {"error": "no such path"})
                return
            try:
                p = self._payload()
                proxy.set_rules(p.get("rules", []), p.get("seed"))
            except (ValueError, TypeError, AttributeError) as e:
                self._reply(400, {"error": str(e)})
                return
            self._reply(200, {"ok": True})

        def do_POST(self):
            if self.path == "/reset":
                proxy.reset_counts()
                self._reply(200, {"ok": True})
            else:
                self._reply(404, {"error": "no such path"})

    return ThreadingHTTPServer(listen, Handler)


def _hostport(s):
    host, _, port = s.rpartition(":")
    return (host or "127.0.0.1", int(port))


def main(argv=None):
    ap = argparse.ArgumentParser(description="fault-injecting HTTP proxy for S3 tests")
    ap.add_argument("--upstream", required=True, help="HOST:PORT of the S3 server")
    ap.add_argument("--listen", default="127.0.0.1:0")
    ap.add_argument("--control", default="127.0.0.1:0")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rules", help="JSON file with a list of rules")
    args = ap.parse_args(argv)
    rules = []
    if args.rules:
        with open(args.rules) as f:
            rules = json.load(f)
    proxy = FaultProxy(_hostport(args.upstream), _hostport(args.listen), args.seed, rules).start()
    ctl = control_server(proxy, _hostport(args.control))
    host = _hostport(args.listen)[0]
    print(f"proxy=http://{host}:{proxy.port} control=http://{host}:{ctl.server_address[1]}",
          flush=True)
    try:
        ctl.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
