/*
 * plan — see plan.h. Top directories: every directory is listed by exactly one
 * worker, which reports its eligible bytes once through on_dir; those reports
 * go into a bounded top-N array under a mutex, so memory is flat however many
 * directories there are.
 */
#include "plan.h"
#include "ctl.h"
#include "util.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct plan_ctx {
	struct td_plan *p;
	const char *const *roots;
	pthread_mutex_t lock;
	const struct td_plan_opts *o;
	bool oom;
};

static char *join(const char *root, const char *path, size_t len, size_t *out_len)
{
	size_t rl = strlen(root), total = rl + (len ? 1 + len : 0);
	char *s = malloc(total + 1);

	if (!s)
		return NULL;
	memcpy(s, root, rl);
	if (len) {
		s[rl] = '/';
		memcpy(s + rl + 1, path, len);
	}
	s[total] = '\0';
	*out_len = total;
	return s;
}

static void on_dir(void *ctx, size_t root, const char *path, size_t len, uint64_t files,
                   uint64_t bytes)
{
	struct plan_ctx *c = ctx;
	struct td_plan *p = c->p;
	size_t slot;

	pthread_mutex_lock(&c->lock);
	if (p->n_top < TD_PLAN_TOP_DIRS) {
		slot = p->n_top++;
	} else {
		slot = 0;
		for (size_t i = 1; i < p->n_top; i++)
			if (p->top[i].bytes < p->top[slot].bytes)
				slot = i;
		if (p->top[slot].bytes >= bytes)
			goto out;
		free(p->top[slot].path);
	}
	{
		size_t total;
		char *s = join(c->roots[root], path, len, &total);
		if (!s) {
			c->oom = true;
			p->top[slot] = p->top[--p->n_top];
			goto out;
		}
		p->top[slot] =
		    (struct td_plan_dir){ .path = s, .len = total, .files = files, .bytes = bytes };
	}
out:
	pthread_mutex_unlock(&c->lock);
}

static void on_candidate(void *ctx, const struct td_scan_entry *e)
{
	struct plan_ctx *c = ctx;
	struct td_plan *p = c->p;

	pthread_mutex_lock(&c->lock);
	if (p->n_files >= c->o->list_max) {
		p->files_truncated = true;
		goto out;
	}
	if (!p->files) {
		p->files = calloc(c->o->list_max, sizeof(*p->files));
		if (!p->files) {
			c->oom = true;
			goto out;
		}
	}
	struct td_plan_file *f = &p->files[p->n_files];
	f->path = join(c->roots[e->root], e->path, e->path_len, &f->len);
	if (!f->path) {
		c->oom = true;
		goto out;
	}
	f->size = e->meta->size;
	f->age_ns = e->age_ns;
	p->n_files++;
out:
	pthread_mutex_unlock(&c->lock);
}

static void on_root_error(void *ctx, size_t root, int err)
{
	struct plan_ctx *c = ctx;
	struct td_plan *p = c->p;
	struct td_plan_root_error *n = realloc(p->root_errors, (p->n_root_errors + 1) * sizeof(*n));

	if (!n) {
		c->oom = true;
		return;
	}
	p->root_errors = n;
	n[p->n_root_errors].root = strdup(c->roots[root]);
	n[p->n_root_errors].err = err;
	p->n_root_errors++;
}

static void on_progress(void *ctx, uint64_t files, uint64_t dirs, int64_t elapsed_ns)
{
	struct plan_ctx *c = ctx;

	if (c->o->on_progress)
		c->o->on_progress(c->o->ctx, files, dirs, elapsed_ns);
}

static int cmp_dir(const void *a, const void *b)
{
	const struct td_plan_dir *x = a, *y = b;
	return x->bytes < y->bytes ? 1 : x->bytes > y->bytes ? -1 : 0;
}

