#!/usr/bin/env python3
"""Tree checks for the end-to-end tests (paths handled as bytes throughout).

  tree.py snapshot DIR [OLD]                     JSON: relpath(hex) -> sha256, uid, gid, mode, mtime_ns
  tree.py verify DIR SNAP STATE_DIR [--all-tiered] [--min-tiered N] [--no-owner]
        every snapshotted file is either the same regular file or a link into
        STATE_DIR/links that reads back the same bytes with the same owner, mode,
        mtime; no .tierd-* names; no other new names. Prints "local=N tiered=M".
  tree.py nscheck STATE_DIR LSJSON          namespace entries without a catalog row
  tree.py orphans PREFIX LSJSON KEYS        bucket keys that belong to no catalog row
"""
import hashlib
import json
import os
import stat
import sys


def sha(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(1 << 20)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def walk(top):
    """(relpath bytes, lstat) for every non-directory entry under top."""
    top = os.fsencode(top)
    for d, dirs, files in os.walk(top):
        for n in files + [x for x in dirs if os.path.islink(os.path.join(d, x))]:
            p = os.path.join(d, n)
            yield os.path.relpath(p, top), os.lstat(p)


def snapshot(top, old=None):
    out = json.load(open(old)) if old else {}
    for rel, st in walk(top):
        if not stat.S_ISREG(st.st_mode) or rel.hex() in out:
            continue
        p = os.path.join(os.fsencode(top), rel)
        out[rel.hex()] = dict(sha256=sha(p), uid=st.st_uid, gid=st.st_gid,
                              mode=stat.S_IMODE(st.st_mode), mtime_ns=st.st_mtime_ns,
                              size=st.st_size)
    json.dump(out, sys.stdout)


def verify(top, snapf, state_dir, args):
    snap = json.load(open(snapf))
    btop = os.fsencode(top)
    links = os.fsencode(os.path.realpath(state_dir)) + b"/links/"
    links2 = os.fsencode(state_dir) + b"/links/"
    errs = []
    local = tiered = 0
    seen = set()
    for rel, st in walk(top):
        name = os.path.basename(rel)
        if name.startswith(b".tierd-"):
            errs.append("leftover temp name %r" % rel)
        if rel.hex() not in snap:
            errs.append("unexpected new entry %r" % rel)
    for relhex, want in snap.items():
        rel = bytes.fromhex(relhex)
        p = os.path.join(btop, rel)
        try:
            st = os.lstat(p)
        except OSError as e:
            errs.append("%r: %s" % (rel, e))
            continue
        if stat.S_ISLNK(st.st_mode):
            t = os.readlink(p)
            if not (t.startswith(links) or t.startswith(links2)):
                errs.append("%r: link to %r, not into %r" % (rel, t, links2))
                continue
            try:
                st = os.stat(p)
                got = sha(p)
            except OSError as e:
                errs.append("%r: link does not read back: %s" % (rel, e))
                continue
            tiered += 1
        elif stat.S_ISREG(st.st_mode):
            got = sha(p)
            local += 1
        else:
            errs.append("%r: neither a file nor a link (mode %o)" % (rel, st.st_mode))
            continue
        if got != want["sha256"]:
            errs.append("%r: sha256 %s, expected %s" % (rel, got, want["sha256"]))
        attrs = [("mode", stat.S_IMODE(st.st_mode)), ("mtime_ns", st.st_mtime_ns),
                 ("size", st.st_size)]
        if "--no-owner" not in args:
            attrs += [("uid", st.st_uid), ("gid", st.st_gid)]
        for k, v in attrs:
            if v != want[k]:
                errs.append("%r: %s %s, expected %s" % (rel, k, v, want[k]))
    if "--all-tiered" in args and local:
        errs.append("%d files still local, all should be tiered" % local)
    if "--min-tiered" in args:
        n = int(args[args.index("--min-tiered") + 1])
        if tiered < n:
            errs.append("only %d tiered, expected at least %d" % (tiered, n))
    for e in errs[:20]:
        print("  " + e)
    if len(errs) > 20:
        print("  ... %d more" % (len(errs) - 20))
    print("local=%d tiered=%d errors=%d" % (local, tiered, len(errs)))
    return 1 if errs else 0


def ids_of(lsjson):
    return {f["id"] for f in json.load(open(lsjson))["files"]}


def nscheck(state_dir, lsjson):
    ids = ids_of(lsjson)
    bad = 0
    base = os.path.join(state_dir, "links")
    for aa in os.listdir(base) if os.path.isdir(base) else []:
        for i in os.listdir(os.path.join(base, aa)):
            if i not in ids:
                print("  namespace entry without a catalog row: %s/%s" % (aa, i))
                bad += 1
    print("namespace orphans=%d" % bad)
    return 1 if bad else 0


def orphans(prefix, lsjson, keysf):
    ids = ids_of(lsjson)
    bad = 0
    for k in open(keysf).read().split():
        rest = k[len(prefix):] if k.startswith(prefix) else k
        i = rest.split("/")[-1]
        if i.endswith(".json"):
            i = i[:-5]
        if i not in ids:
            print("  object without a catalog row: %s" % k)
            bad += 1
    print("bucket orphans=%d" % bad)
    return 1 if bad else 0


if __name__ == "__main__":
    a = sys.argv[1:]
    if a[0] == "snapshot":
        snapshot(a[1], a[2] if len(a) > 2 else None)
    elif a[0] == "verify":
        sys.exit(verify(a[1], a[2], a[3], a[4:]))
    elif a[0] == "nscheck":
        sys.exit(nscheck(a[1], a[2]))
    elif a[0] == "orphans":
        sys.exit(orphans(a[1], a[2], a[3]))
    else:
        sys.exit("unknown command")
