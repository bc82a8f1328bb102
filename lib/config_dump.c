/*
 * config_dump — the effective configuration as INI, for tierd --check-config.
 *
 * Driven by the key table (config_keys.c): each section is written row by row,
 * each row by its kind's dumper, so a key added to the table is dumped without
 * a line here. The output is itself a valid configuration that loads to the
 * same values: defaults are written out, and what has no value is written as
 * an empty key or a comment. Secrets never appear: a target's keys are shown
 * only as "<redacted>" (DESIGN invariant 8).
 *
 * Any thread; writes only to the FILE it is given.
 */
#include "config_int.h"

#include <errno.h>
#include <grp.h>
#include <inttypes.h>
#include <pwd.h>

/* ---- one writer per kind of value ------------------------------------------------------------ */

/* "key = value", or "key =" when the value is empty or NULL. */
static void dump_text(FILE *f, const char *key, const char *v)
{
	fprintf(f, "%s =%s%s\n", key, v && *v ? " " : "", v ? v : "");
}

CFG_DUMPER(cfg_dump_str)
{
	(void)k, (void)base;
	dump_text(f, key, *(char *const *)field);
}

/* The admin group, with a note when this system has no such group. */
CFG_DUMPER(cfg_dump_admin_group)
{
	const struct td_config *c = base;
	const char *g = *(char *const *)field;

	(void)k;
	fprintf(f, "%s =%s%s", key, g && *g ? " " : "", g ? g : "");
	if (g && *g && !c->has_admin_gid)
		fprintf(f, " ; no such group on this system: only root may administer");
	fputc('\n', f);
}

/* The credentials file's path, or where the keys come from instead; never the keys. */
CFG_DUMPER(cfg_dump_credfile)
{
	const struct td_target_conf *t = base;

	(void)k, (void)field;
	if (t->credentials_file)
		fprintf(f, "%s = %s\n", key, t->credentials_file);
	else
		fprintf(f, "; credentials: from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY%s\n",
		        t->access_key ? "" : " (not set here)");
	if (t->access_key)
		fprintf(f, "; access_key = <redacted>\n; secret_key = <redacted>\n");
}

static void dump_bytes(FILE *f, const char *key, uint64_t v)
{
	char b[32];

	cfg_fmt_size(b, sizeof(b), v);
	fprintf(f, "%s = %s\n", key, b);
}

static void dump_pct(FILE *f, const char *key, double v)
{
	fprintf(f, "%s = %.10g%%\n", key, v);
}

CFG_DUMPER(cfg_dump_size)
{
	(void)k, (void)base;
	dump_bytes(f, key, *(const uint64_t *)field);
}

/* UINT64_MAX (no limit) is the empty value. */
CFG_DUMPER(cfg_dump_optsize)
{
	uint64_t v = *(const uint64_t *)field;

	(void)k, (void)base;
	if (v == UINT64_MAX)
		fprintf(f, "%s =\n", key);
	else
		dump_bytes(f, key, v);
}

CFG_DUMPER(cfg_dump_sizepct)
{
	const struct td_size_or_pct *v = field;

	(void)k, (void)base;
	if (v->is_pct)
		dump_pct(f, key, v->pct);
	else
		dump_bytes(f, key, v->bytes);
}

CFG_DUMPER(cfg_dump_duration)
{
	char b[32];

	(void)k, (void)base;
	cfg_fmt_duration(b, sizeof(b), *(const int64_t *)field);
	fprintf(f, "%s = %s\n", key, b);
}

/* Watermarks come in pairs: both, or one comment saying there are none. */
CFG_DUMPER(cfg_dump_watermarks)
{
	const struct td_policy_conf *p = base;

	(void)k, (void)key, (void)field;
	if (p->has_watermarks) {
		dump_pct(f, "high_watermark", p->high_watermark_pct);
		dump_pct(f, "low_watermark", p->low_watermark_pct);
	} else {
		fprintf(f, "; no high_watermark / low_watermark\n");
	}
}

CFG_DUMPER(cfg_dump_bool)
{
	(void)k, (void)base;
	fprintf(f, "%s = %s\n", key, *(const bool *)field ? "yes" : "no");
}

