/* tierctl check-target — placeholder until the command lands. */
#include "tierctl.h"

#include <stdio.h>

int tierctl_check_target(const struct tierctl_opts *o, int argc, char **argv)
{
	fprintf(stderr, "tierctl: check-target is not implemented yet\n");
	return TIERCTL_FAILED;
}