int td_plan_run(struct td_plan **out, const struct td_policy_conf *pc, const struct td_plan_opts *o,
                int64_t now_ns)
{
	struct td_policy *pol = NULL;
	struct td_plan *p = calloc(1, sizeof(*p));
	struct plan_ctx c = { .p = p, .o = o, .roots = (const char *const *)pc->paths.v };
	struct td_scan_opts so = {
		.state_dir = o->state_dir,
		.cache_dir = o->cache_dir,
		.run_dir = o->run_dir,
		.threads = o->threads,
		.fs_override = o->fs_override,
		.fs_total_bytes = o->fs_total_bytes,
		.fs_used_bytes = o->fs_used_bytes,
		.ctx = &c,
		.on_dir = on_dir,
		.on_candidate = o->list_max ? on_candidate : NULL,
		.on_root_error = on_root_error,
		.on_progress = on_progress,
	};
	int r;

	if (!p)
		return -ENOMEM;
	pthread_mutex_init(&c.lock, NULL);
	p->conf = pc;
	p->name = strdup(pc->name ? pc->name : "");
	r = td_policy_new(&pol, pc, now_ns);
	if (r < 0 || !p->name) {
		r = r < 0 ? r : -ENOMEM;
		goto out;
	}
	so.policy = pol;
	r = td_scan_run(&p->st, &so);
	if (r < 0 && p->st.failed_roots > 0 && p->n_root_errors == p->st.failed_roots)
		r = 0; /* recorded per root */
	if (r == 0 && c.oom)
		r = -ENOMEM;
	qsort(p->top, p->n_top, sizeof(p->top[0]), cmp_dir);
out:
	td_policy_free(pol);
	pthread_mutex_destroy(&c.lock);
	if (r < 0) {
		td_plan_free(p);
		return r;
	}
	*out = p;
	return 0;
}

void td_plan_free(struct td_plan *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->n_top; i++)
		free(p->top[i].path);
	for (size_t i = 0; i < p->n_root_errors; i++)
		free(p->root_errors[i].root);
	for (size_t i = 0; i < p->n_files; i++)
		free(p->files[i].path);
	free(p->files);
	free(p->root_errors);
	free(p->name);
	free(p);
}

uint64_t td_plan_projected_used(const struct td_plan *p)
{
	uint64_t used = p->st.fs_used_bytes, moved = p->st.candidate_bytes;

	return moved > used ? 0 : used - moved;
}

static void set_int(json_t *o, const char *key, uint64_t v)
{
	json_object_set_new(o, key, json_integer((json_int_t)v));
}

static void set_counts(json_t *o, const struct td_scan_stats *st)
{
	set_int(o, "scanned_files", st->scanned_files);
	set_int(o, "scanned_bytes", st->scanned_bytes);
	set_int(o, "candidate_files", st->candidate_files);
	set_int(o, "candidate_bytes", st->candidate_bytes);
	set_int(o, "eligible_files", st->eligible_files);
	set_int(o, "eligible_bytes", st->eligible_bytes);
	set_int(o, "scanned_dirs", st->dirs);
	set_int(o, "links_seen", st->links_seen);
}

static int top_dirs_json(json_t *top, const struct td_plan *p)
{
	for (size_t i = 0; i < p->n_top; i++) {
		json_t *d = json_object();
		if (!d)
			return -ENOMEM;
		td_ctl_set_path(d, "path", p->top[i].path, p->top[i].len);
		set_int(d, "bytes", p->top[i].bytes);
		set_int(d, "files", p->top[i].files);
		json_array_append_new(top, d);
	}
	return 0;
}

static void filesystem_json(json_t *fs, const struct td_plan *p)
{
	const struct td_scan_stats *st = &p->st;

	set_int(fs, "total_bytes", st->fs_total_bytes);
	set_int(fs, "used_bytes", st->fs_used_bytes);
	set_int(fs, "projected_used_bytes", td_plan_projected_used(p));
	json_object_set_new(
	    fs, "projected_used_pct",
	    json_real(st->fs_total_bytes
	                  ? 100.0 * (double)td_plan_projected_used(p) / (double)st->fs_total_bytes
	                  : 0.0));
}

static int errors_json(json_t *errs, const struct td_plan *p)
{
	for (size_t i = 0; i < p->n_root_errors; i++) {
		json_t *e = json_object();
		if (!e)
			return -ENOMEM;
		td_ctl_set_path(e, "root", p->root_errors[i].root, strlen(p->root_errors[i].root));
		json_object_set_new(e, "error", json_string(strerror(-p->root_errors[i].err)));
		json_array_append_new(errs, e);
	}
	return 0;
}