CFG_DUMPER(cfg_dump_uint)
{
	(void)k, (void)base;
	fprintf(f, "%s = %u\n", key, *(const unsigned *)field);
}

CFG_DUMPER(cfg_dump_u64)
{
	(void)k, (void)base;
	fprintf(f, "%s = %" PRIu64 "\n", key, *(const uint64_t *)field);
}

CFG_DUMPER(cfg_dump_enum)
{
	const char *name = "?";

	(void)base;
	for (const struct cfg_enumval *e = k->ev; e->name; e++)
		if (e->value == *(const int *)field)
			name = e->name;
	fprintf(f, "%s = %s\n", key, name);
}

CFG_DUMPER(cfg_dump_list)
{
	const struct td_strlist *l = field;

	(void)k, (void)base;
	fprintf(f, "%s =", key);
	for (size_t i = 0; i < l->n; i++)
		fprintf(f, " %s", l->v[i]);
	fputc('\n', f);
}

/* The numbers (what the config means), then the names as a comment (what a reader wants). */
static void dump_ids(FILE *f, const char *key, const uint32_t *ids, size_t n, bool group)
{
	char buf[16384];

	fprintf(f, "%s =", key);
	for (size_t i = 0; i < n; i++)
		fprintf(f, " %" PRIu32, ids[i]);
	if (n)
		fprintf(f, " ;");
	for (size_t i = 0; i < n; i++) {
		const char *name = NULL;
		if (group) {
			struct group gr, *res = NULL;
			if (getgrgid_r((gid_t)ids[i], &gr, buf, sizeof(buf), &res) == 0 && res)
				name = res->gr_name;
		} else {
			struct passwd pw, *res = NULL;
			if (getpwuid_r((uid_t)ids[i], &pw, buf, sizeof(buf), &res) == 0 && res)
				name = res->pw_name;
		}
		fprintf(f, " %s", name ? name : "?");
	}
	fputc('\n', f);
}

CFG_DUMPER(cfg_dump_owners)
{
	dump_ids(f, key, *(uint32_t *const *)field, *(const size_t *)((const char *)base + k->off2),
	         false);
}

CFG_DUMPER(cfg_dump_groups)
{
	dump_ids(f, key, *(uint32_t *const *)field, *(const size_t *)((const char *)base + k->off2),
	         true);
}

CFG_DUMPER(cfg_dump_schedule)
{
	char b[64];

	(void)k, (void)base;
	cfg_fmt_schedule(b, sizeof(b), field);
	fprintf(f, "%s = %s\n", key, b);
}

/* ---- sections -------------------------------------------------------------------------------- */

/* Writes every row of `keys` but those flagged `skip` (keys of the other target type). */
static void dump_section(FILE *f, const struct cfg_keydef *keys, const void *base, unsigned skip)
{
	char kn[64];

	for (const struct cfg_keydef *k = keys; k->field; k++) {
		if ((k->flags & skip) || !k->kind->dump)
			continue;
		cfg_key_name(kn, sizeof(kn), k);
		k->kind->dump(f, k, kn, base, (const char *)base + k->off);
	}
}

int td_config_dump(const struct td_config *c, FILE *f)
{
	fprintf(f, "# effective configuration of %s (defaults filled in, secrets redacted)\n",
	        c->path);
	fprintf(f, "[tierd]\n");
	dump_section(f, cfg_tierd_keys, c, 0);
	for (size_t i = 0; i < c->n_targets; i++) {
		const struct td_target_conf *t = &c->targets[i];
		fprintf(f, "\n[target \"%s\"]\n", t->name);
		dump_section(f, cfg_target_keys, t, t->type == TD_TARGET_DIR ? F_S3 : F_DIR);
	}
	for (size_t i = 0; i < c->n_policies; i++) {
		fprintf(f, "\n[policy \"%s\"]\n", c->policies[i].name);
		dump_section(f, cfg_policy_keys, &c->policies[i], 0);
	}
	if (fflush(f) != 0 || ferror(f))
		return -EIO;
	return 0;
}
