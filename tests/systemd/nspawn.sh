#!/usr/bin/env bash
# tierd as the systemd unit ships it, under a real systemd: a Debian 12 root
# (tests/lib/debroot.sh, debootstrap, cached) booted by systemd-nspawn with
# the binaries just built and systemd/tierd.service, tiering to radosgw.
#
# - a cold read from OUTSIDE the service (the container's init namespaces,
#   where users live): the remote view must be visible there, byte-identical,
#   for a user who owns the file, and for a policy root under /home;
# - `systemctl reload` with transfers in flight: same process, new config
#   applied, the transfers end tiered, nothing lost;
# - `systemctl stop` with transfers in flight: the stop ends by itself
#   (Result=success, not a timeout or a SIGKILL), and after a restart every
#   file reads back byte-identical, nothing is left migrating, and each is
#   a regular file again or tiered;
# - `systemd-analyze security tierd` inside the container: printed, and
#   checked against the ceiling the unit's comments justify.
#
# Needs root, /dev/fuse, systemd-container and debootstrap (scripts/deps) and
# the network to Debian's archive on the first run (the root is cached under
# /var/cache/tierd-test). TD_UNIT=FILE tests another unit file (to see the
# old one fail), TD_UNIT_DROPIN=FILE adds a drop-in to it.
set -euo pipefail
: "${TD_SOURCE_DIR:?}"
. "$TD_SOURCE_DIR/tests/e2e/lib.sh"
. "$TD_SOURCE_DIR/tests/lib/nspawn.sh"
[ "$(id -u)" = 0 ] || td_missing "root"
[ -c /dev/fuse ] || td_missing "/dev/fuse"
td_need_cmds systemd-nspawn debootstrap nsenter
e2e_init nspawn s3
E2E_CLEANUP_HOOKS+=(ct_halt)
unit=${TD_UNIT:-$TD_SOURCE_DIR/systemd/tierd.service}
# The ceiling for systemd-analyze security's exposure score (0 best, 10
# worst): what the unit reaches without a mount namespace (see its comments).
max_exposure=4.5

base=$("$TD_SOURCE_DIR/tests/lib/debroot.sh") || e2e_abort "no Debian root (tests/lib/debroot.sh)"
R=$T/root
cp -a "$base" "$R"
pass "Debian 12 root copied from $base"

# --- the root: tierd installed as the package would, a user, the config ----
install -m 755 "$TIERD" "$R/usr/sbin/tierd"
install -m 755 "$TIERCTL" "$R/usr/bin/tierctl"
install -m 644 "$unit" "$R/etc/systemd/system/tierd.service"
mkdir -p "$R/etc/systemd/system/tierd.service.d"
[ -z "${TD_UNIT_DROPIN:-}" ] || install -m 644 "$TD_UNIT_DROPIN" "$R/etc/systemd/system/tierd.service.d/50-test.conf"
# The sanitizer build reads these; harmless for the normal one. No leak check:
# LeakSanitizer needs ptrace, which the unit's system call filter denies (the
# other tests check leaks).
printf '[Service]\nEnvironment=ASAN_OPTIONS=detect_leaks=0:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1\n' \
	>"$R/etc/systemd/system/tierd.service.d/test-sanitizers.conf"
chroot "$R" useradd -m -s /bin/sh alice
mkdir -p "$R/srv/data" "$R/home/alice/docs" "$R/etc/tierd"
printf 'access_key = %s\nsecret_key = %s\n' "$TD_S3_ACCESS_KEY" "$TD_S3_SECRET_KEY" >"$R/etc/tierd/s3.cred"
chmod 600 "$R/etc/tierd/s3.cred"
write_conf() { # LOG_LEVEL
	{
		printf '[tierd]\nlog_level = %s\nadmin_group = root\nmax_transfers = 4\n' "$1"
		td_conf_s3_target s3 "$E2E_PREFIX" "credentials_file = /etc/tierd/s3.cred" \
			"bandwidth_limit = 2M" "part_size = 5M" "multipart_threshold = 5M"
		printf '\n[policy "srv"]\npaths = /srv/data\ntarget = s3\nmin_age = 1d\nmin_size = 0\nschedule = manual\n'
		printf '\n[policy "home"]\npaths = /home/alice/docs\ntarget = s3\nmin_age = 1d\nmin_size = 0\nschedule = manual\n'
	} >"$R/etc/tierd/tierd.conf"
}
write_conf info
mk() { # FILE KiB OWNER
	head -c $(($2 * 1024)) /dev/urandom >"$R$1"
	chroot "$R" chown "$3:$3" "$1"
	cp "$R$1" "$T/orig.$(basename "$1")"
}
mk /srv/data/cold 512 alice
mk /home/alice/docs/h1 256 alice
for i in 1 2 3 4; do
	mk /srv/data/r$i 3072 root
	mk /srv/data/s$i 3072 root
