#!/usr/bin/env bash
# Issue 15 item 1 — a clean stop lets the transfers in flight finish. With
# uploads throttled by bandwidth_limit, SIGTERM while they are in flight: the
# daemon refuses new work, lets them finish, exits 0, and every file is a link
# reading its original bytes. With stop_timeout = 1s and one long upload the
# deadline cancels it: the file stays a regular file with its bytes, and after
# a restart nothing is left half-done. A second SIGTERM stops at once.
. "$(dirname "$0")/lib.sh"
e2e_init stop s3
mkdir -p "$T/data"
for i in 1 2 3 4; do head -c 3000000 /dev/urandom >"$T/data/f$i"; done
touch -d 2001-01-01 "$T/data"/f*
snapshot "$T/data" "$T/snap"
conf() { e2e_conf "$@" "$(s3_target_conf s3)
bandwidth_limit = 2M" "$(e2e_policy s3 "$T/data" keep_cached=no)"; }
conf
e2e_start
ctl migrate "$T/data"/f* >"$T/migrate.out" 2>&1 &
mig=$!
for _ in $(seq 300); do
	[ "$(status_get 'd["in_flight"]' 2>/dev/null || echo 0)" -ge 2 ] && break
	sleep 0.05
done
n=$(status_get 'd["in_flight"]')
[ "$n" -ge 2 ] && pass "$n transfers in flight" || e2e_abort "no transfers in flight"
kill -TERM "$TDPID"
# While it drains: a new migrate is refused, status still answers.
for _ in $(seq 100); do grep -q 'letting .* transfer(s) in flight finish' "$T/tierd.log" && break; sleep 0.05; done
out=$(ctl migrate "$T/data/f1" 2>&1) && fail "migrate accepted while stopping" ||
	{ [[ $out == *"tierd is stopping"* ]] && pass "new work refused while stopping: $out" || fail "migrate while stopping: $out"; }
rc=0
wait "$TDPID" || rc=$?
TDPID=
[ $rc = 0 ] && pass "tierd exited 0 after the drain" || fail "tierd exited $rc"
wait $mig || true
grep -q 'every transfer in flight has finished' "$T/tierd.log" && pass "the log says every transfer finished" ||
	fail "no drain line in the log: $(tail -5 "$T/tierd.log")"
links=$(find "$T/data" -type l | wc -l)
[ "$links" -ge "$n" ] && pass "$links files tiered (each in flight at SIGTERM finished)" || fail "only $links links, $n were in flight"
e2e_start
tree_verify "every file reads its original bytes after the restart" "$T/data" "$T/snap"
[ "$(n_migrating)" = 0 ] && pass "no row left migrating" || fail "$(n_migrating) rows migrating"
ctl recall "$T/data"/f* >/dev/null 2>&1 || true
wait_idle 60 || true
tierd_stop

# stop_timeout: a transfer that cannot finish in time is cancelled cleanly.
head -c 20000000 /dev/urandom >"$T/data/big"
touch -d 2001-01-01 "$T/data/big"
cp -a "$T/data/big" "$T/want-big"
conf "stop_timeout = 1s"
e2e_start
ctl migrate "$T/data/big" >/dev/null 2>&1 &
mig=$!
for _ in $(seq 300); do
	[ "$(status_get 'd["in_flight"]' 2>/dev/null || echo 0)" -ge 1 ] && break
	sleep 0.05
done
kill -TERM "$TDPID"
rc=0
wait "$TDPID" || rc=$?
TDPID=
wait $mig || true
[ $rc = 0 ] && grep -q 'stop_timeout reached with 1 transfer' "$T/tierd.log" &&
	pass "stop_timeout reached: the upload was cancelled, exit 0" || fail "stop_timeout: exit $rc, $(tail -3 "$T/tierd.log")"
[ -f "$T/data/big" ] && [ ! -L "$T/data/big" ] && cmp -s "$T/data/big" "$T/want-big" &&
	pass "the cancelled file is a regular file with its bytes" || fail "big changed"
e2e_start
wait_idle 60 || true
[ "$(n_migrating)" = 0 ] && [ -z "$(s3_uploads)" ] && pass "after a restart: no row migrating, no open upload" ||
	fail "after a restart: $(n_migrating) migrating, uploads: $(s3_uploads)"

# A second SIGTERM does not wait.
ctl migrate "$T/data/big" >/dev/null 2>&1 &
mig=$!
for _ in $(seq 300); do
	[ "$(status_get 'd["in_flight"]' 2>/dev/null || echo 0)" -ge 1 ] && break
	sleep 0.05
done
kill -TERM "$TDPID"
for _ in $(seq 100); do grep -q 'letting 1 transfer(s) in flight finish' "$T/tierd.log" && break; sleep 0.05; done
kill -TERM "$TDPID"
rc=0
wait "$TDPID" || rc=$?
TDPID=
wait $mig || true
grep -q 'second signal: stopping now' "$T/tierd.log" && [ $rc = 0 ] &&
	pass "a second SIGTERM stops at once" || fail "second SIGTERM: exit $rc"
finish
