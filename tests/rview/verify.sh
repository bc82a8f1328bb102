#!/usr/bin/env bash
# Streamed reads are verified (issue 12 item 8). A file is tiered, then the
# object on the target is replaced by other bytes of the same size; a
# no_hydrate reader (cat) must get EIO, never the new bytes.
# dir: the object file is overwritten in place, so its xattrs (or sidecar),
# and with them its ETag, still claim the old SHA-256: only the stream's own
# SHA-256 check can catch it, at the read that reaches the end.
# s3: other bytes are put at the object's key (a new ETag): every range GET
# carries If-Match with the tiered ETag, so the first read fails (412).
# An object left alone still streams right.
. "$(dirname "$0")/lib.sh"
need_fuse
backend=${1:-dir}
rv_setup verify "$backend"
[ "$backend" = s3 ] && td_need_cmds aws
rv_conf "no_hydrate = cat" "cache_size = 1G"
start_tierd || { fail "tierd start"; finish; }
mkfile good 3000017
mkfile bad 3000023
mkfile small 4099
tier good bad small && pass "tiered 3 files" || { fail "migrate"; finish; }

# replace NAME: other random bytes of the same size at NAME's object.
replace() {
	local size new=$t/new-$1
	size=$(stat -c %s "$t/orig/$1")
	head -c "$size" /dev/urandom >"$new"
	if [ "$backend" = s3 ]; then
		local pfx key
		pfx=$(sed -n 's/^prefix = //p' "$conf")
		key=$(AWS_ACCESS_KEY_ID=$TD_S3_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$TD_S3_SECRET_KEY \
			AWS_DEFAULT_REGION=${TD_S3_REGION:-us-east-1} AWS_EC2_METADATA_DISABLED=true \
			aws --endpoint-url "$TD_S3_ENDPOINT" s3api list-objects-v2 --bucket "$TD_S3_BUCKET" \
			--prefix "$pfx" --query "Contents[?Size==\`$size\`].Key" --output text)
		[ -n "$key" ] && [ "$key" != None ] || { echo "no object of size $size"; return 1; }
		AWS_ACCESS_KEY_ID=$TD_S3_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$TD_S3_SECRET_KEY \
			AWS_DEFAULT_REGION=${TD_S3_REGION:-us-east-1} AWS_EC2_METADATA_DISABLED=true \
			aws --endpoint-url "$TD_S3_ENDPOINT" s3api put-object --bucket "$TD_S3_BUCKET" \
			--key "$key" --body "$new" >/dev/null
	else
		local obj
		obj=$(find "$t/tier" -type f -size "${size}c" | head -1)
		[ -n "$obj" ] || { echo "no object of size $size"; return 1; }
		# In place: the inode, its xattrs and any sidecar stay as they were.
		dd if="$new" of="$obj" bs=1M conv=notrunc status=none
	fi
}
check "replaced the object of 'bad' with other bytes of the same size" replace bad
check "replaced the object of 'small' with other bytes of the same size" replace small

# streamed_read NAME: cat's exit status and stderr, the bytes in $t/out-NAME.
streamed_read() {
	cat "$t/data/$1" >"$t/out-$1" 2>"$t/err-$1"
}
streamed_read good
check "an unchanged object streams right" same "$t/out-good" good
streamed_read bad
rc=$?
check "the streamed read of the replaced object fails (cat exit $rc)" [ "$rc" != 0 ]
check "... with EIO ($(cat "$t/err-bad"))" grep -q "Input/output error" "$t/err-bad"
check "... and never hands out all of the new bytes" \
	[ "$(cmp -s "$t/out-bad" "$t/new-bad"; echo $?)" != 0 ]
streamed_read small
rc=$?
check "a one-read replaced object fails too (cat exit $rc)" [ "$rc" != 0 ]
check "... with EIO" grep -q "Input/output error" "$t/err-small"
check "... none of its new bytes are served" [ ! -s "$t/out-small" ]
check "the log names the change" grep -q "object changed on the target\|does not match the catalog" "$t/tierd.log"
check "no copies in the cache" [ "$(cache_files)" = 0 ]
finish