/* "candidates" and "candidates_truncated", when the plan kept a list. */
static int candidates_json(json_t *o, const struct td_plan *p)
{
	json_t *l;

	if (!p->files && !p->files_truncated)
		return 0;
	l = json_array();
	if (!l)
		return -ENOMEM;
	for (size_t i = 0; i < p->n_files; i++) {
		json_t *f = json_object();
		if (!f || td_ctl_set_path(f, "path", p->files[i].path, p->files[i].len) < 0) {
			json_decref(f);
			json_decref(l);
			return -ENOMEM;
		}
		set_int(f, "size", p->files[i].size);
		json_array_append_new(l, f);
	}
	json_object_set_new(o, "candidates", l);
	json_object_set_new(o, "candidates_truncated", json_boolean(p->files_truncated));
	return 0;
}

json_t *td_plan_json(const struct td_plan *p)
{
	const struct td_scan_stats *st = &p->st;
	json_t *o = json_object(), *hist = json_object(), *top = json_array(),
	       *skipped = json_object(), *fs = json_object(), *errs = json_array();
	double secs = (double)st->elapsed_ns / 1e9;

	if (!o || !hist || !top || !skipped || !fs || !errs)
		goto fail;
	json_object_set_new(o, "name", json_string(p->name));
	set_counts(o, st);
	for (int b = 0; b < TD_AGE__MAX; b++)
		set_int(hist, td_age_bucket_name(b), st->age_bytes[b]);
	json_object_set_new(o, "age_histogram", hist);
	hist = NULL;
	if (top_dirs_json(top, p) < 0)
		goto fail;
	json_object_set_new(o, "top_dirs", top);
	top = NULL;
	for (int r = TD_SKIP_NONE + 1; r < TD_SKIP__MAX; r++)
		set_int(skipped, td_skip_name(r), st->skipped[r]);
	json_object_set_new(o, "skipped", skipped);
	skipped = NULL;
	filesystem_json(fs, p);
	json_object_set_new(o, "filesystem", fs);
	fs = NULL;
	json_object_set_new(o, "watermark_active", json_boolean(st->watermark_active));
	json_object_set_new(o, "elapsed_s", json_real(secs));
	json_object_set_new(o, "files_per_s",
	                    json_real(secs > 0 ? (double)st->scanned_files / secs : 0.0));
	if (errors_json(errs, p) < 0)
		goto fail;
	json_object_set_new(o, "errors", errs);
	errs = NULL;
	if (candidates_json(o, p) < 0)
		goto fail;
	return o;
fail:
	json_decref(o);
	json_decref(hist);
	json_decref(top);
	json_decref(skipped);
	json_decref(fs);
	json_decref(errs);
	return NULL;
}

const char *td_human_bytes(char *buf, size_t n, uint64_t bytes)
{
	static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
	double v = (double)bytes;
	size_t u = 0;

	while (v >= 1024.0 && u + 1 < TD_ARRAY_SIZE(units)) {
		v /= 1024.0;
		u++;
	}
	if (u == 0)
		snprintf(buf, n, "%" PRIu64 " B", bytes);
	else
		snprintf(buf, n, "%.1f %s", v, units[u]);
	return buf;
}

static void print_path(FILE *f, const char *path, size_t len)
{
	char *e = td_escape(path, len);

	fputs(e ? e : "?", f);
	free(e);
}

