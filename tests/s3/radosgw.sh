#!/usr/bin/env bash
# A throwaway single-node Ceph cluster with radosgw on 127.0.0.1, for tests.
#
#   tests/s3/radosgw.sh start DIR   start mon + osd (memstore) + radosgw under DIR;
#                                   writes DIR/env (TD_S3_* variables) and a bucket
#   tests/s3/radosgw.sh stop DIR    stop every process it started (by pid) and wait
#   tests/s3/radosgw.sh status DIR  exit 0 when the gateway answers
#
# Environment: TD_RGW_MEM_MB (memstore size, default 6144), TD_RGW_START_TIMEOUT
# (seconds, default 120). Readiness is polled, never slept for; ports are free
# ones picked at start; nothing is written outside DIR.
set -euo pipefail

die() { echo "radosgw.sh: $*" >&2; exit 1; }
cmd=${1:-}
dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || die "usage: $0 start|stop|status DIR"

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# Polls `check` (a command) until it succeeds or `secs` pass.
wait_for() {
	local secs=$1 what=$2
	shift 2
	local deadline=$((SECONDS + secs)) delay=0.05
	until "$@" >/dev/null 2>&1; do
		if [ $SECONDS -ge $deadline ]; then
			echo "radosgw.sh: timed out after ${secs}s waiting for $what" >&2
			return 1
		fi
		sleep "$delay"
		delay=$(awk -v d="$delay" 'BEGIN { d *= 1.5; if (d > 1) d = 1; print d }')
	done
}

