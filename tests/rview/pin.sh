#!/usr/bin/env bash
# tierctl pin hydrates a tiered file and keeps its copy through cache pressure;
# unpin lets eviction take it again. A stranger cannot pin someone else's file.
set -euo pipefail
: "${TIERD:?}" "${TIERCTL:?}"
[ -e /dev/fuse ] || { echo "FAIL: /dev/fuse missing"; exit 1; }
t=$(mktemp -d /tmp/tierd-pin.XXXXXX)
chmod 755 "$t"
pid=
trap '[ -n "$pid" ] && kill -KILL $pid 2>/dev/null; umount -l "$t/run/remote" 2>/dev/null || true; rm -rf "$t"' EXIT
fails=0
pass() { echo "ok $*"; }
fail() { echo "FAIL $*"; fails=$((fails + 1)); }
C=(-c "$t/tierd.conf")
mkdir -p "$t/data" "$t/tier"
cat >"$t/tierd.conf" <<CONF
[tierd]
state_dir = $t/state
cache_dir = $t/cache
run_dir = $t/run
cache_size = 2M
[target "nas"]
type = dir
path = $t/tier
[policy "p"]
paths = $t/data
target = nas
min_size = 0
CONF
for f in p q r s; do head -c 1500000 /dev/urandom >"$t/data/$f.bin"; done
chown 1234:1234 "$t/data/p.bin"
sha=$(sha256sum "$t/data/p.bin" | cut -d' ' -f1)
TD_SWAP_GRACE_MS=50 "$TIERD" -f "${C[@]}" 2>"$t/log" &
pid=$!
for _ in $(seq 200); do
	"$TIERCTL" "${C[@]}" --json status 2>/dev/null | grep '"ready": true' >/dev/null && break
	sleep 0.05
done
"$TIERCTL" "${C[@]}" migrate "$t"/data/*.bin >/dev/null
cached() { [[ $(readlink "$(readlink "$t/data/$1")") == "$t/cache/"* ]]; }

set +e
out=$(setpriv --reuid=1235 --regid=1235 --clear-groups "$TIERCTL" -s "$t/run/tierd.sock" pin "$t/data/p.bin" 2>&1)
rc=$?
set -e
[ $rc = 1 ] && [[ $out == *"not your file"* ]] && pass "a stranger cannot pin it" || fail "stranger pin: $rc $out"
setpriv --reuid=1234 --regid=1234 --clear-groups "$TIERCTL" -s "$t/run/tierd.sock" pin "$t/data/p.bin" >/dev/null &&
	pass "its owner pins it" || fail "owner pin"
cached p.bin && "$TIERCTL" "${C[@]}" --json info "$t/data/p.bin" | grep '"pinned": true' >/dev/null &&
	pass "pinned: hydrated and marked" || fail "pin did not hydrate"
cat "$t/data/q.bin" "$t/data/r.bin" "$t/data/s.bin" >/dev/null # overflow the 2 MiB cache
for _ in $(seq 100); do
	"$TIERCTL" "${C[@]}" --json status | grep '"evictions": [1-9]' >/dev/null && break
	sleep 0.05
done
"$TIERCTL" "${C[@]}" --json status | grep '"evictions": [1-9]' >/dev/null && pass "evictions ran" || fail "no evictions"
cached p.bin && [ "$(sha256sum "$t/data/p.bin" | cut -d' ' -f1)" = "$sha" ] &&
	pass "the pinned copy survived cache pressure" || fail "pinned copy evicted"
"$TIERCTL" "${C[@]}" unpin "$t/data/p.bin" >/dev/null && pass "unpinned" || fail "unpin"
touch -a -d '2000-01-01' "$(readlink "$(readlink "$t/data/p.bin")")" # make it the oldest
cat "$t/data/q.bin" >/dev/null
for _ in $(seq 200); do cached p.bin || break; sleep 0.05; done
! cached p.bin && [ "$(sha256sum "$t/data/p.bin" | cut -d' ' -f1)" = "$sha" ] &&
	pass "unpinned: evicted, still reads right from the remote view" || fail "unpinned copy not evicted"
kill -TERM "$pid"
wait "$pid" || true
pid=
echo "$fails failed"
[ $fails = 0 ]
