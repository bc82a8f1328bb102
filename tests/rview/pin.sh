#!/usr/bin/env bash
# tierctl pin hydrates a tiered file and keeps its copy through cache pressure;
# unpin lets eviction take it again. A stranger cannot pin someone else's file.
. "$(dirname "$0")/lib.sh"
set -e
need_fuse
rv_setup pin
C=(-c "$conf")
rv_conf_nas 2M
# Its owner pins 1.5 MB of a 2 MiB cache: more than pin_quota's default (10%)
# allows, so the quota is lifted here (tests/e2e/pin_quota.sh tests it).
sed -i 's/^cache_size = 2M$/&\npin_quota = 100%/' "$conf"
for f in p q r s; do head -c 1500000 /dev/urandom >"$t/data/$f.bin"; done
chown 1234:1234 "$t/data/p.bin"
sha=$(sha256sum "$t/data/p.bin" | cut -d' ' -f1)
start_tierd || { fail "tierd start"; finish; }
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
# p is the least recently used copy now (q's copy is hydrated after it). Not
# by touching it: a copy whose times were set has changed, and is never evicted.
cat "$t/data/q.bin" >/dev/null
for _ in $(seq 200); do cached p.bin || break; sleep 0.05; done
! cached p.bin && [ "$(sha256sum "$t/data/p.bin" | cut -d' ' -f1)" = "$sha" ] &&
	pass "unpinned: evicted, still reads right from the remote view" || fail "unpinned copy not evicted"
stop_tierd
finish
