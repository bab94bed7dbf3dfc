#!/usr/bin/python3
"""A local credentials server for imgfs tests, on 127.0.0.1 only.

It speaks two documented protocols:

* EC2 instance metadata, IMDSv2: PUT /latest/api/token with the header
  X-aws-ec2-metadata-token-ttl-seconds returns a session token; GET
  /latest/meta-data/iam/security-credentials/ returns the role name and
  GET .../ROLE the credentials, both only with a valid
  X-aws-ec2-metadata-token header (401 otherwise, as IMDSv2 does).
* Container credentials (ECS/EKS): GET on the credentials path returns the
  credentials when the Authorization header matches the expected token.

Every credentials answer hands out a new access key id (ASIATEST000001, ...)
expiring `expiry` seconds later, so a client that refreshes sees the key
change. The server counts requests and can be told to fail the next N
credential requests, either from Python (CredServer.fail_next) or over HTTP
(POST /_control/fail?n=N, /_control/expiry?s=S, GET /_control/stats).

Use it from a test:

    srv = CredServer(expiry=20).start()
    env["AWS_EC2_METADATA_SERVICE_ENDPOINT"] = srv.url
    ...
    srv.stop()

or as a program (prints its URL on the first line of stdout):

    tests/credserver.py [--port N] [--expiry S] [--container-token T]
"""

import argparse
import datetime
import http.server
import json
import secrets
import sys
import threading
import urllib.parse

ROLE = "imgfs-test-role"
TOKEN_PATH = "/latest/api/token"
CREDS_PATH = "/latest/meta-data/iam/security-credentials/"
CONTAINER_PATH = "/v2/credentials/"


class CredServer:
    """The server's state and its lifetime; thread-safe."""

    def __init__(self, port=0, expiry=3600, container_token="test-auth-token"):
        self.expiry = expiry
        self.container_token = container_token
        self.lock = threading.Lock()
        self.generation = 0
        self.failures_left = 0
        self.imds_tokens = set()
        self.stats = {"token": 0, "role": 0, "imds_creds": 0,
                      "container_creds": 0, "unauthorized": 0, "failed": 0}
        handler = type("Handler", (_Handler,), {"server_state": self})
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port),
                                                     handler)
        self.thread = None

    @property
    def port(self):
        return self.httpd.server_address[1]

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def container_url(self, ident="imgfs-task"):
        return self.url + CONTAINER_PATH + ident

    def start(self):
        self.thread = threading.Thread(target=self.httpd.serve_forever,
                                       daemon=True)
        self.thread.start()
        return self

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    def fail_next(self, n):
        with self.lock:
            self.failures_left = n

    def set_expiry(self, seconds):
        with self.lock:
            self.expiry = seconds

    def count(self, what):
        with self.lock:
            return self.stats[what]

    def snapshot(self):
        with self.lock:
            return dict(self.stats, generation=self.generation)

    def issue(self, imds):
        """The next credentials as a dict, or None when told to fail."""
        with self.lock:
            self.stats["imds_creds" if imds else "container_creds"] += 1
            if self.failures_left > 0:
                self.failures_left -= 1
                self.stats["failed"] += 1
                return None
            self.generation += 1
            gen, expiry = self.generation, self.expiry
        now = datetime.datetime.now(datetime.timezone.utc)
        creds = {
            "AccessKeyId": "ASIATEST%06d" % gen,
            "SecretAccessKey": "secret-%06d-%s" % (gen, secrets.token_hex(8)),
            "Token": "session-token-%06d-%s" % (gen, secrets.token_hex(16)),
            "Expiration": (now + datetime.timedelta(seconds=expiry))
            .strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        if imds:
            creds.update(Code="Success", Type="AWS-HMAC",
                         LastUpdated=now.strftime("%Y-%m-%dT%H:%M:%SZ"))
        else:
            creds["RoleArn"] = "arn:aws:iam::123456789012:role/" + ROLE
        return creds


class _Handler(http.server.BaseHTTPRequestHandler):
    server_state = None  # set per server by CredServer
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def reply(self, status, body, ctype="text/plain"):
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def unauthorized(self):
        with self.server_state.lock:
            self.server_state.stats["unauthorized"] += 1
        self.reply(401, "unauthorized\n")

    def do_PUT(self):
        st = self.server_state
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        if self.path != TOKEN_PATH:
            return self.reply(404, "not found\n")
        ttl = self.headers.get("X-aws-ec2-metadata-token-ttl-seconds")
        if not ttl or not ttl.isdigit() or not 1 <= int(ttl) <= 21600:
            return self.reply(400, "missing or bad token ttl\n")
        token = secrets.token_urlsafe(32)
        with st.lock:
            st.imds_tokens.add(token)
            st.stats["token"] += 1
        self.reply(200, token)

    def imds_authorized(self):
        st = self.server_state
        token = self.headers.get("X-aws-ec2-metadata-token")
        with st.lock:
            return token in st.imds_tokens

    def do_GET(self):
        path = urllib.parse.urlsplit(self.path).path
        if path.startswith("/_control/"):
            return self.control(path)
        if path.startswith(CONTAINER_PATH):
            return self.container()
        if path.startswith(CREDS_PATH):
            return self.imds(path[len(CREDS_PATH):])
        self.reply(404, "not found\n")

    def do_POST(self):
        path = urllib.parse.urlsplit(self.path).path
        if path.startswith("/_control/"):
            return self.control(path)
        self.reply(404, "not found\n")

    def imds(self, role):
        st = self.server_state
        if not self.imds_authorized():
            return self.unauthorized()
        if role == "":
            with st.lock:
                st.stats["role"] += 1
            return self.reply(200, ROLE)
        if role != ROLE:
            return self.reply(404, "no such role\n")
        self.send_creds(st.issue(imds=True))

    def container(self):
        st = self.server_state
        if self.headers.get("Authorization") != st.container_token:
            return self.unauthorized()
        self.send_creds(st.issue(imds=False))

    def send_creds(self, creds):
        if creds is None:
            return self.reply(500, "injected failure\n")
        self.reply(200, json.dumps(creds), "application/json")

    def control(self, path):
        st = self.server_state
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        if path == "/_control/fail":
            st.fail_next(int(query.get("n", ["1"])[0]))
        elif path == "/_control/expiry":
            st.set_expiry(int(query.get("s", ["3600"])[0]))
        elif path != "/_control/stats":
            return self.reply(404, "not found\n")
        self.reply(200, json.dumps(st.snapshot()), "application/json")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--expiry", type=int, default=3600,
                    help="seconds each set of credentials is valid")
    ap.add_argument("--container-token", default="test-auth-token",
                    help="the Authorization value container requests need")
    args = ap.parse_args()
    srv = CredServer(args.port, args.expiry, args.container_token)
    print(srv.url, flush=True)
    try:
        srv.httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        srv.httpd.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
