#!/usr/bin/env bash
# Issue 14 goal 5 — hot files go back home. With hot_recall_reads = 5 in
# hot_recall_window = 7d, a tiered file read on five days is recalled to
# primary storage as a regular file (not before the fifth day) with its bytes and metadata, and a file
# read once stays tiered. The days are simulated: the first read is real
# (relatime moves the copy's atime), the later days set the copy's atime a day
# further each (what relatime does for a daily reader), and every step waits
# for two hot scans to complete after it (the second started after the step).
. "$(dirname "$0")/lib.sh"
e2e_init hot
mkdir -p "$T/tier" "$T/data"
head -c 200000 /dev/urandom >"$T/data/daily"
head -c 200000 /dev/urandom >"$T/data/once"
chmod 640 "$T/data/daily"
touch -a -m -d 2001-01-01 "$T/data/daily" "$T/data/once"
cp -a "$T/data/daily" "$T/want-daily"
e2e_conf "$(dir_target_conf nas "$T/tier")" \
	"$(e2e_policy nas "$T/data" hot_recall_reads=5 hot_recall_window=7d)"
e2e_start TD_HOT_SCAN_S=1
ctl migrate "$T/data/daily" "$T/data/once" >/dev/null && [ -L "$T/data/daily" ] && [ -L "$T/data/once" ] &&
	pass "two files tiered (kept cached)" || e2e_abort "migrate failed"

# Waits until two hot scans have completed since the call.
two_scans() {
	local n0= n deadline=$((SECONDS + 60))
	while [ -z "$n0" ] && [ $SECONDS -lt $deadline ]; do
		n0=$(status_get 'd["hot_scans"]') || n0=
	done
	while [ $SECONDS -lt $deadline ]; do
		n=$(status_get 'd["hot_scans"]') || n=$n0
		[ "$n" -ge $((n0 + 2)) ] && return 0
		sleep 0.1
	done
	return 1
}
copy_of() { readlink "$(readlink "$1")"; } # the dynamic link's destination
two_scans || e2e_abort "no hot scans (hot_scans in status)"
daily_copy=$(copy_of "$T/data/daily")
case $daily_copy in "$T/cache"/*) pass "daily's dynamic link points at its cache copy" ;;
*) e2e_abort "daily's dynamic link points at $daily_copy" ;; esac

# Day 1, real reads of both files through their original paths.
cmp -s "$T/data/daily" "$T/want-daily" && cat "$T/data/once" >/dev/null && pass "day 1: both read" || fail "day 1 reads"
two_scans || fail "scans after day 1"
t=$(stat -c %X "$daily_copy")
for day in 2 3 4 5; do
	[ -L "$T/data/daily" ] || { fail "daily recalled after $((day - 1)) days of reads, before the fifth"; break; }
	touch -a -d "@$((t + (day - 1) * 86400))" "$daily_copy"
	two_scans || fail "scans after day $day"
done
wait_idle 60 || fail "tierd did not settle"
[ -f "$T/data/daily" ] && [ ! -L "$T/data/daily" ] && pass "daily: a regular file again after reads on 5 days" ||
	fail "daily is still a link after reads on 5 days"
cmp -s "$T/data/daily" "$T/want-daily" && [ "$(stat -c %a "$T/data/daily")" = 640 ] &&
	[ "$(stat -c %Y "$T/data/daily")" = "$(stat -c %Y "$T/want-daily")" ] &&
	pass "daily: its bytes, mode and mtime" || fail "daily came back different"
getfattr -m - -d "$T/data/daily" 2>/dev/null | grep -q 'trusted.tierd' &&
	fail "the recalled file carries tierd's own xattr" || pass "the recalled file carries none of tierd's own xattrs"
grep -q "recalling .*: it was read on enough days to be hot" "$T/tierd.log" &&
	pass "the recall is logged with its reason" || fail "no log line for the hot recall"
[ -L "$T/data/once" ] && [ "$(ctl --json info "$T/data/once" | python3 -c 'import json,sys; print(json.load(sys.stdin)["files"][0]["state"])')" = cached ] &&
	pass "once: read on one day, still tiered" || fail "once was recalled"
tierd_stop
finish
