#!/usr/bin/env bash
# Acceptance 5 — radosgw stopped mid-run. On a PRIVATE gateway (its own
# throwaway cluster under $T/rgw; the shared one is never touched): once the
# run has tiered some files, the radosgw process is killed. Then: no file is
# touched (each regular and unchanged, or tiered and readable), `status --json`
# says the target is unreachable within 40 s, recent_errors says why, the run
# ends. The same radosgw command line is started again (the cluster and its
# data survive): the target turns reachable, tierd reruns the policy by itself
# and every file ends tiered; no upload left open, no orphaned object.
. "$(dirname "$0")/lib.sh"
e2e_init rgwdown s3
command -v radosgw >/dev/null || e2e_abort "radosgw not installed"
RGW=$T/rgw
E2E_CLEANUP_HOOKS+=('"$TD_SOURCE_DIR/tests/s3/radosgw.sh" stop "$RGW" >/dev/null 2>&1; E2E_PREFIX=')
: "${TD_SOURCE_DIR:=$(cd "$E2E_LIB_DIR/../.." && pwd)}"
TD_RGW_MEM_MB=1024 "$TD_SOURCE_DIR/tests/s3/radosgw.sh" start "$RGW" >"$T/rgw-start.log" 2>&1 &&
	pass "private radosgw started" || e2e_abort "private radosgw: $(tail -5 "$T/rgw-start.log")"
set -a
. "$RGW/env"
set +a
export AWS_ACCESS_KEY_ID=$TD_S3_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$TD_S3_SECRET_KEY
rgw_up() { curl -s -o /dev/null -m 2 "$TD_S3_ENDPOINT/"; }

mkdir -p "$T/data/a" "$T/data/b"
for i in $(seq 60); do
	head -c 262144 /dev/urandom >"$T/data/a/f$i"
	head -c $((i * 1000)) /dev/urandom >"$T/data/b/g$i"
done
head -c $((6 * 1024 * 1024)) /dev/urandom >"$T/data/b/multi"
chown -R 1000:1000 "$T/data/a"
find "$T/data" -type f -exec touch -m -d '2020-05-05' {} +
snapshot "$T/data" "$T/snap"
total=$(find "$T/data" -type f | wc -l)

e2e_conf "$(s3_target_conf s3)
bandwidth_limit = 3M" "$(e2e_policy s3 "$T/data")"
e2e_start TD_ROLLBACK_RETRY_S=2
[ "$(status_get 'd["targets"]["s3"]["reachable"]')" = True ] && pass "target reachable at start" ||
	fail "target not reachable at start: $(status_get 'd["targets"]')"

ctl run p >/dev/null || fail "run refused"
for _ in $(seq 600); do
	[ "$(find "$T/data" -type l | wc -l)" -ge 8 ] && break
	sleep 0.05
done
before=$(find "$T/data" -type l | wc -l)
[ "$before" -lt "$total" ] && pass "$before of $total tiered when the gateway is stopped" ||
	fail "run finished before the gateway could be stopped"
rpid=$(cat "$RGW/pids/radosgw")
kill -KILL "$rpid"
for _ in $(seq 100); do kill -0 "$rpid" 2>/dev/null || break; sleep 0.05; done
rgw_up && fail "gateway still answers" || pass "gateway stopped (pid $rpid)"
t0=$SECONDS
r=
while [ $((SECONDS - t0)) -lt 45 ]; do
	r=$(status_get 'd["targets"]["s3"]["reachable"]')
	[ "$r" = False ] && break
	sleep 0.2
done
[ "$r" = False ] && pass "status says the target is unreachable after $((SECONDS - t0)) s" ||
	fail "target still reachable after 45 s: $(status_get 'd["targets"]')"
wait_idle 60 && pass "the run ended" || fail "the run did not end: $(status_get 'd["runs"]')"
tree_verify "gateway down: every file untouched or tiered and readable" "$T/data" "$T/snap"
errs=$(status_get '"\n".join(e["message"] for e in d["recent_errors"])')
echo "  recent_errors: $(head -3 <<<"$errs" | tr '\n' '|')"
grep -qi "unreachable\|connect\|refused" <<<"$errs" && pass "recent_errors says why" || fail "recent_errors: $errs"
during=$(find "$T/data" -type l | wc -l)
pending_down=$(ctl --json ls --state migrating | python3 -c 'import json,sys; print(sum(f.get("step") == 9 for f in json.load(sys.stdin)["files"]))')
echo "  $pending_down rollback(s) waiting for the gateway to delete their copies"

# Same command line as radosgw.sh: the cluster's data survives.
radosgw -c "$RGW/ceph.conf" -n client.rgw -f >>"$RGW/log/rgw.out" 2>&1 &
echo $! >"$RGW/pids/radosgw"
for _ in $(seq 600); do rgw_up && break; sleep 0.1; done
rgw_up && pass "gateway restarted" || fail "gateway did not restart"
t0=$SECONDS
while [ $((SECONDS - t0)) -lt 45 ]; do
	[ "$(status_get 'd["targets"]["s3"]["reachable"]')" = True ] && break
	sleep 0.2
done
[ "$(status_get 'd["targets"]["s3"]["reachable"]')" = True ] &&
	pass "target reachable again after $((SECONDS - t0)) s" || fail "target still unreachable"
for _ in $(seq 900); do
	[ "$(find "$T/data" -type l | wc -l)" = "$total" ] && break
	sleep 0.1
done
wait_idle 60 || true
grep -q "target back, running again" "$T/tierd.log" && pass "tierd reran the policy by itself" ||
	fail "no rerun logged"
tree_verify "every file tiered in the end ($during before the gateway came back)" "$T/data" "$T/snap" --all-tiered
up=$(s3_uploads)
[ -z "$up" ] && pass "no open multipart upload" || fail "open uploads: $up"
ctl --json ls >"$T/ls.json"
s3_keys >"$T/keys"
check_no_orphans "no object without a catalog row" orphans
# Rows whose rollback could not delete from the dead gateway (step 9) are
# retried by the daemon once it answers again (every 2 s here): no restart.
for _ in $(seq 150); do [ "$(n_migrating)" = 0 ] && break; sleep 0.2; done
[ "$(n_migrating)" = 0 ] && pass "nothing left migrating without a restart ($pending_down pending rollback(s) retried)" ||
	{ fail "rows left migrating"; ctl ls --state migrating; }
s3_keys >"$T/keys"
ctl --json ls >"$T/ls.json"
check_no_orphans "no object without a catalog row after the retries" orphans
tierd_stop
tierd_start && pass "restarted" || fail "restart failed"
ctl --json ls >"$T/ls.json"
s3_keys >"$T/keys"
[ "$(python3 -c "import json; print(sum(f['state']=='migrating' for f in json.load(open('$T/ls.json'))['files']))")" = 0 ] &&
	pass "after the restart nothing is migrating" || fail "rows still migrating after recovery"
check_no_orphans "no object without a catalog row after recovery" orphans
tree_verify "still every file tiered and readable" "$T/data" "$T/snap" --all-tiered
tierd_stop
finish