done

ct_boot "$R" "tdsd$$" || e2e_abort "the container did not boot"
pass "container booted (systemd $(ct systemctl --version | head -1 | cut -d' ' -f2))"

# Reads FILE from the container's init namespaces as USER; compares with the copy.
same() { # FILE USER
	if ct runuser -u "$2" -- cat "$1" 2>"$T/read.err" | cmp -s - "$T/orig.$(basename "$1")"; then
		return 0
	fi
	echo "  reading $1 as $2 from outside the service: $(cat "$T/read.err")"
	return 1
}
sctl() { ct tierctl "$@"; }
state_of() { # FILE
	sctl --json info "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["files"][0]["state"])'
}
in_flight() {
	sctl --json status 2>/dev/null | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["in_flight"])' 2>/dev/null || echo 0
}
wait_in_flight() { # at least one transfer moving
	local deadline=$((SECONDS + 60))
	while [ $SECONDS -lt $deadline ]; do
		[ "$(in_flight)" -gt 0 ] && return 0
		sleep 0.05
	done
	return 1
}
start_tierd() {
	ct systemctl start tierd || {
		ct systemctl status --no-pager tierd | tail -20
		return 1
	}
}
journal() { ct journalctl -q -u tierd --no-pager -o cat; }

# --- start, tier, read cold from outside -------------------------------------
if start_tierd; then
	pass "systemctl start tierd: $(ct systemctl is-active tierd)"
else
	e2e_abort "tierd did not start under systemd"
fi
pid=$(ct systemctl show -p MainPID --value tierd)
if [ "$(ct readlink /proc/1/ns/mnt)" = "$(ct readlink "/proc/$pid/ns/mnt")" ]; then
	pass "the service shares the host's mount namespace"
else
	fail "the service runs in its own mount namespace: its remote view is invisible outside it"
fi
if sctl migrate /srv/data/cold /home/alice/docs/h1 >"$T/mig.out" 2>&1; then
	pass "tierctl migrate (a /srv and a /home policy root)"
else
	fail "tierctl migrate: $(cat "$T/mig.out")"
	journal | tail -20
fi
for f in /srv/data/cold /home/alice/docs/h1; do
	st=$(state_of "$f" 2>/dev/null || echo "?")
	[ "$st" = tiered ] && pass "$f tiered" || fail "$f is $st, not tiered"
	[ -L "$R$f" ] && pass "$f is a link now" || fail "$f is not a link"
done
ct findmnt -n -o FSTYPE /run/tierd/remote >"$T/fstype" 2>&1 || true
grep -q '^fuse' "$T/fstype" && pass "the remote view is mounted on the host ($(cat "$T/fstype"))" ||
	fail "no remote view at /run/tierd/remote outside the service"
same /srv/data/cold alice && pass "cold read from outside the service, by its owner: byte-identical" ||
	fail "cold read from outside the service"
same /home/alice/docs/h1 alice && pass "cold read of a file under /home: byte-identical" ||
	fail "cold read under /home"

# --- reload with transfers in flight ------------------------------------------
sctl migrate /srv/data/r1 /srv/data/r2 /srv/data/r3 /srv/data/r4 >"$T/mig.r" 2>&1 &
migpid=$!
if wait_in_flight; then
	write_conf debug
	ct systemctl reload tierd && pass "systemctl reload with $(in_flight) transfers in flight" ||
		fail "systemctl reload"
	if wait "$migpid"; then pass "the transfers went on through the reload"; else
		fail "migrate across a reload: $(cat "$T/mig.r")"
	fi
