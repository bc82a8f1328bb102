#!/usr/bin/env bash
# A throwaway single-node OpenStack Swift with the s3api middleware (and
# tempauth) on 127.0.0.1, for tests: a second real S3 implementation beside
# radosgw. Debian 12's packages (swift-proxy, swift-object, swift-container,
# swift-account); one replica; storage in a plain directory (mount_check off;
# the filesystem must carry user xattrs, as ext4 and xfs do).
#
#   tests/s3/swift.sh start DIR    start the account, container, object and
#                                  proxy servers under DIR; writes DIR/env
#                                  (TD_S3_* variables, TD_S3_SERVER=swift) and
#                                  creates the bucket
#   tests/s3/swift.sh stop DIR     stop every process it started (by pid) and wait
#   tests/s3/swift.sh status DIR   exit 0 when the proxy answers
#
# The access key is tempauth's "account:user" (it has a ':'), the secret has
# punctuation in it: both are what admins of Swift get. Environment:
# TD_SWIFT_START_TIMEOUT (seconds, default 60). Readiness is polled, never
# slept for; ports are free ones picked at start; nothing is written outside
# DIR (the package's /etc/swift/swift.conf gives the hash suffix and policy 0).
set -euo pipefail

die() { echo "swift.sh: $*" >&2; exit 1; }
cmd=${1:-}
dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || die "usage: $0 start|stop|status DIR"
py=/usr/bin/python3

free_port() {
	$py -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

wait_for() {
	local secs=$1 what=$2
	shift 2
	local deadline=$((SECONDS + secs)) delay=0.05
	until "$@" >/dev/null 2>&1; do
		if [ $SECONDS -ge $deadline ]; then
			echo "swift.sh: timed out after ${secs}s waiting for $what" >&2
			return 1
		fi
		sleep "$delay"
		delay=$(awk -v d="$delay" 'BEGIN { d *= 1.5; if (d > 1) d = 1; print d }')
	done
}

stop() {
	[ -d "$dir/pids" ] || return 0
	for name in proxy object container account memcached; do
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
	curl -sf -o /dev/null -m 2 "$TD_S3_ENDPOINT/healthcheck"
}

server_conf() { # name port extra...
	local name=$1 port=$2
	shift 2
	cat >"$dir/$name-server.conf" <<CONF
[DEFAULT]
bind_ip = 127.0.0.1
bind_port = $port
workers = 0
user = $(id -un)
swift_dir = $dir
devices = $dir/srv
mount_check = false
log_name = $name
log_level = INFO

[pipeline:main]
pipeline = $name-server

[app:$name-server]
use = egg:swift#$name
CONF
}

start() {
	for b in swift-proxy-server swift-object-server swift-container-server \
		swift-account-server swift-ring-builder memcached; do
		command -v $b >/dev/null ||
			die "$b not installed: apt-get install -y swift swift-proxy swift-object swift-container swift-account memcached"
	done
	[ -f /etc/swift/swift.conf ] || die "/etc/swift/swift.conf missing (it comes with the swift package)"
	mkdir -p "$dir"
	dir=$(cd "$dir" && pwd)
	stop
	rm -rf "${dir:?}"/{srv,log,pids,env,*.conf,*.builder,*.ring.gz,backups}
	mkdir -p "$dir"/{srv/d1,log,pids}
	local timeout=${TD_SWIFT_START_TIMEOUT:-60}
	local p_proxy p_obj p_cont p_acct p_mc
	p_proxy=$(free_port)
	p_obj=$(free_port)
	p_cont=$(free_port)
	p_acct=$(free_port)
	p_mc=$(free_port)

	local kind port
	for kind in object container account; do
		case $kind in
		object) port=$p_obj ;;
		container) port=$p_cont ;;
		account) port=$p_acct ;;
		esac
		(cd "$dir" && swift-ring-builder $kind.builder create 6 1 1 &&
			swift-ring-builder $kind.builder add "r1z1-127.0.0.1:$port/d1" 100 &&
			swift-ring-builder $kind.builder rebalance) >"$dir/log/ring-$kind.out" 2>&1 ||
			{ cat "$dir/log/ring-$kind.out" >&2; die "swift-ring-builder $kind failed"; }
		server_conf $kind "$port"
	done

	# tempauth's key must not hold blanks; the punctuation is on purpose.
	local secret
	secret="s3:$(head -c 18 /dev/urandom | base64 | tr -d '/+=\n')!#,."
	cat >"$dir/proxy-server.conf" <<CONF
