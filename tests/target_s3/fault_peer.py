#!/usr/bin/env python3
"""A scripted S3-ish HTTP peer that injects faults, for tests/target_s3.

    fault_peer.py ACTION[,ACTION...]

Prints its port on stdout, then serves. Each request consumes the next action;
once they are used up every request is served normally ("ok"). Actions:
  ok        behave like a tiny S3: PUT stores, GET (with Range) / HEAD / DELETE
  500       HTTP 500 InternalError
  slowdown  HTTP 503 SlowDown
  reset     read the request, then reset the connection (RST)
  truncate  announce the whole body, send half of it, close
  stall     send the headers and a few bytes, then go silent
  403       HTTP 403 SignatureDoesNotMatch
  skew      HTTP 403 RequestTimeTooSkewed, its Date header 3600 s ahead
  region    HTTP 400 AuthorizationHeaderMalformed naming <Region>eu-central-1</Region>
  nobucket  HTTP 404 NoSuchBucket
  full      HTTP 507 Insufficient Storage, no body (a full target)
  badxml    HTTP 200 with a malformed XML body
GET /__host answers the Host header of the last S3 request, GET /__count the number of S3 requests seen. No signature checks. The
peer exits by itself after 60 s, or 10 s without any request.
"""
import http.server
import socket
import socketserver
import struct
import sys
import threading
import time

actions = sys.argv[1].split(",") if len(sys.argv) > 1 and sys.argv[1] else []
lock = threading.Lock()
objects = {}
count = 0
last_host = ""
last_seen = time.monotonic()
started = time.monotonic()


def next_action():
    global count, last_seen
    with lock:
        count += 1
        last_seen = time.monotonic()
        return actions.pop(0) if actions else "ok"


def error_xml(code, msg):
    return ("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>%s</Code>"
            "<Message>%s</Message><RequestId>fault-peer-%d</RequestId></Error>"
            % (code, msg, count)).encode()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    date_offset = 0

    def date_time_string(self, timestamp=None):
        return super().date_time_string(time.time() + self.date_offset)

    def body_in(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def send(self, status, body=b"", headers=None, head=False):
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def handle_any(self, method):
        global last_host
        if self.path == "/__count":
            self.send(200, str(count).encode())
            return
        if self.path == "/__host":
            self.send(200, last_host.encode())
            return
        last_host = self.headers.get("Host") or ""
        body = self.body_in()
        act = next_action()
        if act == "500":
            self.send(500, error_xml("InternalError", "injected"))
        elif act == "slowdown":
            self.send(503, error_xml("SlowDown", "Please reduce your request rate."))
        elif act == "403":
            self.send(403, error_xml("SignatureDoesNotMatch", "injected"))
        elif act == "region":
            self.send(400, error_xml("AuthorizationHeaderMalformed",
                                     "The authorization header is malformed; the region "
                                     "'us-east-1' is wrong; expecting 'eu-central-1'")
                      .replace(b"</Error>", b"<Region>eu-central-1</Region></Error>"))
        elif act == "skew":
            self.date_offset = 3600
            self.send(403, error_xml("RequestTimeTooSkewed",
                                     "The difference between the request time and the current time is too large."))
        elif act == "nobucket":
            self.send(404, error_xml("NoSuchBucket", "The specified bucket does not exist"))
        elif act == "full":
            self.send(507)
        elif act == "badxml":
            self.send(200, b"<ListBucketResult><Contents><Key>a</Key></Contents")
        elif act == "reset":
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack("ii", 1, 0))
            self.connection.close()
            self.close_connection = True
        elif act in ("truncate", "stall"):
            data = objects.get(self.path.split("?")[0], b"x" * 100000)
            rng = self.headers.get("Range")
            if rng:
                a = int(rng.split("=")[1].split("-")[0])
                self.send_response(206)
                self.send_header("Content-Range", "bytes %d-%d/%d" % (a, len(data) - 1, len(data)))
                data = data[a:]
            else:
                self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("ETag", "\"e\"")
            self.end_headers()
            if act == "truncate":
                self.wfile.write(data[: len(data) // 2])
                self.wfile.flush()
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                           struct.pack("ii", 1, 0))
                self.connection.close()
            else:
                self.wfile.write(data[:10])
                self.wfile.flush()
                time.sleep(30)
            self.close_connection = True
        else:
            self.serve_ok(method, body)

    def serve_ok(self, method, body):
        key = self.path.split("?")[0]
        if method == "PUT":
            objects[key] = body
            self.send(200, b"", {"ETag": "\"etag-%d\"" % len(body)})
        elif method in ("GET", "HEAD"):
            if "?" in self.path and "list-type" in self.path:
                self.send(200, b"<ListBucketResult><IsTruncated>false</IsTruncated>"
                          b"</ListBucketResult>")
                return
            if key not in objects:
                self.send(404, b"" if method == "HEAD" else error_xml("NoSuchKey", "none"),
                          head=method == "HEAD")
                return
            data = objects[key]
            rng = self.headers.get("Range")
            if rng:
                a, b = rng.split("=")[1].split("-")
                a = int(a)
                b = int(b) if b else len(data) - 1
                b = min(b, len(data) - 1)
                part = data[a:b + 1]
                self.send(206, part, {"ETag": "\"e\"",
                                      "Content-Range": "bytes %d-%d/%d" % (a, b, len(data))},
                          head=method == "HEAD")
            else:
                self.send(200, data, {"ETag": "\"e\""}, head=method == "HEAD")
        elif method == "DELETE":
            objects.pop(key, None)
            self.send(204)
        else:
            self.send(405)

    def do_GET(self):
        self.handle_any("GET")

    def do_PUT(self):
        self.handle_any("PUT")

    def do_HEAD(self):
        self.handle_any("HEAD")

    def do_DELETE(self):
        self.handle_any("DELETE")

    def do_POST(self):
        self.handle_any("POST")


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    srv = Server(("127.0.0.1", 0), Handler)
    print(srv.server_address[1], flush=True)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    while True:
        time.sleep(0.2)
        now = time.monotonic()
        if now - started > 60 or now - last_seen > 10:
            break
    srv.shutdown()


if __name__ == "__main__":
    main()
