/* target_s3 — placeholder until the s3 backend lands; every call fails with -ENOSYS. */
#include "target_impl.h"

#include <errno.h>

static int s3_new(struct td_target **out, uv_loop_t *loop, const struct td_target_conf *conf,
                  struct td_target_error *err)
{
	td_target_error_set(err, "the s3 target is not built yet");
	return -ENOSYS;
}

const struct td_target_ops td_target_s3_ops = {
	.type = "s3",
	.new_ = s3_new,
};
