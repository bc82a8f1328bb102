/*
 * config — tierd.conf into validated, typed structs. See config.h.
 *
 * This file is the module's front door: td_config_load() runs the steps (read
 * the file, the INI reader with the key table, the whole-file checks), and
 * td_config_load_report() adds the credentials, so that every program loads
 * its configuration the same way and gets every problem, with file:line, in
 * one list it prints or logs itself. The other files are listed in
 * config_int.h. Also here: the error list, freeing, lookups by name.
 *
 * Any thread: no globals, getpwnam_r/getgrnam_r only.
 */
#include "config_int.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* ---- the error list -------------------------------------------------------------------------- */

int cfg_errors_append(struct td_config_errors *errs, const char *file, unsigned line,
                      const char *key, char *msg)
{
	struct td_config_error *v;

	v = realloc(errs->v, (errs->n + 1) * sizeof(*v));
	if (!v)
		goto fail;
	errs->v = v;
	v[errs->n] = (struct td_config_error){ .line = line, .msg = msg };
	v[errs->n].file = strdup(file ? file : "");
	v[errs->n].key = key ? strdup(key) : NULL;
	if (!v[errs->n].file || (key && !v[errs->n].key)) {
		free(v[errs->n].file);
		free(v[errs->n].key);
		goto fail;
	}
	errs->n++;
	return 0;
fail:
	free(msg);
	return -ENOMEM;
}

void cfg_add_error(struct cfg_ctx *x, unsigned line, const char *key, const char *fmt, ...)
{
	va_list ap;
	char *msg;

	if (x->too_many)
		return;
	if (x->errs->n - x->first_err >= TD_CONFIG_MAX_ERRORS) {
		x->too_many = true;
		msg = strdup("too many errors; stopping here");
		if (!msg || cfg_errors_append(x->errs, x->file, line, NULL, msg) < 0)
			x->oom = true;
		return;
	}
	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0) {
		va_end(ap);
		x->oom = true;
		return;
	}
	va_end(ap);
	if (cfg_errors_append(x->errs, x->file, line, key, msg) < 0)
		x->oom = true;
}

char *cfg_xstrdup(struct cfg_ctx *x, const char *s)
{
	char *d = strdup(s);

	if (!d)
		x->oom = true;
	return d;
}

