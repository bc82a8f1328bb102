#!/usr/bin/env bash
# gc_schedule: with "every 2s" tierd runs gc by itself (a dir target): a
# deleted link's object goes once retention (1s) has passed, without anyone
# asking; status shows that gc and when the next one is due.
. "$(dirname "$0")/../e2e/lib.sh"
e2e_init gcsched
mkdir -p "$T/data" "$T/tgt"
head -c 5000 /dev/urandom >"$T/data/keep"
head -c 6000 /dev/urandom >"$T/data/gone"
keep_sha=$(sha256sum <"$T/data/keep")
e2e_conf "retention = 1s
gc_schedule = every 2s" "$(dir_target_conf t "$T/tgt")" "$(e2e_policy t "$T/data" keep_cached=no)"
e2e_start
ctl migrate "$T/data/keep" "$T/data/gone" >/dev/null && pass "two files tiered" || e2e_abort "migrate"
deadline=$((SECONDS + 10)) # set at the first tick of the daemon's timer
until status_get 'd.get("next_gc") or ""' | grep -q '^20' || [ $SECONDS -ge $deadline ]; do sleep 0.1; done
status_get 'd["next_gc"]' | grep -q '^20' && pass "status says when the next gc runs" || fail "next_gc: $(status_get 'd.get("next_gc")')"
rm "$T/data/gone"
deadline=$((SECONDS + 60))
until [ "$(status_get 'd.get("last_gc", {}).get("deleted", 0)' 2>/dev/null | tee -a "$T/polls")" = 1 ]; do
	[ $SECONDS -lt $deadline ] || break
	sleep 0.2
done
# (the last poll: the next scheduled gc, 2 s later, deletes nothing)
[ "$(tail -1 "$T/polls")" = 1 ] && pass "a scheduled gc deleted the unlinked file's object" ||
	fail "no scheduled gc deleted it: $(status_get 'd.get("last_gc")')"
grep -q "gc: deleted the object of $T/data/gone" "$T/tierd.log" && pass "the log names the deleted file" || fail "log: $(grep gc "$T/tierd.log" | tail -3)"
[ -L "$T/data/keep" ] && [ "$(sha256sum <"$T/data/keep")" = "$keep_sha" ] &&
	pass "the linked file still reads its bytes" || fail "keep unreadable"
finish
