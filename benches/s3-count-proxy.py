#!/usr/bin/env python3
"""A request-counting HTTP proxy in front of an S3 server, for benches/compare.sh: the S3 rows'
request counts come from it, for evstore and restic alike, so they compare directly.

usage: s3-count-proxy.py UPSTREAM_URL PORT_FILE [COUNTS_FILE [LOG_FILE]]

It listens on a free loopback port (written to PORT_FILE once it accepts connections) and
forwards every request to UPSTREAM_URL unchanged: same method, path, query, headers and body,
and the Host header the client sent (and signed with SigV4: the server checks the signature
against the Host it receives, so nothing needs re-signing). Bodies are streamed both ways.

Each request is counted under one kind:
  PUT     PUT of an object or of a multipart part (parts are also counted apart, as PUT_PART)
  GET     GET of an object (a range read too), or of a bucket sub-resource such as ?location
  LIST    GET of a bucket with a listing query (list-type, prefix, delimiter, marker) or none
  HEAD    HEAD of an object or a bucket
  POST    POST (multipart create and complete, multi-object delete)
  DELETE  DELETE
  OTHER   any other method
with the bytes of request bodies (up: client to server, as sent on the wire) and of response
bodies (down), and the answers that were not 2xx by status (a HEAD's 404 for a missing key, a
conditional PUT's 412 for one that exists).

Two paths are answered by the proxy itself and never forwarded (S3 bucket names cannot start
with `_`): `GET /__counts__` returns the counts as JSON, `POST /__reset__` zeroes them. On
SIGTERM or SIGINT the counts are written to COUNTS_FILE (when given) and the proxy exits 0.
LOG_FILE, when given, gets one line per forwarded request: "METHOD PATH?QUERY STATUS UP DOWN".
Only the Python standard library is used.
"""
import http.client
import json
import os
import signal
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

UPSTREAM = urllib.parse.urlparse(sys.argv[1])
PORT_FILE = sys.argv[2]
COUNTS_FILE = sys.argv[3] if len(sys.argv) > 3 and sys.argv[3] else None
LOG_FILE = sys.argv[4] if len(sys.argv) > 4 and sys.argv[4] else None
HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te",
       "trailer", "proxy-authorization", "proxy-authenticate"}
KINDS = ["PUT", "PUT_PART", "GET", "LIST", "HEAD", "POST", "DELETE", "OTHER"]
LIST_PARAMS = {"list-type", "prefix", "delimiter", "marker", "continuation-token", "max-keys",
               "start-after", "encoding-type"}
CHUNK = 1 << 20
# A request body up to this size is read whole before it is sent, so a request whose kept-alive
# upstream connection turned out closed can be sent again on a fresh one; a larger one streams.
BUFFER_LIMIT = 16 << 20
LOCK = threading.Lock()
LOCAL = threading.local()


def zero():
    return {"requests": 0, "by_kind": {k: 0 for k in KINDS}, "bytes_up": 0, "bytes_down": 0,
            "not_2xx": {}, "upstream_errors": 0}


COUNTS = zero()


def kind_of(method, path, query):
    """The kind a request is counted under (see the module doc)."""
    if method == "PUT":
        return "PUT"
    if method == "GET":
        key = path.lstrip("/").partition("/")[2]
        if key:
            return "GET"
        params = {p.partition("=")[0] for p in query.split("&") if p}
        return "LIST" if not params or params & LIST_PARAMS else "GET"
    if method in ("HEAD", "POST", "DELETE"):
        return method
    return "OTHER"


def record(method, path, query, status, up, down):
    kind = kind_of(method, path, query)
    with LOCK:
        COUNTS["requests"] += 1
        COUNTS["by_kind"][kind] += 1
        if kind == "PUT" and "partNumber=" in query:
            COUNTS["by_kind"]["PUT_PART"] += 1
        COUNTS["bytes_up"] += up
        COUNTS["bytes_down"] += down
        if not 200 <= status < 300:
            key = "%s %d" % (method, status)
            COUNTS["not_2xx"][key] = COUNTS["not_2xx"].get(key, 0) + 1
        if LOG_FILE:
            with open(LOG_FILE, "a") as log:
                log.write("%s %s%s %d %d %d\n" % (method, path, "?" + query if query else "",
                                                   status, up, down))


def snapshot():
    with LOCK:
        return json.loads(json.dumps(COUNTS))