else
	fail "no transfer in flight to reload under"
	wait "$migpid" || true
fi
[ "$(ct systemctl show -p MainPID --value tierd)" = "$pid" ] && pass "reload kept the process ($pid)" ||
	fail "reload restarted tierd"
journal | grep -q "reloaded /etc/tierd/tierd.conf" && pass "the new configuration was loaded" ||
	fail "no 'reloaded' in the journal"
ok=0
for i in 1 2 3 4; do
	[ "$(state_of /srv/data/r$i 2>/dev/null)" = tiered ] && same /srv/data/r$i root && ok=$((ok + 1))
done
[ $ok = 4 ] && pass "all 4 files moved during the reload are tiered and read back identical" ||
	fail "only $ok of 4 files moved during the reload are tiered and intact"

# --- stop with transfers in flight ---------------------------------------------
sctl migrate /srv/data/s1 /srv/data/s2 /srv/data/s3 /srv/data/s4 >"$T/mig.s" 2>&1 &
migpid=$!
if wait_in_flight; then
	n=$(in_flight)
	ct systemctl stop tierd
	res=$(ct systemctl show -p Result --value tierd)
	[ "$res" = success ] && pass "systemctl stop with $n transfers in flight ended by itself (Result=$res)" ||
		fail "systemctl stop: Result=$res (TimeoutStopSec hit, or tierd failed)"
else
	fail "no transfer in flight to stop under"
	ct systemctl stop tierd
fi
wait "$migpid" || true
journal | grep -E "stopping|cancel|stopped" | tail -5 | sed 's/^/  journal: /'
start_tierd && pass "tierd started again" || e2e_abort "tierd did not start again"
ok=0
for i in 1 2 3 4; do same /srv/data/s$i root && ok=$((ok + 1)); done
[ $ok = 4 ] && pass "after the stop all 4 files read back byte-identical" || fail "only $ok of 4 files intact after the stop"
n=$(sctl --json ls --state migrating | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["files"]))')
[ "$n" = 0 ] && pass "nothing left migrating" || fail "$n files still migrating"
ok=0
for i in 1 2 3 4; do
	f=/srv/data/s$i
	st=$(state_of "$f" 2>/dev/null || echo "?")
	if [ ! -L "$R$f" ] && [ -f "$R$f" ] || [ "$st" = tiered ] || [ "$st" = cached ]; then ok=$((ok + 1)); else
		echo "  $f: state '$st', $(stat -c %F "$R$f" 2>&1)"
	fi
done
[ $ok = 4 ] && pass "each file stopped in flight is a regular file again, or tiered (cached once read)" ||
	fail "$((4 - ok)) files stopped in flight are neither local nor tiered"
for f in /srv/data/cold /srv/data/r1; do
	same "$f" alice 2>/dev/null || same "$f" root && pass "$f still reads back after the restart" ||
		fail "$f after the restart"
done

# --- systemd-analyze security ---------------------------------------------------
ct systemd-analyze security --no-pager tierd >"$T/security" 2>&1 || true
score=$(sed -n 's/.*Overall exposure level for tierd.service: \([0-9.]*\).*/\1/p' "$T/security")
grep -E '^ *✗' "$T/security" | sed 's/^/  /' || true
if [ -n "$score" ] && python3 -c "import sys; sys.exit(not float('$score') <= $max_exposure)"; then
	pass "systemd-analyze security tierd: $score (ceiling $max_exposure)"
else
	fail "systemd-analyze security tierd: '${score:-?}' above $max_exposure"
	tail -3 "$T/security"
fi
# A sanitizer build's tierd reports into the journal and may pass every check.
if journal | grep -q "ERROR: [A-Za-z]*Sanitizer\|: runtime error:"; then
	fail "tierd reported a sanitizer error:"
	journal | grep -A 12 "ERROR: [A-Za-z]*Sanitizer\|: runtime error:" | head -40
fi
[ $fails = 0 ] || journal | tail -30
finish
