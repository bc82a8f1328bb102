# Sourced by the benchmarks (tests/bench/*/*.sh): the clock and the reference
# S3 clients they share, with missing.sh (td_need_*) and conf.sh (td_conf_*).
BENCH_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$BENCH_LIB_DIR/missing.sh"
. "$BENCH_LIB_DIR/conf.sh"

td_now() { date +%s.%N; }

# td_time VAR DIGITS CMD...: runs CMD; its wall time in seconds, with DIGITS
# decimals, goes into VAR (a name, or an element such as "T[name]").
td_time() {
	local __var=$1 __digits=$2 __t0 __t1
	shift 2
	__t0=$(td_now)
	"$@"
	__t1=$(td_now)
	printf -v "$__var" '%s' "$(awk -v a="$__t0" -v b="$__t1" -v d="$__digits" 'BEGIN { printf "%." d "f", b - a }')"
}

# td_bench_s3_clients: the aws cli (awsc) and rclone (rcl, remote "x:") set up
# for the test server (TD_S3_*), from the environment only (never ~/.aws or
# an rclone.conf).
td_bench_s3_clients() {
	export AWS_ACCESS_KEY_ID=$TD_S3_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$TD_S3_SECRET_KEY
	export AWS_DEFAULT_REGION=${TD_S3_REGION:-us-east-1} AWS_EC2_METADATA_DISABLED=true
	export RCLONE_CONFIG_X_TYPE=s3 RCLONE_CONFIG_X_PROVIDER=Ceph RCLONE_CONFIG_X_ENV_AUTH=false
	export RCLONE_CONFIG_X_ACCESS_KEY_ID=$TD_S3_ACCESS_KEY RCLONE_CONFIG_X_SECRET_ACCESS_KEY=$TD_S3_SECRET_KEY
	export RCLONE_CONFIG_X_ENDPOINT=$TD_S3_ENDPOINT RCLONE_CONFIG_X_REGION=$AWS_DEFAULT_REGION
}
awsc() { aws --endpoint-url "$TD_S3_ENDPOINT" "$@"; }
rcl() { env -u AWS_CA_BUNDLE rclone --config /dev/null "$@"; }