def upstream_connection(fresh=False):
    """This thread's kept-alive connection to the server (one per client connection)."""
    conn = getattr(LOCAL, "conn", None)
    if fresh and conn is not None:
        conn.close()
        conn = None
    if conn is None:
        conn = http.client.HTTPConnection(UPSTREAM.hostname, UPSTREAM.port or 80, timeout=300)
        LOCAL.conn = conn
    return conn


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # A response is written as its head, then its body: with Nagle's algorithm the body of a
    # small answer waits for the client's delayed ACK of the head (tens of ms per request).
    disable_nagle_algorithm = True

    def log_message(self, *args):
        pass

    def reply_json(self, value):
        data = json.dumps(value, indent=1, sort_keys=True).encode() + b"\n"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def read_chunked(self):
        """The chunks of a `Transfer-Encoding: chunked` request body, decoded."""
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip(), 16)
            if size == 0:
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return
            data = self.rfile.read(size)
            self.rfile.readline()
            yield data

    def send_upstream(self, conn, headers, body, chunked, length):
        """Send the request; `body` is bytes (buffered) or None (stream it from the client)."""
        conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
        for key, value in headers:
            conn.putheader(key, value)
        if chunked:
            conn.putheader("Transfer-Encoding", "chunked")
        conn.endheaders()
        sent = 0
        if body is not None:
            if chunked:
                if body:
                    conn.send(b"%x\r\n%s\r\n" % (len(body), body))
                conn.send(b"0\r\n\r\n")
            else:
                conn.send(body)
            return len(body)
        if chunked:
            for data in self.read_chunked():
                conn.send(b"%x\r\n%s\r\n" % (len(data), data))
                sent += len(data)
            conn.send(b"0\r\n\r\n")
            return sent
        while sent < length:
            data = self.rfile.read(min(CHUNK, length - sent))
            if not data:
                raise ConnectionError("the client closed the connection mid-body")
            conn.send(data)
            sent += len(data)
        return sent

    def forward(self):
        path, _, query = self.path.partition("?")
        if self.command == "GET" and path == "/__counts__":
            return self.reply_json(snapshot())
        if self.command == "POST" and path == "/__reset__":
            with LOCK:
                COUNTS.clear()
                COUNTS.update(zero())
            return self.reply_json(snapshot())
        headers = [(k, v) for k, v in self.headers.items() if k.lower() not in HOP]
        chunked = "chunked" in self.headers.get("Transfer-Encoding", "").lower()
        length = int(self.headers.get("Content-Length") or 0)
        body = None
        if chunked:
            # Read whole (request bodies of unknown length are rare and small in S3 clients).
            body = b"".join(self.read_chunked())
        elif length <= BUFFER_LIMIT:
            body = self.rfile.read(length) if length else b""
        try:
            conn = upstream_connection()
            try:
                up = self.send_upstream(conn, headers, body, chunked, length)
                response = conn.getresponse()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                if body is None:
                    raise
                # A kept-alive connection the server had closed: the buffered request again,
                # on a fresh connection.
                conn = upstream_connection(fresh=True)
                up = self.send_upstream(conn, headers, body, chunked, length)
                response = conn.getresponse()
        except (OSError, http.client.HTTPException) as err:
            upstream_connection(fresh=True)
            with LOCK:
                COUNTS["upstream_errors"] += 1
            message = ("s3-count-proxy: upstream error: %s\n" % err).encode()
            self.send_response(502)
            self.send_header("Content-Length", str(len(message)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(message)
            self.close_connection = True
            return
        down = 0
        self.send_response(response.status, response.reason)
        for key, value in response.getheaders():
            if key.lower() not in HOP:
                self.send_header(key, value)
        no_body = self.command == "HEAD" or response.status in (204, 304) or \
            100 <= response.status < 200
        if no_body:
            self.end_headers()
            response.read()
        elif response.getheader("Content-Length") is not None:
            self.end_headers()
            while True:
                data = response.read(CHUNK)
                if not data:
                    break
                self.wfile.write(data)
                down += len(data)
        else:
            # An upstream body of unknown length: passed on chunked.
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            while True:
                data = response.read(CHUNK)
                if not data:
                    break
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                down += len(data)
            self.wfile.write(b"0\r\n\r\n")
        if response.will_close:
            upstream_connection(fresh=True)
        record(self.command, path, query, response.status, up, down)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = forward


def main():
    # Block the stop signals in every thread; the main thread waits for them with sigwait.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with open(PORT_FILE + ".tmp", "w") as f:
        f.write(str(server.server_address[1]))
    os.rename(PORT_FILE + ".tmp", PORT_FILE)
    signal.sigwait({signal.SIGTERM, signal.SIGINT})
    if COUNTS_FILE:
        with open(COUNTS_FILE + ".tmp", "w") as f:
            json.dump(snapshot(), f, indent=1, sort_keys=True)
            f.write("\n")
        os.rename(COUNTS_FILE + ".tmp", COUNTS_FILE)
    sys.exit(0)


main()
