#!/usr/bin/env bash
# No user can stall the loop with a lease (issue 12 item 4, DESIGN invariant
# 9): the owner holds a write lease on its file's cache copy while root reads
# the file through the remote view (a new session: the view opens the copy it
# finds in the cache); root's `tierctl status` still answers at once, checked
# while the owner still holds the lease, and the read returns the right bytes.
. "$(dirname "$0")/lib.sh"
need_fuse
rv_setup lease
rv_conf "cache_size = 64M"
start_tierd || { fail "tierd start"; finish; }
mkfile f 200000
chown 1234:1234 "$t/data/f"
tier f && pass "tiered" || { fail "migrate"; finish; }
cat "$t/data/f" >/dev/null
check "f is hydrated" wait_hot f
stop_tierd
start_tierd || fail "restart" # a new session: the view opens the copy again
mkdir -m 777 "$t/ipc"
setpriv --reuid=1234 --regid=1234 --clear-groups $RVIO lease "$t/data/f" "$t/ipc/ready" "$t/ipc/go" >"$t/lease.out" 2>&1 &
lpid=$!
bg_pids=$lpid
for _ in $(seq 100); do [ -e "$t/ipc/ready" ] && break; sleep 0.05; done
check "the owner holds a write lease on the copy" [ -e "$t/ipc/ready" ]
timeout 20 cmp "$(bound_remote f)" "$t/orig/f" >"$t/read.out" 2>&1 &
ppid=$!
sleep 0.5
# Both bounds are under the kernel's lease-break time (checked: at least 30 s),
# so a tierd that waited for the owner's lease could answer neither.
check "the kernel's lease-break time is over the bounds below" [ "$(cat /proc/sys/fs/lease-break-time)" -ge 30 ]
timeout 10 "$TIERCTL" -c "$conf" status >/dev/null
rc=$?
check "status answers while the lease is held (rc $rc)" [ $rc = 0 ]
check "... and the owner still holds it" kill -0 $lpid
wait $ppid
rc=$?
check "the read through the view returned the right bytes (rc $rc: $(tr '\n' ' ' <"$t/read.out"))" [ $rc = 0 ]
# A write open through the view meets the lease too. It waits for the break on
# a worker thread (no EAGAIN, and the loop goes on serving), and completes once
# the owner lets go.
(exec 3>>"$(bound_remote f)" && printf APPENDED >&3) >"$t/append.out" 2>&1 &
apid=$!
bg_pids="$lpid $apid"
for _ in $(seq 100); do grep -q BREAK /proc/locks && break; sleep 0.05; done
check "status answers while a write open waits on the lease" timeout 10 "$TIERCTL" -c "$conf" status
touch "$t/ipc/go"
wait $lpid
wait $apid
rc=$?
bg_pids=
cat "$t/lease.out"
printf APPENDED >>"$t/orig/f"
check "the write open through the view completed once the lease was let go (rc $rc: $(tr '\n' ' ' <"$t/append.out"))" [ $rc = 0 ]
check "f reads right, with the append" cmp -s "$t/data/f" "$t/orig/f"
finish
