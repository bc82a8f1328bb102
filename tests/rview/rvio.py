#!/usr/bin/env python3
"""I/O helpers for the resolver tests. Exit 0 when the bytes are right.

  rvio.py [--comm NAME] mmap FILE ORIG         mmap FILE (MAP_SHARED), compare with
                                               ORIG; exit 4 if mmap fails with ENODEV
  rvio.py [--comm NAME] mmap-private FILE ORIG the same with MAP_PRIVATE
  rvio.py [--comm NAME] random FILE ORIG N     N random preads (seeks) vs ORIG
  rvio.py [--comm NAME] sweep LIST             read every "FILE ORIG" line of LIST
  rvio.py hold FILE ORIG READY GO              read half, create READY, wait for
                                               GO (60 s), read the rest, compare
  rvio.py slow FILE ERRFILE                    read 64 KiB every 50 ms; on an
                                               error write it to ERRFILE, exit 3
  rvio.py overwrite FILE OFF TEXT [forge]      write TEXT at OFF in place (the
                                               size stays), fsync; with "forge"
                                               put atime and mtime back after
  rvio.py lease FILE READY GO                  hold a write lease on FILE (its
                                               owner), create READY, wait for GO
                                               (60 s); exit 5 if no lease

--comm sets this process's name (/proc/self/comm), as no_hydrate sees it.
"""
import ctypes
import errno
import mmap
import os
import random
import sys
import time


def set_comm(name):
    libc = ctypes.CDLL(None, use_errno=True)
    PR_SET_NAME = 15
    if libc.prctl(PR_SET_NAME, name.encode(), 0, 0, 0) != 0:
        sys.exit("prctl failed")


def orig_bytes(p):
    with open(p, "rb") as f:
        return f.read()


def do_mmap(path, orig, flags=mmap.MAP_SHARED):
    want = orig_bytes(orig)
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size != len(want):
            print(f"size {size} != {len(want)}")
            return 1
        if size == 0:
            return 0
        try:
            m = mmap.mmap(f.fileno(), 0, flags=flags, prot=mmap.PROT_READ)
        except OSError as e:
            print(f"mmap: {e.strerror}")
            return 4 if e.errno == errno.ENODEV else 1
        with m:
            # Touch pages out of order, then compare the whole mapping.
            for off in range(size - 1, -1, -65536 * 3):
                if m[off] != want[off]:
                    print(f"byte {off} differs")
                    return 1
            if m[:] != want:
                print("mapping differs")
                return 1
    return 0


def do_random(path, orig, n):
    want = orig_bytes(orig)
    rnd = random.Random(len(want) * 7919 + n)
    with open(path, "rb", buffering=0) as f:
        for i in range(n):
            if not want:
                if f.read(10) != b"":
                    return 1
                continue
            off = rnd.randrange(0, len(want))
            ln = rnd.choice([1, 17, 4095, 4096, 65537, 1 << 20, (1 << 20) + 3])
            f.seek(off)
            got = f.read(ln)
            # One read(2) may return less than asked near a chunk end: keep reading.
            while len(got) < ln and off + len(got) < len(want):
                more = f.read(ln - len(got))
                if not more:
                    break
                got += more
            if got != want[off:off + ln]:
                print(f"read {i}: off={off} len={ln} differs")
                return 1
    return 0


def do_sweep(listfile):
    bad = 0
    for line in open(listfile):
        path, orig = line.split()
        with open(path, "rb") as f:
            if f.read() != orig_bytes(orig):
                print(f"{path} differs")
                bad += 1
    return 1 if bad else 0


def do_hold(path, orig, ready, go):
    want = orig_bytes(orig)
    half = len(want) // 2
    with open(path, "rb", buffering=0) as f:
        got = b""
        while len(got) < half:
            got += f.read(half - len(got))
        open(ready, "w").close()
        deadline = time.time() + 60
        while not os.path.exists(go):
            if time.time() > deadline:
                print("no go")
                return 2
            time.sleep(0.02)
        while True:
            b = f.read(1 << 20)
            if not b:
                break
            got += b
    if got != want:
        print(f"held reader got different bytes ({len(got)} of {len(want)})")
        return 1
    return 0


def do_slow(path, errfile):
    try:
        with open(path, "rb", buffering=0) as f:
            while True:
                b = f.read(65536)
                if not b:
                    return 0
                time.sleep(0.05)
    except OSError as e:
        with open(errfile, "w") as out:
            out.write(f"{e.errno} {e.strerror}\n")
        return 3


def do_overwrite(path, off, text, forge):
    st = os.stat(path)
    with open(path, "r+b") as f:
        f.seek(off)
        f.write(text.encode())
        f.flush()
        os.fsync(f.fileno())
    if forge:
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    return 0


def do_lease(path, ready, go):
    import fcntl
    import signal
    F_SETLEASE = 1024
    signal.signal(signal.SIGIO, signal.SIG_IGN)  # a break must not end us
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.fcntl(fd, F_SETLEASE, fcntl.F_WRLCK)
    except OSError as e:
        print(f"no lease: {e}", file=sys.stderr)
        return 5
    open(ready, "w").close()
    for _ in range(600):
        if os.path.exists(go):
            break
        time.sleep(0.1)
    os.close(fd)
    return 0


def main(a):
    if a and a[0] == "--comm":
        set_comm(a[1])
        a = a[2:]
    cmd = a[0]
    if cmd == "mmap":
        return do_mmap(a[1], a[2])
    if cmd == "mmap-private":
        return do_mmap(a[1], a[2], mmap.MAP_PRIVATE)
    if cmd == "random":
        return do_random(a[1], a[2], int(a[3]))
    if cmd == "sweep":
        return do_sweep(a[1])
    if cmd == "hold":
        return do_hold(a[1], a[2], a[3], a[4])
    if cmd == "slow":
        return do_slow(a[1], a[2])
    if cmd == "overwrite":
        return do_overwrite(a[1], int(a[2]), a[3], len(a) > 4 and a[4] == "forge")
    if cmd == "lease":
        return do_lease(a[1], a[2], a[3])
    sys.exit(__doc__)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
