#!/usr/bin/env bash
# A TLS front for a test S3 server, with a private CA: stunnel on 127.0.0.1
# in front of BACKEND (host:port), its certificate for localhost
# (and the names given) and 127.0.0.1, signed by a CA made here with the
# openssl CLI. A second, unrelated CA is made too, for "wrong CA" tests.
#
#   tests/s3/tls_proxy.sh start DIR BACKEND [NAME...]
#                                             (NAMEs: more DNS names for the
#                                             certificate: BUCKET.localhost,
#                                             as TLS takes no *.localhost);
#                                             writes DIR/env: TD_TLS_ENDPOINT
#                                             (https://localhost:PORT),
#                                             TD_TLS_CA (the CA's PEM),
#                                             TD_TLS_OTHER_CA (the other one)
#   tests/s3/tls_proxy.sh stop DIR            stops it (by pid) and waits
#
# Readiness is polled; the port is a free one; nothing is written outside DIR.
set -euo pipefail
die() { echo "tls_proxy.sh: $*" >&2; exit 1; }
cmd=${1:-}
dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || die "usage: $0 start DIR HOST:PORT | stop DIR"

stop() {
	[ -f "$dir/pid" ] || return 0
	local pid
	pid=$(cat "$dir/pid")
	kill -TERM "$pid" 2>/dev/null || true
	for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	kill -KILL "$pid" 2>/dev/null || true
	rm -f "$dir/pid"
}

mkca() { # NAME
	openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=tierd test $1" \
		-keyout "$dir/$1.key" -out "$dir/$1.pem" -addext "basicConstraints=critical,CA:TRUE" \
		-addext "keyUsage=critical,keyCertSign,cRLSign" >/dev/null 2>&1 || die "openssl: CA $1"
}

start() {
	local backend=${3:-}
	[ -n "$backend" ] || die "start needs BACKEND (host:port)"
	command -v stunnel4 >/dev/null || die "stunnel4 not installed: apt-get install -y stunnel4"
	command -v openssl >/dev/null || die "openssl not installed"
	mkdir -p "$dir"
	dir=$(cd "$dir" && pwd)
	stop
	mkca ca
	mkca otherca
	openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout "$dir/server.key" \
		-out "$dir/server.csr" >/dev/null 2>&1 || die "openssl: server key"
	local san="DNS:localhost,IP:127.0.0.1" n
	for n in "${@:4}"; do san+=",DNS:$n"; done
	printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\n' "$san" >"$dir/server.ext"
	openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" \
		-CAcreateserial -days 2 -extfile "$dir/server.ext" -out "$dir/server.pem" >/dev/null 2>&1 ||
		die "openssl: server certificate"
	local port
	port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
	cat >"$dir/stunnel.conf" <<CONF
foreground = yes
pid =
output = $dir/stunnel.log
[s3]
accept = 127.0.0.1:$port
connect = $backend
cert = $dir/server.pem
key = $dir/server.key
CONF
	stunnel4 "$dir/stunnel.conf" >"$dir/stunnel.out" 2>&1 &
	echo $! >"$dir/pid"
	local deadline=$((SECONDS + 30))
	until curl -s -o /dev/null -m 2 --cacert "$dir/ca.pem" "https://localhost:$port/"; do
		[ $SECONDS -lt $deadline ] || { cat "$dir/stunnel.out" "$dir/stunnel.log" >&2 || true; die "stunnel did not start"; }
		kill -0 "$(cat "$dir/pid")" 2>/dev/null || { cat "$dir/stunnel.out" >&2; die "stunnel exited"; }
		sleep 0.1
	done
	cat >"$dir/env" <<ENV
TD_TLS_ENDPOINT=https://localhost:$port
TD_TLS_CA=$dir/ca.pem
TD_TLS_OTHER_CA=$dir/otherca.pem
ENV
}

case "$cmd" in
start) start "$@" ;;
stop) stop ;;
*) die "unknown command '$cmd' (start|stop)" ;;
esac
