#!/usr/bin/env bash
# The admin guide's Samba recipe, tested: Debian's smbd serves a policy root
# on 127.0.0.1 (its own smb.conf, private/lock/state dirs and port), with
#   follow symlinks = yes, wide links = yes, unix extensions = no
# (a tiered file's link leads out of the share, to state_dir/links and then
# to the remote view or the cache). smbclient, as a real user:
# - reads a cold tiered file byte-identical, through the share;
# - writes a tiered file through the share, and tierd recalls it: it ends as
#   a regular file with the new bytes;
# - on a second share without wide links, cannot read a tiered file (the
#   setting is what makes it work, so the first check can fail).
set -euo pipefail
: "${TD_SOURCE_DIR:?}"
. "$TD_SOURCE_DIR/tests/e2e/lib.sh"
[ "$(id -u)" = 0 ] || td_missing "root"
[ -c /dev/fuse ] || td_missing "/dev/fuse"
td_need_cmds smbd smbclient smbpasswd
e2e_init samba
. "$TD_SOURCE_DIR/tests/e2e/users.sh"
user=tdsmb$$
pw=Tierd-$$-pw
e2e_user "$user"

share=$T/data/share
mkdir -p "$share" "$T/tier" "$T/smb"/{private,lock,state,cache,run,log}
chown "$user:$user" "$share"
e2e_conf "$(dir_target_conf nas "$T/tier")" "$(e2e_policy nas "$share" keep_cached=no)"
head -c 3000000 /dev/urandom >"$share/cold.bin"
head -c 200000 /dev/urandom >"$share/edit.bin"
head -c 100000 /dev/urandom >"$share/other.bin"
chown "$user:$user" "$share"/*.bin
cp "$share/cold.bin" "$share/other.bin" "$T/"
e2e_start TD_DIRTY_SCAN_S=1
ctl migrate "$share"/*.bin >/dev/null && pass "tiered 3 files in the share" || e2e_abort "migrate"
for f in cold edit other; do [ -L "$share/$f.bin" ] || e2e_abort "$f.bin is not a link"; done

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
S=$T/smb
cat >"$S/smb.conf" <<CONF
[global]
	server role = standalone server
	interfaces = 127.0.0.1
	bind interfaces only = yes
	smb ports = $port
	private dir = $S/private
	lock directory = $S/lock
	state directory = $S/state
	cache directory = $S/cache
	pid directory = $S/run
	ncalrpc dir = $S/run/ncalrpc
	log file = $S/log/log.%m
	load printers = no
	printing = bsd
	printcap name = /dev/null
	disable spoolss = yes
	# The recipe (docs/admin-guide.md, "Samba"):
	unix extensions = no

[tiered]
	path = $share
	read only = no
	follow symlinks = yes
	wide links = yes

[narrow]
	path = $share
	read only = yes
	follow symlinks = yes
	wide links = no
CONF
printf '[global]\n\tclient min protocol = SMB2\n' >"$S/client.conf"
printf '%s\n%s\n' "$pw" "$pw" | smbpasswd -c "$S/smb.conf" -s -a "$user" >/dev/null ||
	e2e_abort "smbpasswd -a $user"
# Its own session: smbd signals its whole process group when it stops.
setsid smbd --foreground --no-process-group --debug-stdout -s "$S/smb.conf" >"$S/smbd.out" 2>&1 &
smbpid=$!
E2E_CLEANUP_HOOKS+=("kill -TERM $smbpid 2>/dev/null; wait $smbpid 2>/dev/null")
smb() { # SHARE CMDS
	smbclient -s "$S/client.conf" -p "$port" -U "$user%$pw" "//127.0.0.1/$1" -c "$2"
}
up=0
for _ in $(seq 200); do
	smb tiered ls >/dev/null 2>&1 && { up=1; break; }
	kill -0 $smbpid 2>/dev/null || break
	sleep 0.1
done
[ $up = 1 ] && pass "smbd serves the policy root on 127.0.0.1:$port" || {
	tail -20 "$S/smbd.out"
	e2e_abort "smbd did not answer"
}

# Read a cold file through the share.
if smb tiered "get cold.bin $T/got.bin" >"$T/smb.out" 2>&1 && cmp -s "$T/cold.bin" "$T/got.bin"; then
	pass "smbclient reads a cold tiered file byte-identical"
else
	fail "smbclient get cold.bin: $(tail -2 "$T/smb.out")"
fi

# Overwrite a tiered file through the share: tierd recalls it.
head -c 150000 /dev/urandom >"$T/new.bin"
smb tiered "put $T/new.bin edit.bin" >"$T/smb.out" 2>&1 && pass "smbclient put over a tiered file" ||
	fail "smbclient put: $(tail -2 "$T/smb.out")"
wait_settled 60 || fail "tierd did not settle after the write"
if [ -f "$share/edit.bin" ] && [ ! -L "$share/edit.bin" ] && cmp -s "$T/new.bin" "$share/edit.bin"; then
	pass "the file written through the share is a regular file with the new bytes"
else
	fail "edit.bin after the write: $(stat -c %F "$share/edit.bin"), $(cmp "$T/new.bin" "$share/edit.bin" 2>&1)"
fi
st=$(ctl --json info "$share/edit.bin" | python3 -c 'import json,sys; print(json.load(sys.stdin)["files"][0]["state"])' 2>/dev/null || echo "?")
[ "$st" = local ] && pass "the catalog has it local again" || fail "edit.bin's state is $st"
[ "$(stat -c %U "$share/edit.bin")" = "$user" ] && pass "it still belongs to $user" ||
	fail "edit.bin belongs to $(stat -c %U "$share/edit.bin")"

# Without wide links, smbd refuses the link that leads out of the share.
if smb narrow "get other.bin $T/narrow.bin" >"$T/smb.out" 2>&1 && cmp -s "$T/other.bin" "$T/narrow.bin"; then
	fail "a share without wide links served a tiered file (the recipe's setting proves nothing)"
else
	pass "without wide links smbd refuses the tiered file ($(grep -o 'NT_STATUS_[A-Z_]*' "$T/smb.out" | head -1))"
fi
finish
