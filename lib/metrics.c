/* metrics — see metrics.h. */
#include "metrics.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define MAX_LABELS 3

/* Upper bounds of the latency histograms' buckets, in seconds (+Inf last). */
static const double bounds[] = { 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
	                         1,     2.5,  5,     10,   30,  60,   120 };
#define N_BOUNDS (sizeof(bounds) / sizeof(bounds[0]))

struct series {
	char *label[MAX_LABELS];
	uint64_t value;            /* counters */
	uint64_t bucket[N_BOUNDS]; /* histograms: observations <= bounds[i] (not cumulative) */
	uint64_t count;
	double sum;
};

struct family {
	const char *name, *help;
	bool histogram;
	const char *label[MAX_LABELS];
	struct series *s;
	unsigned n, cap;
};

static struct family families[TD_M__COUNT] = {
	[TD_M_TIERED_FILES] = { "tierd_tiered_files_total", "Files replaced by links into the "
	                                                    "namespace since tierd started." },
	[TD_M_TIERED_BYTES] = { "tierd_tiered_bytes_total",
	                        "Bytes of the files replaced by links since tierd started." },
	[TD_M_RECALLED_FILES] = { "tierd_recalled_files_total",
	                          "Files brought back to primary storage since tierd started." },
	[TD_M_RECALLED_BYTES] = { "tierd_recalled_bytes_total",
	                          "Bytes of the files brought back to primary storage." },
	[TD_M_FETCHED_BYTES] = { "tierd_fetched_bytes_total",
	                         "Bytes read from targets for cold files, by the name of the "
	                         "process whose open asked for them (recall by application).",
	                         false,
	                         { "process" } },
	[TD_M_COLD_OPENS] = { "tierd_cold_opens_total",
	                      "Opens through the remote view, by where their bytes came from: "
	                      "a cache copy hydrated earlier, or the target.",
	                      false,
	                      { "served" } },
	[TD_M_HYDRATIONS] = { "tierd_hydrations_total",
	                      "Cache copies made from a target, by result.",
	                      false,
	                      { "result" } },
	[TD_M_S3_REQUESTS] = { "tierd_s3_requests_total",
	                       "Requests to S3 targets, by target, operation and HTTP status "
	                       "code (0: no answer).",
	                       false,
	                       { "target", "operation", "code" } },
	[TD_M_ERRORS] = { "tierd_errors_total",
	                  "Errors tierd logged, by kind.",
	                  false,
	                  { "kind" } },
	[TD_M_S3_FIRST_BYTE] = { "tierd_s3_first_byte_seconds",
	                         "Time from sending an S3 request to its first response byte.",
	                         true,
	                         { "target", "operation" } },
	[TD_M_S3_DURATION] = { "tierd_s3_request_duration_seconds",
	                       "Time from sending an S3 request to its last response byte.",
	                       true,
	                       { "target", "operation" } },
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static unsigned n_labels(const struct family *f)
{
	unsigned n = 0;

	while (n < MAX_LABELS && f->label[n])
		n++;
	return n;
}

static bool same(const struct series *s, const char *const *l, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		if (strcmp(s->label[i], l[i]) != 0)
			return false;
	return true;
}

/* The series of f with labels l, made if new; past the cap, the series whose
 * every label is "other". NULL when out of memory. Under lock. */
static struct series *series_of(struct family *f, const char *const *in)
{
	static const char *const other[MAX_LABELS] = { "other", "other", "other" };
	unsigned nl = n_labels(f);
	const char *l[MAX_LABELS];
	struct series *s;

