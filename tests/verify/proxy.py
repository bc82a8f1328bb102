#!/usr/bin/env python3
"""A TCP forwarder for tests: listens on 127.0.0.1:PORT (0: any; the port is
printed first), forwards every connection to HOST:DPORT and prints one line
per connection accepted and one per 256 KiB carried back to the client. Killing it makes the target unreachable."""
import socket, sys, threading

port, host, dport = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", port))
srv.listen(64)
print(srv.getsockname()[1], flush=True)


down = 0
lock = threading.Lock()


def pipe(a, b, count=False):
    global down
    try:
        while True:
            d = a.recv(65536)
            if not d:
                break
            b.sendall(d)
            if count:
                with lock:
                    before = down
                    down += len(d)
                    if down // 262144 != before // 262144:
                        print("bytes", down, flush=True)
    except OSError:
        pass
    finally:
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


n = 0
while True:
    c, _ = srv.accept()
    n += 1
    print("conn", n, flush=True)
    try:
        u = socket.create_connection((host, dport), timeout=10)
    except OSError:
        c.close()
        continue
    for a, b, cnt in ((c, u, False), (u, c, True)):
        threading.Thread(target=pipe, args=(a, b, cnt), daemon=True).start()