void cfg_strlist_free(struct td_strlist *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

int cfg_strlist_push(struct td_strlist *l, const char *s)
{
	char **v, *d;

	if (l->n >= TD_CONFIG_MAX_LIST)
		return -E2BIG;
	d = strdup(s);
	if (!d)
		return -ENOMEM;
	v = realloc(l->v, (l->n + 1) * sizeof(*v));
	if (!v) {
		free(d);
		return -ENOMEM;
	}
	l->v = v;
	l->v[l->n++] = d;
	return 0;
}

/* ---- loading --------------------------------------------------------------------------------- */

/* Stable sort of the errors this load added, by line, so the output reads top to bottom. */
static void sort_errors(struct td_config_errors *errs, size_t from)
{
	for (size_t i = from + 1; i < errs->n; i++) {
		struct td_config_error e = errs->v[i];
		size_t j = i;
		while (j > from && errs->v[j - 1].line > e.line) {
			errs->v[j] = errs->v[j - 1];
			j--;
		}
		errs->v[j] = e;
	}
}

int td_config_load(struct td_config **out, const char *path, struct td_config_errors *errs)
{
	struct td_config_errors local = { 0 };
	struct cfg_ctx x = { .errs = errs ? errs : &local, .file = path };
	size_t first_err = x.errs->n;
	char *buf = NULL;
	int r;

	x.first_err = first_err;
	x.c = calloc(1, sizeof(*x.c));
	if (!x.c) {
		r = -ENOMEM;
		goto out;
	}
	x.c->path = strdup(path);
	if (!x.c->path || cfg_tierd_defaults(x.c) < 0) {
		r = -ENOMEM;
		goto out;
	}
	r = cfg_read_file(&x, path, &buf);
	if (r < 0)
		goto out;
	r = cfg_parse_ini(&x);
	if (r < 0)
		goto out;
	cfg_check_file(&x);
	if (x.oom) {
		r = -ENOMEM;
		goto out;
	}
	if (x.errs->n > first_err) {
		r = -EINVAL;
		goto out;
	}
	*out = x.c;
	x.c = NULL;
	r = 0;
out:
	if (x.errs->n > first_err)
		sort_errors(x.errs, first_err);
	td_config_free(x.c);
	free(x.target_keys);
	free(x.policy_keys);
	free(buf);
	td_config_errors_clear(&local);
	return r;
}

/* The credentials step of td_config_load_report(). */
static int load_credentials(struct td_config *c, const struct td_config_load_opts *o,
                            struct td_config_report *rep)
{
	int r;

	if (!o || o->creds == TD_CONFIG_CREDS_NONE)
		return 0;
	r = td_config_apply_env_credentials(c, o->access_key, o->secret_key);
	if (r < 0)
		return r;
	if (o->creds == TD_CONFIG_CREDS_WARN) {
		r = cfg_check_credentials(c, &rep->warnings, true);
		return r == -ENOMEM ? r : 0;
	}
	if (o->creds == TD_CONFIG_CREDS_REQUIRE)
		return cfg_check_credentials(c, &rep->errors, false);
	return 0;
}

int td_config_load_report(struct td_config **out, const char *path,
                          const struct td_config_load_opts *o, struct td_config_report *rep)
{
	struct td_config *c = NULL;
	size_t first_err = rep->errors.n;
	char *msg;
	int r;

	r = td_config_load(&c, path, &rep->errors);
	if (r == 0)
		r = load_credentials(c, o, rep);
	if (r == 0) {
		*out = c;
		return 0;
	}
	td_config_free(c);
	/* Only running out of memory fails without a message: give it one. */
	if (rep->errors.n == first_err && (msg = strdup(strerror(-r))))
		(void)cfg_errors_append(&rep->errors, path, 0, NULL, msg);
	return r;
}

void td_config_report_clear(struct td_config_report *rep)
{
	if (!rep)
		return;
	td_config_errors_clear(&rep->errors);
	td_config_errors_clear(&rep->warnings);
}

/* ---- freeing, printing, lookups -------------------------------------------------------------- */

void td_config_free(struct td_config *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->n_targets; i++) {
		struct td_target_conf *t = &c->targets[i];
		free(t->name);
		free(t->endpoint);
		free(t->region);
		free(t->bucket);
		free(t->prefix);
		free(t->credentials_file);
		cfg_free_secret(t->access_key);
		cfg_free_secret(t->secret_key);
		free(t->storage_class);
		free(t->ca_file);
		free(t->connect_to);
		free(t->path);
	}
	free(c->targets);
	for (size_t i = 0; i < c->n_policies; i++) {
		struct td_policy_conf *p = &c->policies[i];
		free(p->name);
		cfg_strlist_free(&p->paths);
		free(p->target);
		cfg_strlist_free(&p->include);
		cfg_strlist_free(&p->exclude);
		free(p->owners);
		free(p->groups);
	}
	free(c->policies);
	free(c->path);
	free(c->state_dir);
	free(c->cache_dir);
	free(c->run_dir);
	free(c->admin_group);
	free(c->metrics_listen);
	cfg_strlist_free(&c->no_hydrate);
	cfg_strlist_free(&c->sighting_roots);
	free(c);
}

void td_config_errors_clear(struct td_config_errors *errs)
{
	if (!errs)
		return;
	for (size_t i = 0; i < errs->n; i++) {
		free(errs->v[i].file);
		free(errs->v[i].key);
		free(errs->v[i].msg);
	}
	free(errs->v);
	errs->v = NULL;
	errs->n = 0;
}

void td_config_errors_print(const struct td_config_errors *errs, FILE *f)
{
	for (size_t i = 0; i < errs->n; i++) {
		const struct td_config_error *e = &errs->v[i];
		if (e->line)
			fprintf(f, "%s:%u: ", e->file, e->line);
		else
			fprintf(f, "%s: ", e->file);
		if (e->key)
			fprintf(f, "%s: ", e->key);
		fprintf(f, "%s\n", e->msg);
	}
}

const struct td_target_conf *td_config_target(const struct td_config *c, const char *name)
{
	for (size_t i = 0; i < c->n_targets; i++)
		if (strcmp(c->targets[i].name, name) == 0)
			return &c->targets[i];
	return NULL;
}

const struct td_policy_conf *td_config_policy(const struct td_config *c, const char *name)
{
	for (size_t i = 0; i < c->n_policies; i++)
		if (strcmp(c->policies[i].name, name) == 0)
			return &c->policies[i];
	return NULL;
}