	for (unsigned i = 0; i < nl; i++)
		l[i] = in[i] ? in[i] : "";
	for (unsigned i = 0; i < f->n; i++)
		if (same(&f->s[i], l, nl))
			return &f->s[i];
	if (f->n + 1 >= TD_METRICS_MAX_SERIES) { /* keep the last slot for "other" */
		for (unsigned i = 0; i < f->n; i++)
			if (same(&f->s[i], other, nl))
				return &f->s[i];
		memcpy(l, other, sizeof(l));
	}
	if (f->n == f->cap) {
		unsigned cap = f->cap ? f->cap * 2 : 8;
		struct series *ns = realloc(f->s, cap * sizeof(*ns));

		if (!ns)
			return NULL;
		f->s = ns;
		f->cap = cap;
	}
	s = &f->s[f->n];
	memset(s, 0, sizeof(*s));
	for (unsigned i = 0; i < nl; i++) {
		s->label[i] = strdup(l[i]);
		if (!s->label[i]) {
			while (i--)
				free(s->label[i]);
			return NULL;
		}
	}
	f->n++;
	return s;
}

void td_metrics_add(enum td_metric m, uint64_t v, const char *l1, const char *l2, const char *l3)
{
	const char *l[MAX_LABELS] = { l1, l2, l3 };
	struct series *s;

	if (m < 0 || m >= TD_M__COUNT || families[m].histogram)
		return;
	pthread_mutex_lock(&lock);
	s = series_of(&families[m], l);
	if (s)
		s->value += v;
	pthread_mutex_unlock(&lock);
}

void td_metrics_observe(enum td_metric m, double seconds, const char *l1, const char *l2)
{
	const char *l[MAX_LABELS] = { l1, l2, NULL };
	struct series *s;

	if (m < 0 || m >= TD_M__COUNT || !families[m].histogram || !(seconds >= 0))
		return;
	pthread_mutex_lock(&lock);
	s = series_of(&families[m], l);
	if (s) {
		for (size_t i = 0; i < N_BOUNDS; i++)
			if (seconds <= bounds[i]) {
				s->bucket[i]++;
				break;
			}
		s->count++;
		s->sum += seconds;
	}
	pthread_mutex_unlock(&lock);
}

/* A label value, escaped as the text format wants: \\, \" and \n. */
static void put_value(FILE *f, const char *v)
{
	for (; *v; v++) {
		if (*v == '\\' || *v == '"')
			fprintf(f, "\\%c", *v);
		else if (*v == '\n')
			fputs("\\n", f);
		else
			fputc(*v, f);
	}
}

/* {k="v",...} from parallel name/value arrays, plus one extra pair (le). */
static void put_labels(FILE *f, const char *const *k, char *const *v, unsigned n, const char *xk,
                       const char *xv)
{
	if (!n && !xk)
		return;
	fputc('{', f);
	for (unsigned i = 0; i < n; i++) {
		fprintf(f, "%s%s=\"", i ? "," : "", k[i]);
		put_value(f, v[i]);
		fputc('"', f);
	}
	if (xk)
		fprintf(f, "%s%s=\"%s\"", n ? "," : "", xk, xv);
	fputc('}', f);
}

void td_metrics_family(FILE *f, const char *name, const char *type, const char *help)
{
	fprintf(f, "# HELP %s ", name);
	for (const char *p = help; *p; p++) { /* HELP escapes \\ and \n only */
		if (*p == '\\')
			fputs("\\\\", f);
		else if (*p == '\n')
			fputs("\\n", f);
		else
			fputc(*p, f);
	}
	fprintf(f, "\n# TYPE %s %s\n", name, type);
}

static void put_number(FILE *f, double v)
{
	if (isnan(v))
		fputs("NaN", f);
	else if (isinf(v))
		fputs(v > 0 ? "+Inf" : "-Inf", f);
	else if (v == (double)(int64_t)v && fabs(v) < 9e15)
		fprintf(f, "%lld", (long long)v);
	else
		fprintf(f, "%.17g", v);
}

void td_metrics_sample(FILE *f, const char *name, double value, const char *const *labels)
{
	fputs(name, f);
	if (labels && labels[0]) {
		fputc('{', f);
		for (unsigned i = 0; labels[i] && labels[i + 1]; i += 2) {
			fprintf(f, "%s%s=\"", i ? "," : "", labels[i]);
			put_value(f, labels[i + 1]);
			fputc('"', f);
		}
		fputc('}', f);
	}
	fputc(' ', f);
	put_number(f, value);
	fputc('\n', f);
}

static void write_histogram(FILE *f, const struct family *fam, const struct series *s)
{
	unsigned nl = n_labels(fam);
	uint64_t cum = 0;
	char le[32];

	for (size_t b = 0; b < N_BOUNDS; b++) {
		cum += s->bucket[b];
		snprintf(le, sizeof(le), "%g", bounds[b]);
		fprintf(f, "%s_bucket", fam->name);
		put_labels(f, fam->label, s->label, nl, "le", le);
		fprintf(f, " %llu\n", (unsigned long long)cum);
	}
	fprintf(f, "%s_bucket", fam->name);
	put_labels(f, fam->label, s->label, nl, "le", "+Inf");
	fprintf(f, " %llu\n%s_sum", (unsigned long long)s->count, fam->name);
	put_labels(f, fam->label, s->label, nl, NULL, NULL);
	fputc(' ', f);
	put_number(f, s->sum);
	fprintf(f, "\n%s_count", fam->name);
	put_labels(f, fam->label, s->label, nl, NULL, NULL);
	fprintf(f, " %llu\n", (unsigned long long)s->count);
}

int td_metrics_write(FILE *f)
{
	pthread_mutex_lock(&lock);
	for (int m = 0; m < TD_M__COUNT; m++) {
		const struct family *fam = &families[m];
		unsigned nl = n_labels(fam);

		td_metrics_family(f, fam->name, fam->histogram ? "histogram" : "counter",
		                  fam->help);
		if (!nl && !fam->n) { /* an unlabelled counter is 0 before its first event */
			fprintf(f, "%s 0\n", fam->name);
			continue;
		}
		for (unsigned i = 0; i < fam->n; i++) {
			const struct series *s = &fam->s[i];

			if (fam->histogram) {
				write_histogram(f, fam, s);
				continue;
			}
			fputs(fam->name, f);
			put_labels(f, fam->label, s->label, nl, NULL, NULL);
			fprintf(f, " %llu\n", (unsigned long long)s->value);
		}
	}
	pthread_mutex_unlock(&lock);
	return ferror(f) ? -EIO : 0;
}

void td_metrics_reset(void)
{
	pthread_mutex_lock(&lock);
	for (int m = 0; m < TD_M__COUNT; m++) {
		struct family *fam = &families[m];

		for (unsigned i = 0; i < fam->n; i++)
			for (unsigned k = 0; k < MAX_LABELS; k++)
				free(fam->s[i].label[k]);
		free(fam->s);
		fam->s = NULL;
		fam->n = fam->cap = 0;
	}
	pthread_mutex_unlock(&lock);
}