void td_plan_print(const struct td_plan *p, FILE *f)
{
	const struct td_scan_stats *st = &p->st;
	const struct td_policy_conf *c = p->conf;
	static const char *const age_by[] = { "atime", "mtime", "ctime", "newest" };
	double secs = (double)st->elapsed_ns / 1e9;
	char b1[32], b2[32];

	fprintf(f, "policy ");
	print_path(f, p->name, strlen(p->name));
	fprintf(f, " (age by %s, min_age %" PRId64 "d, min_size %s)\n",
	        (unsigned)c->age_by < 4 ? age_by[c->age_by] : "?", c->min_age_s / 86400,
	        td_human_bytes(b1, sizeof(b1), c->min_size_bytes));
	fprintf(f, "  roots:");
	for (size_t i = 0; i < c->paths.n; i++) {
		fputc(' ', f);
		print_path(f, c->paths.v[i], strlen(c->paths.v[i]));
	}
	fputc('\n', f);
	for (size_t i = 0; i < p->n_root_errors; i++) {
		fprintf(f, "  error: ");
		print_path(f, p->root_errors[i].root, strlen(p->root_errors[i].root));
		fprintf(f, ": %s\n", strerror(-p->root_errors[i].err));
	}
	fprintf(f,
	        "  scanned:     %" PRIu64 " files, %s in %" PRIu64 " dirs, %.2f s (%.0f files/s)\n",
	        st->scanned_files, td_human_bytes(b1, sizeof(b1), st->scanned_bytes), st->dirs,
	        secs, secs > 0 ? (double)st->scanned_files / secs : 0.0);
	fprintf(f, "  would move:  %" PRIu64 " files, %s", st->candidate_files,
	        td_human_bytes(b1, sizeof(b1), st->candidate_bytes));
	if (st->eligible_files != st->candidate_files)
		fprintf(f, " (of %" PRIu64 " eligible, %s)", st->eligible_files,
		        td_human_bytes(b2, sizeof(b2), st->eligible_bytes));
	fputc('\n', f);
	if (c->has_watermarks)
		fprintf(f, "  watermarks:  high %.0f%%, low %.0f%%: %s\n", c->high_watermark_pct,
		        c->low_watermark_pct,
		        st->watermark_active ? "above high, coldest first"
		                             : "below high, nothing to do");
	fprintf(f, "  age of scanned data:\n");
	for (int b = 0; b < TD_AGE__MAX; b++)
		fprintf(f, "    %-9s %12s\n", td_age_bucket_name(b),
		        td_human_bytes(b1, sizeof(b1), st->age_bytes[b]));
	fprintf(f, "  top directories by cold bytes:\n");
	for (size_t i = 0; i < p->n_top; i++) {
		fprintf(f, "    %12s  ", td_human_bytes(b1, sizeof(b1), p->top[i].bytes));
		print_path(f, p->top[i].path, p->top[i].len);
		fputc('\n', f);
	}
	if (p->files) {
		fprintf(f, "  candidates%s:\n", p->files_truncated ? " (first ones)" : "");
		for (size_t i = 0; i < p->n_files; i++) {
			fprintf(f, "    %12s  ", td_human_bytes(b1, sizeof(b1), p->files[i].size));
			print_path(f, p->files[i].path, p->files[i].len);
			fputc('\n', f);
		}
	}
	if (st->fs_total_bytes) {
		uint64_t proj = td_plan_projected_used(p);
		fprintf(f, "  filesystem:  %s used of %s (%.1f%%), after the run %s (%.1f%%)\n",
		        td_human_bytes(b1, sizeof(b1), st->fs_used_bytes),
		        td_human_bytes(b2, sizeof(b2), st->fs_total_bytes),
		        100.0 * (double)st->fs_used_bytes / (double)st->fs_total_bytes,
		        td_human_bytes(b1, sizeof(b1), proj),
		        100.0 * (double)proj / (double)st->fs_total_bytes);
	}
	char skips[512];

	fprintf(f, "  skipped: %s\n", td_plan_skips_format(skips, sizeof(skips), st));
}

const char *td_plan_skips_format(char *buf, size_t n, const struct td_scan_stats *st)
{
	size_t off = 0;

	if (n)
		buf[0] = '\0';
	for (int r = TD_SKIP_NONE + 1; r < TD_SKIP__MAX && off < n; r++) {
		int w;

		if (!st->skipped[r])
			continue;
		w = snprintf(buf + off, n - off, "%s%s %" PRIu64, off ? ", " : "", td_skip_name(r),
		             st->skipped[r]);
		if (w < 0)
			break;
		off += (size_t)w;
	}
	if (n && !buf[0])
		snprintf(buf, n, "none");
	return buf;
}
