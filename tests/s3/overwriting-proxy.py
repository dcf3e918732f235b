#!/usr/bin/env python3
"""A test double for the conditional-create probe: an HTTP proxy in front of a real S3 server
(SeaweedFS) that behaves like a server which ignores `If-None-Match: *`.

usage: overwriting-proxy.py UPSTREAM_URL MODE PORT_FILE [LOG_FILE]
MODE:
  overwrite  drop If-None-Match from every PUT and re-sign the request (SigV4 signs the header,
             so merely stripping it would be refused upstream as a bad signature): a second
             create of a key silently replaces it, as on a server that ignores the condition
  pass       forward everything unchanged (a control, and a request counter)
  lose-reply forward everything, but answer the first conditional PUT of each log/ and refs/
             key with 503 after the server stored it (a reply lost on the way back): the
             client's retry then meets its own key (412), which must count as its own write
Listens on a free loopback port, written to PORT_FILE once it accepts connections. The secret
key for re-signing is read from AWS_SECRET_ACCESS_KEY. Each request is appended to LOG_FILE as
"METHOD PATH STATUS".
"""
import hashlib, hmac, http.client, os, re, sys, threading, urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

UPSTREAM = urllib.parse.urlparse(sys.argv[1])
MODE, PORT_FILE = sys.argv[2], sys.argv[3]
LOG = sys.argv[4] if len(sys.argv) > 4 else None
SECRET = os.environ.get("AWS_SECRET_ACCESS_KEY", "")
HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te",
       "trailer"}
LOCK = threading.Lock()
LOST = set()


def resign(method, path, query, headers):
    """Recompute the SigV4 signature without if-none-match among the signed headers."""
    match = re.match(r"AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request,"
                     r"\s*SignedHeaders=([^,]+),\s*Signature=[0-9a-f]+", headers["authorization"])
    access, date, region, service, signed_headers = match.groups()
    signed = [h for h in signed_headers.split(";") if h != "if-none-match"]
    canonical_headers = "".join(f"{h}:{' '.join(headers[h].strip().split())}\n" for h in signed)
    canonical_query = "&".join(sorted(query.split("&"))) if query else ""
    canonical = "\n".join([method, path, canonical_query, canonical_headers, ";".join(signed),
                           headers.get("x-amz-content-sha256", "UNSIGNED-PAYLOAD")])
    scope = f"{date}/{region}/{service}/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", headers["x-amz-date"], scope,
                         hashlib.sha256(canonical.encode()).hexdigest()])
    key = ("AWS4" + SECRET).encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = (f"AWS4-HMAC-SHA256 Credential={access}/{scope}, "
                                f"SignedHeaders={';'.join(signed)}, Signature={signature}")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def forward(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items() if k.lower() not in HOP}
        headers["host"] = self.headers.get("Host", "")
        path, _, query = self.path.partition("?")
        if MODE == "overwrite" and self.command == "PUT" and "if-none-match" in headers:
            del headers["if-none-match"]
            resign(self.command, path, query, headers)
        upstream = http.client.HTTPConnection(UPSTREAM.hostname, UPSTREAM.port, timeout=120)
        upstream.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
        for key, value in headers.items():
            upstream.putheader(key, value)
        upstream.endheaders(body)
        response = upstream.getresponse()
        data = response.read()
        upstream.close()
        lose = False
        if (MODE == "lose-reply" and self.command == "PUT" and "if-none-match" in headers
                and response.status == 200 and ("/log/" in path or "/refs/" in path)):
            with LOCK:
                lose = path not in LOST
                LOST.add(path)
        if LOG:
            with LOCK, open(LOG, "a") as log:
                log.write(f"{self.command} {self.path} {503 if lose else response.status}\n")
        if lose:
            self.send_response(503, "Slow Down")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(response.status, response.reason)
        for key, value in response.getheaders():
            if key.lower() not in HOP and key.lower() != "content-length":
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = forward


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
with open(PORT_FILE + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
os.rename(PORT_FILE + ".tmp", PORT_FILE)
server.serve_forever()
