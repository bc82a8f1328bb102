#!/usr/bin/env bash
# Issue 15 item 2 — metrics: `tierctl metrics` and the metrics_listen server
# print Prometheus text that promtool accepts, with the families an admin
# watches, and the counters move with what tierd did: a file tiered to
# radosgw and read cold by a process named td-reader-$$ shows as tiered bytes,
# a cold open served remotely, S3 requests by operation and code with latency
# histograms, and fetched bytes under that process name.
. "$(dirname "$0")/lib.sh"
e2e_init metrics s3
command -v promtool >/dev/null || e2e_abort "promtool missing (Debian package prometheus)"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$T/data"
head -c 300000 /dev/urandom >"$T/data/cold"
touch -d 2001-01-01 "$T/data/cold"
e2e_conf "metrics_listen = 127.0.0.1:$port" "$(s3_target_conf s3)" \
	"$(e2e_policy s3 "$T/data" keep_cached=no)"
e2e_start
sum0=$(sha256sum <"$T/data/cold")
ctl migrate "$T/data/cold" >/dev/null && [ -L "$T/data/cold" ] && pass "tiered to radosgw" || e2e_abort "migrate failed"

# A reader with a name of its own: its fetches are labelled with it.
reader=$T/td-reader-$$
cp "$(command -v cat)" "$reader"
[ "$("$reader" "$T/data/cold" | sha256sum)" = "$sum0" ] && pass "cold read by $(basename "$reader")" ||
	fail "cold read gave other bytes"
ctl metrics >"$T/m.txt" && pass "tierctl metrics: exit 0" || fail "tierctl metrics failed"
out=$(promtool check metrics <"$T/m.txt" 2>&1) && pass "promtool check metrics: clean" ||
	fail "promtool check metrics: $out"
curl -sf "http://127.0.0.1:$port/metrics" -o "$T/h.txt" && promtool check metrics <"$T/h.txt" >/dev/null 2>&1 &&
	pass "GET /metrics on metrics_listen: promtool-clean" || fail "GET http://127.0.0.1:$port/metrics"
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/other")
[ "$code" = 404 ] && pass "other paths: 404" || fail "GET /other: $code"

python3 - "$T/m.txt" "$(basename "$reader")" <<'PY' && pass "families present and counters moved" || fail "metrics content"
import re, sys
text = open(sys.argv[1]).read()
proc = sys.argv[2][:15]  # the kernel's comm is 15 bytes at most
def val(name, **labels):
    for line in text.splitlines():
        m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$', line)
        if not m or m.group(1) != name:
            continue
        got = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(3) or ""))
        if all(got.get(k) == v for k, v in labels.items()):
            return float(m.group(4))
    return None
ok = True
def need(cond, what):
    global ok
    if not cond:
        print("  missing or wrong:", what); ok = False
for fam in ("tierd_files", "tierd_file_bytes", "tierd_tiered_bytes_total", "tierd_recalled_bytes_total",
            "tierd_fetched_bytes_total", "tierd_hydrations_total", "tierd_cold_opens_total",
            "tierd_cache_used_bytes", "tierd_cache_limit_bytes", "tierd_s3_requests_total",
            "tierd_s3_first_byte_seconds", "tierd_s3_request_duration_seconds", "tierd_errors_total",
            "tierd_queued_files", "tierd_in_flight_files", "tierd_last_run_timestamp_seconds"):
    need("# TYPE %s " % fam in text, "family " + fam)
need(val("tierd_tiered_files_total") == 1, "tierd_tiered_files_total 1")
need(val("tierd_tiered_bytes_total") == 300000, "tierd_tiered_bytes_total 300000")
need((val("tierd_files", state="tiered") or 0) + (val("tierd_files", state="cached") or 0) == 1, "tierd_files tiered+cached 1")
need((val("tierd_cold_opens_total", served="remote") or 0) >= 1, "a cold open served remotely")
need((val("tierd_fetched_bytes_total", process=proc) or 0) >= 300000, "fetched bytes for " + proc)
need((val("tierd_s3_requests_total", target="s3", operation="PutObject", code="200") or 0) >= 1, "PutObject 200")
need((val("tierd_s3_requests_total", target="s3", operation="GetObject", code="206") or 0) +
     (val("tierd_s3_requests_total", target="s3", operation="GetObject", code="200") or 0) >= 1, "GetObject")
need((val("tierd_s3_request_duration_seconds_count", target="s3", operation="PutObject") or 0) >= 1, "PutObject latency")
need(val("tierd_target_up", target="s3") == 1, "tierd_target_up 1")
if not ok:
    print("\n".join(l for l in text.splitlines() if l.startswith("tierd_s3_requests")))
sys.exit(0 if ok else 1)
PY

# A slow client holding connections does not stop a scrape: the listener caps
# them and each has a deadline; tierctl metrics still answers meanwhile.
python3 - "$port" <<'PY' &
import socket, sys, time
s = [socket.create_connection(("127.0.0.1", int(sys.argv[1]))) for _ in range(20)]
time.sleep(3)
PY
hold=$!
ctl metrics >/dev/null && pass "tierctl metrics answers while 20 idle connections are held" || fail "tierctl metrics with idle connections"
wait $hold
curl -sf "http://127.0.0.1:$port/metrics" -o /dev/null && pass "GET /metrics after they go" || fail "GET /metrics after the idle connections"

# Off by default; a bad value is a config error naming the key.
printf '[tierd]\nmetrics_listen = localhost:99999\n' >"$T/bad.conf"
out=$("$TIERD" --check-config -c "$T/bad.conf" 2>&1) && fail "a bad metrics_listen passed --check-config" ||
	{ [[ $out == *metrics_listen* ]] && pass "bad metrics_listen: config error naming the key" || fail "bad metrics_listen: $out"; }
tierd_stop
finish
