#!/usr/bin/env bash
# Acceptance 6 — the state directory full: state_dir on a small tmpfs that is
# filled up before a run (catalog.db and links/ live there). No file is
# swapped unless its catalog row and dynamic link were written: every file is
# regular and unchanged, or a link that reads back the same bytes; nothing is
# left half-made (.tierd-* names, links to missing namespace entries); status
# recent_errors says what went wrong. A second run has room for only a few
# rows, so the state fills mid-run. Once space is freed (and tierd restarted:
# recovery) a run tiers the rest.
. "$(dirname "$0")/lib.sh"
e2e_init statefull
STATE_DIR=$T/state
mkdir -p "$STATE_DIR" "$T/tier"
mount -t tmpfs -o size=32m,nr_inodes=8000 tmpfs "$STATE_DIR" || e2e_abort "cannot mount a tmpfs (root needed)"
E2E_CLEANUP_HOOKS+=('[ -n "$TDPID" ] && kill -KILL "$TDPID" 2>/dev/null; wait 2>/dev/null; umount -l "$STATE_DIR"')
for d in a b c; do
	mkdir -p "$T/data/$d"
	for i in $(seq 100); do head -c $((i * 50)) /dev/urandom >"$T/data/$d/f$i"; done
done
find "$T/data" -type f -exec touch -m -d '2020-01-01' {} +
snapshot "$T/data" "$T/snap"
total=300
e2e_conf "$(dir_target_conf nas "$T/tier")" "$(e2e_policy nas "$T/data")"
e2e_start
# Tier a first directory so the state holds some rows and links.
mapfile -t first < <(find "$T/data/a" -type f | head -20)
ctl migrate "${first[@]}" >/dev/null && pass "20 files tiered before the disk fills" || fail "first migrate"
# Fill the state filesystem: blocks, then inodes.
dd if=/dev/zero of="$STATE_DIR/filler" bs=64k 2>/dev/null || true
for i in $(seq 200); do dd if=/dev/zero of="$STATE_DIR/tail$i" bs=4k count=1 2>/dev/null || break; done
for i in $(seq 5000); do : 2>/dev/null >"$STATE_DIR/i$i" || break; done
df -h "$STATE_DIR" | tail -1 | sed 's/^/  /'
ctl run p >/dev/null || fail "run refused"
wait_idle 120 && pass "run ended" || fail "run did not end"
linked=$(find "$T/data" -type l | wc -l)
echo "  $linked links after the run with the state full"
[ "$linked" -lt $total ] && pass "not everything was swapped with the state full ($linked links)" ||
	fail "all $total swapped although the state filesystem is full"
tree_verify "state full: every file unchanged or tiered and readable, no temp names" "$T/data" "$T/snap"
# Every link points at a namespace entry that exists and has a catalog row.
ctl --json ls >"$T/ls.json" 2>"$T/ls.err" || fail "ls --json with the state full: $(cat "$T/ls.err")"
python3 "$E2E_LIB_DIR/tree.py" nscheck "$STATE_DIR" "$T/ls.json" >"$T/nso" || true
n_rows=$(python3 -c "import json; print(sum(f['state'] in ('tiered','cached') for f in json.load(open('$T/ls.json'))['files']))" 2>/dev/null || echo "?")
[ "$n_rows" = "$linked" ] && pass "$linked links = $n_rows tiered rows" || fail "$linked links but $n_rows tiered rows"
errs=$(status_get '"\n".join(e["message"] for e in d["recent_errors"])')
echo "  recent_errors: $(head -2 <<<"$errs" | tr '\n' '|')"
grep -qiE "no space|full|ENOSPC|quota" <<<"$errs" && pass "recent_errors says the state is full" ||
	fail "no clear error in recent_errors: $errs"
kill -0 "$TDPID" && pass "tierd still running" || fail "tierd died"

# Room for a few files only: the state fills up in the middle of the run, so
# some migrations fail after their row exists (later steps, link creation).
rm -f "$STATE_DIR/filler" "$STATE_DIR"/i* "$STATE_DIR"/tail*
avail_kb=$(df -k --output=avail "$STATE_DIR" | tail -1)
dd if=/dev/zero of="$STATE_DIR/filler" bs=1k count=$((avail_kb - 640)) 2>/dev/null || true
ctl run p >/dev/null && wait_idle 120 && pass "run with the state filling up mid-way ended" || fail "mid-way run"
linked2=$(find "$T/data" -type l | wc -l)
echo "  $linked2 links after the run that filled the state"
tree_verify "filled mid-run: every file unchanged or tiered and readable, no temp names" "$T/data" "$T/snap"
# A file swapped whose final catalog update hit ENOSPC keeps its row at step 5
# (swapped): by design recovery marks it tiered at the next start.
ctl --json ls >"$T/ls.json" 2>/dev/null &&
	n_rows=$(python3 -c "import json; print(sum(f['state'] in ('tiered','cached') or (f['state'] == 'migrating' and f.get('step') == 5) for f in json.load(open('$T/ls.json'))['files']))") || n_rows="?"
[ "$n_rows" = "$linked2" ] && pass "$linked2 links = $n_rows tiered or swapped rows" || fail "$linked2 links but $n_rows tiered or swapped rows"
python3 -c "
import json, os
for f in json.load(open('$T/ls.json'))['files']:
    if f['state'] in ('tiered', 'cached'):
        assert os.path.islink(f['original_path']), f['original_path']" 2>/dev/null &&
	pass "every tiered row's file is a link" || fail "a tiered row without its link"
kill -0 "$TDPID" && pass "tierd still running" || fail "tierd died"

# Free the space: the next run tiers the rest.
rm -f "$STATE_DIR/filler" "$STATE_DIR"/i* "$STATE_DIR"/tail*
# Rows whose catalog updates failed stay "migrating" until recovery: restart.
tierd_stop
tierd_start && pass "restarted with space (recovery finishes or rolls back the rest)" || fail "restart"
ctl run p >/dev/null && wait_idle 120 || fail "second run"
tree_verify "space freed: every file tiered and readable" "$T/data" "$T/snap" --all-tiered
[ "$(n_migrating)" = 0 ] &&
	pass "nothing left migrating" || fail "rows left migrating"
ctl --json ls >"$T/ls.json"
check_ns_rows "$STATE_DIR" "no namespace entry without a row" "namespace orphans"
tierd_stop
finish
