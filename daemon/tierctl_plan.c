/* tierctl plan — placeholder until the command lands. */
#include "tierctl.h"

#include <stdio.h>

int tierctl_plan(const struct tierctl_opts *o, int argc, char **argv)
{
	fprintf(stderr, "tierctl: plan is not implemented yet\n");
	return TIERCTL_FAILED;
}
