/* config — placeholder until the parser lands. */
#include "config.h"

#include <errno.h>

int td_config_load(struct td_config **out, const char *path, struct td_config_errors *errs)
{
	return -ENOSYS;
}

void td_config_free(struct td_config *c)
{
}

void td_config_errors_clear(struct td_config_errors *errs)
{
}

void td_config_errors_print(const struct td_config_errors *errs, FILE *f)
{
}

int td_config_dump(const struct td_config *c, FILE *f)
{
	return -ENOSYS;
}