stop() {
	[ -d "$dir" ] || return 0
	local pids=()
	for f in "$dir"/pids/*; do
		[ -f "$f" ] || continue
		pids+=("$(cat "$f")")
	done
	[ ${#pids[@]} -gt 0 ] || return 0
	# radosgw first, then osd, then mon: each gets SIGTERM, then SIGKILL after 15 s.
	for name in radosgw osd mon; do
		[ -f "$dir/pids/$name" ] || continue
		local pid
		pid=$(cat "$dir/pids/$name")
		kill -TERM "$pid" 2>/dev/null || { rm -f "$dir/pids/$name"; continue; }
		wait_for 15 "$name to exit" bash -c "! kill -0 $pid" || kill -KILL "$pid" 2>/dev/null || true
		wait_for 5 "$name to die" bash -c "! kill -0 $pid" || true
		rm -f "$dir/pids/$name"
	done
}

status() {
	[ -f "$dir/env" ] || return 1
	# shellcheck disable=SC1091
	. "$dir/env"
	curl -s -o /dev/null -m 2 "$TD_S3_ENDPOINT/"
}

start() {
	command -v ceph-mon >/dev/null && command -v radosgw >/dev/null ||
		die "ceph-mon/ceph-osd/radosgw not installed: apt-get install -y radosgw ceph-mon ceph-osd"
	mkdir -p "$dir"
	dir=$(cd "$dir" && pwd)
	stop
	rm -rf "${dir:?}"/{mon,osd,log,run,pids,ceph.conf,env,monmap}
	mkdir -p "$dir"/{mon,osd,log,run,pids}
	local mon_port rgw_port fsid mem_mb
	mon_port=$(free_port)
	rgw_port=$(free_port)
	fsid=$(cat /proc/sys/kernel/random/uuid)
	mem_mb=${TD_RGW_MEM_MB:-6144}
	local timeout=${TD_RGW_START_TIMEOUT:-120}

	cat >"$dir/ceph.conf" <<CONF
[global]
fsid = $fsid
mon host = v2:127.0.0.1:$mon_port
mon initial members = a
auth cluster required = none
auth service required = none
auth client required = none
ms bind msgr1 = false
ms mon client mode = crc secure
mon allow pool size one = true
mon allow pool delete = true
mon max pg per osd = 2000
mon warn on pool no redundancy = false
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
paxos propose interval = 0.01
run dir = $dir/run
admin socket = $dir/run/\$name.asok
log file = $dir/log/\$name.log
pid file = $dir/run/\$name.pid
keyring = $dir/keyring
[mon.a]
mon data = $dir/mon
[osd]
osd data = $dir/osd
osd objectstore = memstore
memstore device bytes = $((mem_mb * 1024 * 1024))
osd max object size = 1073741824
[client.rgw]
rgw frontends = beast endpoint=127.0.0.1:$rgw_port
rgw dns name = localhost
rgw enable usage log = false
rgw max put size = 5368709120
# Deleted objects' data is freed by the garbage collector, after 2 h by
# default: the memstore (RAM) would fill up over a few benchmark runs.
rgw gc obj min wait = 10
rgw gc processor period = 10
CONF
	: >"$dir/keyring"
	local c=(-c "$dir/ceph.conf")

	monmaptool --create --addv a "[v2:127.0.0.1:$mon_port]" --fsid "$fsid" "$dir/monmap" >/dev/null
	ceph-mon "${c[@]}" --mkfs -i a --monmap "$dir/monmap" >"$dir/log/mkfs-mon.out" 2>&1 ||
		{ cat "$dir/log/mkfs-mon.out" >&2; die "ceph-mon --mkfs failed"; }
	ceph-mon "${c[@]}" -i a -f >"$dir/log/mon.out" 2>&1 &
	echo $! >"$dir/pids/mon"
	wait_for "$timeout" "the monitor" ceph "${c[@]}" --connect-timeout 5 mon stat ||
		{ tail -20 "$dir/log/mon.out" >&2; die "monitor did not start"; }

	local osd_id
	osd_id=$(ceph "${c[@]}" osd create)
	[ "$osd_id" = 0 ] || die "unexpected osd id $osd_id"
	ceph-osd "${c[@]}" -i 0 --mkfs >"$dir/log/mkfs-osd.out" 2>&1 ||
		{ cat "$dir/log/mkfs-osd.out" >&2; die "ceph-osd --mkfs failed"; }
	ceph-osd "${c[@]}" -i 0 -f >"$dir/log/osd.out" 2>&1 &
	echo $! >"$dir/pids/osd"
	wait_for "$timeout" "the OSD to come up" bash -c \
		"ceph ${c[*]} osd dump 2>/dev/null | grep '^osd.0 up' >/dev/null" ||
		{ tail -20 "$dir/log/osd.out" >&2; die "OSD did not come up"; }

	radosgw "${c[@]}" -n client.rgw -f >"$dir/log/rgw.out" 2>&1 &
	echo $! >"$dir/pids/radosgw"
	wait_for "$timeout" "radosgw on port $rgw_port" curl -s -o /dev/null -m 2 "http://127.0.0.1:$rgw_port/" ||
		{ tail -20 "$dir/log/rgw.out" >&2; tail -20 "$dir/log/client.rgw.log" >&2 || true; die "radosgw did not start"; }

	local ak sk
	ak=TD$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n' | tr a-f A-F)
	sk=$(head -c 30 /dev/urandom | base64 | tr -d '/+=\n')
	radosgw-admin "${c[@]}" user create --uid tierd-test --display-name "tierd tests" \
		--access-key "$ak" --secret-key "$sk" >"$dir/log/user.out" 2>&1 ||
		{ cat "$dir/log/user.out" >&2; die "radosgw-admin user create failed"; }

	cat >"$dir/env" <<ENV
TD_S3_ENDPOINT=http://127.0.0.1:$rgw_port
TD_S3_ACCESS_KEY=$ak
TD_S3_SECRET_KEY=$sk
TD_S3_BUCKET=tierd-test
TD_S3_REGION=us-east-1
TD_RGW_CONF=$dir/ceph.conf
ENV
	chmod 600 "$dir/env"
	# The default bucket; a new user's keys can take a moment to be visible to
	# the gateway, so poll the create until it succeeds.
	wait_for 30 "bucket creation" curl -sf -m 5 -X PUT \
		--aws-sigv4 "aws:amz:us-east-1:s3" --user "$ak:$sk" \
		-H "x-amz-content-sha256: UNSIGNED-PAYLOAD" "http://127.0.0.1:$rgw_port/tierd-test" ||
		die "could not create the test bucket"
	echo "radosgw.sh: ready at http://127.0.0.1:$rgw_port (bucket tierd-test; env in $dir/env)"
}

case "$cmd" in
start) start ;;
stop) stop ;;
status) status ;;
*) die "unknown command '$cmd' (start|stop|status)" ;;
esac
