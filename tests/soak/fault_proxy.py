#!/usr/bin/env python3
"""An HTTP/1.1 proxy that injects S3 faults between tierd and a real S3 server.

Used by tests/soak/soak.py as a module (FaultProxy) or run alone:

    fault_proxy.py UPSTREAM_HOST:PORT RATE SEED    prints its port, then serves

Requests are forwarded byte for byte (the Host header tierd signed is kept, so
SigV4 still verifies upstream). For each request a seeded random draw picks,
with probability RATE, one fault:
  reset     the request is read, then the connection is reset (RST)
  500       HTTP 500 InternalError, the request never reaches the server
  slowdown  HTTP 503 SlowDown, likewise
  delay     the request is held 0.2-2 s, then forwarded
  truncate  forwarded; the response announces its whole body but only half of
            it is sent before the connection is closed (a reset for bodiless
            answers)
Python standard library only.
"""
import random
import socket
import struct
import sys
import threading
import time

FAULTS = ("reset", "500", "slowdown", "delay", "truncate")


class Conn:
    """A socket with a read buffer."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def fill(self):
        d = self.sock.recv(262144)
        if not d:
            raise EOFError
        self.buf += d

    def read_head(self):
        while b"\r\n\r\n" not in self.buf:
            if len(self.buf) > 65536:
                raise EOFError
            self.fill()
        i = self.buf.index(b"\r\n\r\n") + 4
        head, self.buf = self.buf[:i], self.buf[i:]
        return head

    def read_n(self, n):
        while len(self.buf) < n:
            self.fill()
        d, self.buf = self.buf[:n], self.buf[n:]
        return d

    def read_line(self):
        while b"\r\n" not in self.buf:
            self.fill()
        i = self.buf.index(b"\r\n") + 2
        d, self.buf = self.buf[:i], self.buf[i:]
        return d

    def read_chunked(self):
        """The raw bytes of a chunked body, trailers included."""
        out = b""
        while True:
            line = self.read_line()
            out += line
            n = int(line.split(b";")[0].strip(), 16)
            if n == 0:
                while True:
                    t = self.read_line()
                    out += t
                    if t == b"\r\n":
                        return out
            out += self.read_n(n + 2)

    def read_all(self):
        try:
            while True:
                self.fill()
        except (EOFError, OSError):
            pass
        d, self.buf = self.buf, b""
        return d


def parse_head(head):
    lines = head.decode("latin-1").split("\r\n")
    first = lines[0]
    hdrs = {}
    for ln in lines[1:]:
        if ":" in ln:
            k, v = ln.split(":", 1)
            hdrs[k.strip().lower()] = v.strip()
    return first, hdrs


def read_body(conn, hdrs):
    if "chunked" in hdrs.get("transfer-encoding", "").lower():
        return conn.read_chunked()
    n = int(hdrs.get("content-length") or 0)
    return conn.read_n(n) if n else b""


def hard_close(sock):
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


def error_response(status, code, msg):
    body = ("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>%s</Code>"
            "<Message>%s</Message><RequestId>soak-fault</RequestId></Error>" % (code, msg)).encode()
    return (("HTTP/1.1 %s\r\nContent-Type: application/xml\r\nContent-Length: %d\r\n\r\n"
             % (status, len(body))).encode() + body)


class FaultProxy:
    def __init__(self, upstream, rate, seed):
        host, port = upstream.rsplit(":", 1)
        self.upstream = (host, int(port))
        self.rate = rate
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.counts = {f: 0 for f in FAULTS}
        self.requests = 0
        self.srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(128)
        self.port = self.srv.getsockname()[1]
        self.closing = False

    def faults(self):
        with self.lock:
            return sum(self.counts.values())

    def draw(self):
        with self.lock:
            self.requests += 1
            if self.rng.random() >= self.rate:
                return "ok", 0.0
            f = self.rng.choice(FAULTS)
            self.counts[f] += 1
            return f, self.rng.uniform(0.2, 2.0)

    def start(self):
        threading.Thread(target=self.accept_loop, daemon=True).start()
        return self

    def stop(self):
        self.closing = True
        self.srv.close()

    def accept_loop(self):
        while not self.closing:
            try:
                s, _ = self.srv.accept()
            except OSError:
                return
            threading.Thread(target=self.serve, args=(s,), daemon=True).start()

    def serve(self, csock):
        client = Conn(csock)
        up = None
        try:
            while True:
                head = client.read_head()
                first, hdrs = parse_head(head)
                method = first.split(" ", 1)[0]
                expect = hdrs.get("expect", "").lower() == "100-continue"
                action, delay = self.draw()
                if action == "reset":
                    hard_close(csock)
                    return
                if expect:
                    csock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
                body = read_body(client, hdrs)
                if action == "500":
                    csock.sendall(error_response("500 Internal Server Error", "InternalError",
                                                 "injected"))
                    continue
                if action == "slowdown":
                    csock.sendall(error_response("503 Slow Down", "SlowDown", "injected"))
                    continue
                if action == "delay":
                    time.sleep(delay)
                if up is None:
                    up = Conn(socket.create_connection(self.upstream, timeout=120))
                up.sock.sendall(head + body)
                while True:
                    rhead = up.read_head()
                    rfirst, rh = parse_head(rhead)
                    status = int(rfirst.split(" ")[1])
                    if status >= 200:
                        break  # interim 100s are ours to drop: the client got one
                close_after = rh.get("connection", "").lower() == "close"
                if method == "HEAD" or status in (204, 304):
                    rbody = b""
                elif "chunked" in rh.get("transfer-encoding", "").lower():
                    rbody = up.read_chunked()
                elif "content-length" in rh:
                    rbody = up.read_n(int(rh["content-length"]))
                else:
                    rbody = up.read_all()
                    close_after = True
                if action == "truncate":
                    if not rbody:
                        hard_close(csock)
                        return
                    csock.sendall(rhead + rbody[: len(rbody) // 2])
                    hard_close(csock)
                    return
                csock.sendall(rhead + rbody)
                if close_after:
                    csock.close()
                    return
        except (EOFError, OSError, ValueError, IndexError):
            pass
        finally:
            try:
                csock.close()
            except OSError:
                pass
            if up is not None:
                up.sock.close()


if __name__ == "__main__":
    p = FaultProxy(sys.argv[1], float(sys.argv[2]), int(sys.argv[3])).start()
    print(p.port, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
