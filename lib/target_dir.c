/* target_dir — placeholder until the dir backend lands; every call fails with -ENOSYS. */
#include "target_impl.h"

#include <errno.h>

static int dir_new(struct td_target **out, uv_loop_t *loop, const struct td_target_conf *conf,
                   struct td_target_error *err)
{
	td_target_error_set(err, "the dir target is not built yet");
	return -ENOSYS;
}

const struct td_target_ops td_target_dir_ops = {
	.type = "dir",
	.new_ = dir_new,
};
