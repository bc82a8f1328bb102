#!/usr/bin/env bash
# Acceptance 3 — crash matrix through the daemon, on radosgw. Over 300 × 4 KiB
# files plus a few multipart ones, tierd is started with TD_TEST_CRASH_AT=STEP,N
# for each step (it SIGKILLs itself when the N-th migration reaches STEP) and
# given a `run`; then it is killed with -9 in the middle of a multipart upload.
# After each crash tierd is restarted without the hook and, once ready
# (recovery done), the test checks: every file untouched or a link reading back
# the same bytes, owner, mode and mtime; no .tierd-* names; nothing migrating;
# no open multipart upload under the prefix; no object without a catalog row;
# no namespace entry without a catalog row; links = tiered rows. Finally a
# policy run tiers everything that is left.
. "$(dirname "$0")/lib.sh"
e2e_init crash s3
export MAX_TRANSFERS=6

for d in $(seq 0 9); do
	mkdir -p "$T/data/d$d"
	for i in $(seq 30); do head -c 4096 /dev/urandom >"$T/data/d$d/f$i"; done
	chown -R $((1000 + d)):$((2000 + d)) "$T/data/d$d"
done
mkdir -p "$T/data/mp"
for i in 1 2 3; do head -c $((6 * 1024 * 1024 + i)) /dev/urandom >"$T/data/mp/m$i"; done
chmod 640 "$T/data/d3/"* "$T/data/mp/m2"
find "$T/data" -type f -exec touch -m -d '2021-03-04 05:06:07' {} +
snapshot "$T/data" "$T/snap"
total=$(find "$T/data" -type f | wc -l)

conf() { # [extra target lines]
	e2e_conf "$(s3_target_conf s3)
$*" "$(e2e_policy s3 "$T/data")"
}
conf

checks() { # LABEL
	local l=$1 n_links n_rows
	tree_verify "$l: every file untouched or tiered and readable, no temp names" "$T/data" "$T/snap"
	ctl --json ls >"$T/ls.json" || fail "$l: ls --json"
	python3 -c "
import json,sys
f=json.load(open('$T/ls.json'))['files']
m=[x['id'] for x in f if x['state']=='migrating']
print(len(m)); sys.exit(1 if m else 0)" >/dev/null && pass "$l: nothing migrating" || fail "$l: rows left migrating"
	local up
	up=$(s3_uploads)
	[ -z "$up" ] && pass "$l: no open multipart upload" || fail "$l: open multipart uploads: $up"
	s3_keys >"$T/keys"
	check_no_orphans "$l: every object in the bucket has a catalog row ($(wc -l <"$T/keys") keys)" "$l: orphaned objects"
	check_ns_rows "$T/state" "$l: every namespace entry has a catalog row" "$l: namespace orphans"
	n_links=$(find "$T/data" -type l | wc -l)
	n_rows=$(python3 -c "
import json
print(sum(1 for x in json.load(open('$T/ls.json'))['files'] if x['state'] in ('tiered','cached')))")
	[ "$n_links" = "$n_rows" ] && pass "$l: $n_links links = $n_rows tiered rows" ||
		fail "$l: $n_links links but $n_rows tiered rows"
	python3 -c "
import json
missing = [x['id'] for x in json.load(open('$T/ls.json'))['files'] if x['state'] in ('tiered','cached')]
keys = set(open('$T/keys').read().split())
bad = [i for i in missing if '$E2E_PREFIX%s/%s' % (i[:2], i) not in keys or '$E2E_PREFIX%s/%s.json' % (i[:2], i) not in keys]
print(bad[:5]); exit(1 if bad else 0)" >/dev/null && pass "$l: every tiered row has its object and manifest" ||
		fail "$l: tiered rows without objects"
}

# Restarts tierd without the hook and checks.
restart_and_check() { # LABEL
	tierd_start && pass "$1: restarted, recovery done, ready" || { fail "$1: restart failed"; return 1; }
	checks "$1"
	tierd_stop
}

crash_at() { # STEP N
	local step=$1 n=$2 before rc
	before=$(find "$T/data" -type l | wc -l)
	tierd_start TD_TEST_CRASH_AT="$step,$n" || { fail "$step: tierd did not start"; return; }
	ctl run p >/dev/null || fail "$step: run refused"
	rc=0
	wait_dead 120 || { fail "$step: tierd did not crash at $step,$n"; tierd_stop; return; }
	pass "crash at $step,$n: tierd died ($before links before)"
	restart_and_check "after crash at $step"
}

for s in opened:7 uploaded:9 linked:11 swapping:13 swapped:15 tiered:17; do
	: >"$T/tierd.log"
	crash_at "${s%%:*}" "${s##*:}"
done

# kill -9 in the middle of a multipart upload of a 30 MiB file (bandwidth-limited).
head -c $((30 * 1024 * 1024)) /dev/urandom >"$T/data/mp/big"
touch -m -d '2021-03-04 05:06:07' "$T/data/mp/big"
python3 "$E2E_LIB_DIR/tree.py" snapshot "$T/data" "$T/snap" >"$T/snap2" && mv "$T/snap2" "$T/snap"
conf "bandwidth_limit = 8M"
tierd_start || fail "multipart: tierd did not start"
ctl migrate "$T/data/mp/big" >/dev/null 2>&1 &
mig=$!
seen=
for _ in $(seq 100); do
	[ -n "$(s3_uploads)" ] && { seen=1; break; }
	sleep 0.1
done
kill -KILL "$TDPID"
wait_dead 10 || true
wait "$mig" 2>/dev/null || true
[ -n "$seen" ] && pass "multipart upload seen in the bucket, tierd killed -9" || fail "no multipart upload showed up"
conf
restart_and_check "after kill -9 mid-multipart"
[ -f "$T/data/mp/big" ] && [ ! -L "$T/data/mp/big" ] && pass "the big file is untouched" || fail "the big file was swapped"

# Running the policy again tiers the rest.
tierd_start || fail "final: tierd did not start"
ctl run p >/dev/null || fail "final run refused"
wait_idle 120 || fail "final run did not finish"
tree_verify "final run: everything tiered and readable" "$T/data" "$T/snap" --all-tiered
checks "final"
tierd_stop
finish