[DEFAULT]
bind_ip = 127.0.0.1
bind_port = $p_proxy
workers = 0
user = $(id -un)
swift_dir = $dir
log_name = proxy
log_level = INFO

[pipeline:main]
pipeline = catch_errors gatekeeper healthcheck proxy-logging cache listing_formats s3api tempauth copy slo dlo versioned_writes symlink proxy-logging proxy-server

[app:proxy-server]
use = egg:swift#proxy
account_autocreate = true
allow_account_management = true

[filter:s3api]
use = egg:swift#s3api
location = us-east-1
s3_acl = false
dns_compliant_bucket_names = true
storage_domain = localhost
# The multipart and listing limits of S3, not Swift's smaller ones.
max_upload_part_num = 10000
max_bucket_listing = 1000

[filter:tempauth]
use = egg:swift#tempauth
user_tierd_tester = $secret .admin

[filter:healthcheck]
use = egg:swift#healthcheck
[filter:cache]
use = egg:swift#memcache
memcache_servers = 127.0.0.1:$p_mc
[filter:catch_errors]
use = egg:swift#catch_errors
[filter:gatekeeper]
use = egg:swift#gatekeeper
[filter:proxy-logging]
use = egg:swift#proxy_logging
[filter:listing_formats]
use = egg:swift#listing_formats
[filter:copy]
use = egg:swift#copy
[filter:slo]
use = egg:swift#slo
# S3's part limit (SLO's default is 1000 segments).
max_manifest_segments = 10000
[filter:dlo]
use = egg:swift#dlo
# S3 bucket versioning (s3api maps it onto object versioning).
[filter:versioned_writes]
use = egg:swift#versioned_writes
allow_versioned_writes = true
allow_object_versioning = true
[filter:symlink]
use = egg:swift#symlink
CONF

	# tempauth keeps its tokens in memcache; a private one on a free port.
	memcached -l 127.0.0.1 -p "$p_mc" -U 0 -m 64 -u "$(id -un)" >"$dir/log/memcached.out" 2>&1 &
	echo $! >"$dir/pids/memcached"
	for kind in account container object; do
		"swift-$kind-server" "$dir/$kind-server.conf" -v >"$dir/log/$kind.out" 2>&1 &
		echo $! >"$dir/pids/$kind"
	done
	swift-proxy-server "$dir/proxy-server.conf" -v >"$dir/log/proxy.out" 2>&1 &
	echo $! >"$dir/pids/proxy"
	for kind in account container object; do
		case $kind in
		object) port=$p_obj ;;
		container) port=$p_cont ;;
		account) port=$p_acct ;;
		esac
		wait_for "$timeout" "the $kind server on port $port" \
			curl -s -o /dev/null -m 2 "http://127.0.0.1:$port/" ||
			{ tail -20 "$dir/log/$kind.out" >&2; die "the $kind server did not start"; }
	done
	wait_for "$timeout" "the proxy on port $p_proxy" \
		curl -sf -o /dev/null -m 2 "http://127.0.0.1:$p_proxy/healthcheck" ||
		{ tail -20 "$dir/log/proxy.out" >&2; die "the proxy did not start"; }

	cat >"$dir/env" <<ENV
TD_S3_ENDPOINT=http://127.0.0.1:$p_proxy
TD_S3_ACCESS_KEY='tierd:tester'
TD_S3_SECRET_KEY='$secret'
TD_S3_BUCKET=tierd-test
TD_S3_REGION=us-east-1
TD_S3_SERVER=swift
ENV
	chmod 600 "$dir/env"
	# Through aws cli (which splits no key), polled: the account is created
	# on first use.
	wait_for 30 "bucket creation" env AWS_ACCESS_KEY_ID="tierd:tester" AWS_SECRET_ACCESS_KEY="$secret" \
		AWS_DEFAULT_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true \
		aws --endpoint-url "http://127.0.0.1:$p_proxy" s3api create-bucket --bucket tierd-test ||
		{ tail -20 "$dir/log/proxy.out" >&2; die "could not create the test bucket"; }
	echo "swift.sh: ready at http://127.0.0.1:$p_proxy (bucket tierd-test; env in $dir/env)"
}

case "$cmd" in
start) start ;;
stop) stop ;;
status) status ;;
*) die "unknown command '$cmd' (start|stop|status)" ;;
esac
