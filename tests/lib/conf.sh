# Sourced by the test scripts: the pieces of a tierd.conf they write, so a
# section every test needs reads the same everywhere. Each prints to stdout;
# a test joins them in braces: { td_conf_tierd "$dir"; ...; } >"$dir/tierd.conf".

# td_conf_tierd DIR [LINE...]: a [tierd] section keeping its state, cache and
# run directories under DIR, then each LINE ("key = value").
td_conf_tierd() {
	local d=$1
	shift
	printf '[tierd]\nstate_dir = %s/state\ncache_dir = %s/cache\nrun_dir   = %s/run\n' "$d" "$d" "$d"
	[ $# = 0 ] || printf '%s\n' "$@"
}

# td_conf_dir_target NAME PATH: a dir target, after a blank line.
td_conf_dir_target() {
	printf '\n[target "%s"]\ntype = dir\npath = %s\n' "$1" "$2"
}

# td_conf_s3_target NAME PREFIX [LINE...]: an s3 target on the test server
# (TD_S3_*, tests/s3/radosgw.sh) storing under PREFIX, after a blank line,
# then each LINE.
td_conf_s3_target() {
	local name=$1 prefix=$2
	shift 2
	printf '\n[target "%s"]\ntype = s3\nendpoint = %s\nregion = %s\nbucket = %s\nprefix = %s\n' \
		"$name" "$TD_S3_ENDPOINT" "${TD_S3_REGION:-us-east-1}" "$TD_S3_BUCKET" "$prefix"
	[ $# = 0 ] || printf '%s\n' "$@"
}
