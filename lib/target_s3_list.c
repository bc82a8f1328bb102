/*
 * target_s3_list — the s3 backend's listings: list (ListObjectsV2, page by
 * page with continuation tokens, each object handed to the caller's callback
 * in key order) and cleanup_stale (ListMultipartUploads under the prefix, then
 * an abort of each upload found, one at a time, page by page), and the delete
 * of every version of a key (ListObjectVersions, then DELETE ?versionId=).
 *
 * Threading: loop thread only. Ownership: a page's parsed document lives only
 * while its entries are handed out; the request keeps the continuation token
 * or markers, and the uploads of the current page, until the next page.
 */
#include "target_s3_int.h"
#include "s3_xml.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* GETs one page of a listing (a bucket request with a canonical query). */
static int listing_get(struct s3_req *r, const char *query, s3_done_fn done)
{
	struct s3_http *h = s3__http_new(r, "GET", NULL, query, done);
	int rc;

	if (!h)
		return -ENOMEM;
	h->sink = SINK_MEM;
	h->resp_max = LIST_BODY_MAX;
	rc = s3__http_submit(h);
	if (rc < 0)
		s3__http_destroy(h);
	return rc;
}

/* Takes a listing page's answer apart: the document when its root is
 * `root`; NULL once r has failed (the exchange's error, or -EPROTO "malformed
 * WHAT response"). Destroys h either way. */
static struct td_s3_xml *listing_doc(struct s3_http *h, int status, const struct td_target_error *e,
                                     const char *root, const char *what)
{
	struct s3_req *r = h->req;
	struct td_target_error pe;
	struct td_s3_xml *doc = NULL;

	if (status < 0) {
		s3__http_destroy(h);
		s3__req_fail(r, status, e);
		return NULL;
	}
	if (h->resp_len == 0 || td_s3_xml_parse(&doc, h->resp, h->resp_len) < 0 ||
	    strcmp(td_s3_xml_root(doc)->name, root) != 0) {
		s3__err_set(&pe, (int)h->status, NULL, h->amz_request_id, "malformed %s response",
		            what);
		td_s3_xml_free(doc);
		s3__http_destroy(h);
		s3__req_fail(r, -EPROTO, &pe);
		return NULL;
	}
	s3__http_destroy(h);
	return doc;
}

static int fail_proto(struct s3_req *r, const char *msg)
{
	struct td_target_error pe;

	s3__err_set(&pe, 0, NULL, NULL, "%s", msg);
	s3__req_fail(r, -EPROTO, &pe);
	return -EPROTO;
}

/* ---- list ---- */

static int list_page(struct s3_req *r);
static void on_list(struct s3_http *h, int status, const struct td_target_error *e);

/* One <Contents> entry into info; -EPROTO when it is malformed. */
static int list_entry(struct s3_req *r, const struct td_s3_xml_node *c, struct td_object_info *info)
{
	const char *key = td_s3_xml_child_text(c, "Key");
	const char *size = td_s3_xml_child_text(c, "Size");
	const char *etag = td_s3_xml_child_text(c, "ETag");
	const char *lm = td_s3_xml_child_text(c, "LastModified");
	char *end;

	if (!key || strncmp(key, r->t->prefix, r->strip) != 0 ||
	    strlen(key) - r->strip > TD_TARGET_KEY_MAX || !size)
		return -EPROTO;
	scpy(info->key, sizeof(info->key), key + r->strip);
	info->size_bytes = strtoull(size, &end, 10);
	if (etag)
		s3__copy_trim(info->etag, sizeof(info->etag), etag, strlen(etag));
	if (lm) {
		/* ISO 8601 "2026-11-21T22:03:04.000Z" */
		struct tm tmv;

		memset(&tmv, 0, sizeof(tmv));
		if (strptime(lm, "%Y-%m-%dT%H:%M:%S", &tmv))
			info->mtime_s = (int64_t)timegm(&tmv);
	}
	return 0;
}

/* Hands a page's objects to the caller. Returns 1 when the caller stopped the
 * listing, 0 to go on, -1 when r has ended meanwhile (failed, cancelled from
 * the callback, or the target closing). */
static int list_hand_out(struct s3_req *r, const struct td_s3_xml_node *root)
{
	for (const struct td_s3_xml_node *c = root->child; c; c = c->next) {
		struct td_object_info *info;
		bool stop;

		if (strcmp(c->name, "Contents") != 0)
			continue;
		info = calloc(1, sizeof(*info));
		if (!info) {
			s3__req_fail(r, -ENOMEM, NULL);
			return -1;
		}
		if (list_entry(r, c, info) < 0) {
			free(info);
			fail_proto(r, "malformed entry in a ListObjectsV2 response");
			return -1;
		}
		stop = r->each(r->data, info) != 0;
		free(info);
		if (r->t->closing || r->failed)
			return -1;
		if (stop)
			return 1;
	}
	return 0;
}

/* After a page: the next one, or the end of the listing. */
static void list_next(struct s3_req *r, const struct td_s3_xml_node *root, bool stop)
{
	const char *trunc = td_s3_xml_child_text(root, "IsTruncated");
	const char *next = td_s3_xml_child_text(root, "NextContinuationToken");
	int rc;

	free(r->token);
	r->token = NULL;
	if (stop || !trunc || strcmp(trunc, "true") != 0) {
		s3__req_end(r, 0, NULL);
		return;
	}
	if (!next || !*next || strlen(next) > 4096) {
		fail_proto(r, "truncated listing without a continuation token");
		return;
	}
	r->token = strdup(next);
	rc = r->token ? list_page(r) : -ENOMEM;
	if (rc < 0)
		s3__req_fail(r, rc, NULL);
}

static void on_list(struct s3_http *h, int status, const struct td_target_error *e)
{
	struct s3_req *r = h->req;
	struct td_s3_xml *doc = listing_doc(h, status, e, "ListBucketResult", "ListObjectsV2");
	int rc;

	if (!doc)
		return;
	rc = list_hand_out(r, td_s3_xml_root(doc));
	if (rc >= 0)
		list_next(r, td_s3_xml_root(doc), rc == 1);
	td_s3_xml_free(doc);
}

static int list_page(struct s3_req *r)
{
	char *q = NULL, *tok = NULL, *pfx = NULL;
	size_t cap = 3 * (strlen(r->full_key) + (r->token ? strlen(r->token) : 0)) + 16;
	int rc = -ENOMEM, n;

	pfx = malloc(cap);
	tok = malloc(cap);
	if (!pfx || !tok)
		goto out;
	if (td_s3_uri_encode(pfx, cap, r->full_key, 0) < 0 ||
	    (r->token && td_s3_uri_encode(tok, cap, r->token, 0) < 0)) {
		rc = -ENAMETOOLONG;
		goto out;
	}
	/* Canonical: parameters sorted by name. */
	if (r->token)
		n = asprintf(&q, "continuation-token=%s&list-type=2&max-keys=1000&prefix=%s", tok,
		             pfx);
	else
		n = asprintf(&q, "list-type=2&max-keys=1000&prefix=%s", pfx);
	if (n < 0) {
		q = NULL;
		goto out;
	}
	rc = listing_get(r, q, on_list);
out:
	free(q);
	free(tok);
	free(pfx);
	return rc;
}

int s3__list(struct td_target *tt, struct td_target_req **req_out, const char *prefix,
             td_target_list_each each, td_target_cb cb, void *data)
{
	struct s3_target *t = (struct s3_target *)tt;
	struct s3_req *r;
	int rc = s3__req_open(&r, t, K_LIST, prefix, cb, data);

	if (rc < 0)
		return rc;
	r->each = each;
	r->strip = strlen(t->prefix);
	return s3__req_started(r, list_page(r), req_out);
}

/* ---- cleanup_stale ---- */

static int uploads_page(struct s3_req *r);
static void on_uploads(struct s3_http *h, int status, const struct td_target_error *e);
static void abort_next(struct s3_req *r);

static void on_stale_abort(struct s3_http *h, int status, const struct td_target_error *e)
{
	struct s3_req *r = h->req;

	s3__http_destroy(h);
	if (status < 0) {
		s3__req_fail(r, status, e);
		return;
	}
	(*r->n_cleaned)++;
	abort_next(r);
}

/* Aborts the page's next upload, or asks for the next page, or ends. */
static void abort_next(struct s3_req *r)
{
	int rc;

	if (r->next_upload < r->n_uploads) {
		struct upload_ref *u = &r->uploads[r->next_upload++];

		rc = s3__upload_abort(r, u->key, u->id, on_stale_abort);
	} else if (r->more_pages) {
		rc = uploads_page(r);
	} else {
		s3__req_end(r, 0, NULL);
		return;
	}
	if (rc < 0)
		s3__req_fail(r, rc, NULL);
}

void s3__uploads_clear(struct s3_req *r)
{
	for (size_t i = 0; i < r->n_uploads; i++) {
		free(r->uploads[i].key);
		free(r->uploads[i].id);
	}
	free(r->uploads);
	r->uploads = NULL;
	r->n_uploads = r->next_upload = 0;
}

/* Keeps the page's uploads under our prefix (at most 10,000); -ENOMEM. */
/* Keeps one (key, upload or version id) pair of a listing. 0 or -ENOMEM. */
static int keep_ref(struct upload_ref *u, const char *key, const char *id)
{
	u->key = strdup(key);
	u->id = strdup(id);
	if (!u->key || !u->id) {
		free(u->key);
		free(u->id);
		u->key = u->id = NULL;
		return -ENOMEM;
	}
	return 0;
}

/* Whether a listing goes on, and from where: NextKeyMarker and `id_marker`. */
static void next_page(struct s3_req *r, const struct td_s3_xml_node *root, const char *id_marker)
{
	const char *trunc = td_s3_xml_child_text(root, "IsTruncated");

	r->more_pages = trunc && strcmp(trunc, "true") == 0;
	free(r->key_marker);
	free(r->id_marker);
	r->key_marker = xstrdup(td_s3_xml_child_text(root, "NextKeyMarker"));
	r->id_marker = xstrdup(td_s3_xml_child_text(root, id_marker));
}

static int uploads_collect(struct s3_req *r, const struct td_s3_xml_node *root)
{
	const char *prefix = r->t->prefix;
	const struct td_s3_xml_node *c;
	size_t n = 0;

	s3__uploads_clear(r);
	for (c = root->child; c; c = c->next)
		if (strcmp(c->name, "Upload") == 0)
			n++;
	if (n > 10000)
		n = 10000;
	r->uploads = calloc(n ? n : 1, sizeof(*r->uploads));
	if (!r->uploads)
		return -ENOMEM;
	for (c = root->child; c && r->n_uploads < n; c = c->next) {
		struct upload_ref *u = &r->uploads[r->n_uploads];
		const char *key, *id;

		if (strcmp(c->name, "Upload") != 0)
			continue;
		key = td_s3_xml_child_text(c, "Key");
		id = td_s3_xml_child_text(c, "UploadId");
		if (!key || !id || !*id || strlen(id) > 1000 ||
		    strncmp(key, prefix, strlen(prefix)) != 0 ||
		    strlen(key) > TD_TARGET_KEY_MAX + strlen(prefix))
			continue;
		if (r->older_than_s > 0) {
			/* ISO 8601 "2026-11-21T22:03:04.000Z"; unparsable: not old */
			const char *ini = td_s3_xml_child_text(c, "Initiated");
			struct tm tmv;

			memset(&tmv, 0, sizeof(tmv));
			if (!ini || !strptime(ini, "%Y-%m-%dT%H:%M:%S", &tmv) ||
			    (int64_t)timegm(&tmv) >= r->older_than_s)
				continue;
		}
		if (r->n_found)
			(*r->n_found)++;
		if (r->n_found && !r->stale_abort)
			continue;
		if (keep_ref(u, key, id) < 0)
			return -ENOMEM;
		r->n_uploads++;
	}
	return 0;
}

static void on_uploads(struct s3_http *h, int status, const struct td_target_error *e)
{
	struct s3_req *r = h->req;
	struct td_s3_xml *doc =
	    listing_doc(h, status, e, "ListMultipartUploadsResult", "ListMultipartUploads");
	const struct td_s3_xml_node *root;

	if (!doc)
		return;
	root = td_s3_xml_root(doc);
	if (uploads_collect(r, root) < 0) {
		td_s3_xml_free(doc);
		s3__req_fail(r, -ENOMEM, NULL);
		return;
	}
	next_page(r, root, "NextUploadIdMarker");
	td_s3_xml_free(doc);
	if (r->more_pages && (!r->key_marker || !*r->key_marker)) {
		fail_proto(r, "truncated upload listing without a marker");
		return;
	}
	abort_next(r);
}

static int uploads_page(struct s3_req *r)
{
	struct s3_target *t = r->t;
	char km[3 * 2100], im[3 * 1100], pf[3 * 1100];
	char *q = NULL;
	int n;

	if (td_s3_uri_encode(pf, sizeof(pf), t->prefix, 0) < 0)
		return -ENAMETOOLONG;
	if (r->key_marker && *r->key_marker) {
		if (td_s3_uri_encode(km, sizeof(km), r->key_marker, 0) < 0 ||
		    td_s3_uri_encode(im, sizeof(im), r->id_marker ? r->id_marker : "", 0) < 0)
			return -ENAMETOOLONG;
		n = asprintf(&q, "key-marker=%s&prefix=%s&upload-id-marker=%s&uploads=", km, pf,
		             im);
	} else {
		n = asprintf(&q, "prefix=%s&uploads=", pf);
	}
	if (n < 0)
		return -ENOMEM;
	n = listing_get(r, q, on_uploads);
	free(q);
	return n;
}

int s3__stale_uploads(struct td_target *tt, struct td_target_req **req_out, int64_t older_than_s,
                      bool abort, unsigned *n_found, unsigned *n_aborted, td_target_cb cb,
                      void *data)
{
	struct s3_req *r;
	int rc = s3__req_open(&r, (struct s3_target *)tt, K_CLEANUP, NULL, cb, data);

	if (rc < 0)
		return rc;
	*n_found = *n_aborted = 0;
	r->n_cleaned = n_aborted;
	r->n_found = n_found;
	r->older_than_s = older_than_s;
	r->stale_abort = abort;
	return s3__req_started(r, uploads_page(r), req_out);
}

int s3__cleanup_stale(struct td_target *tt, struct td_target_req **req_out, unsigned *n_cleaned,
                      td_target_cb cb, void *data)
{
	struct s3_req *r;
	int rc = s3__req_open(&r, (struct s3_target *)tt, K_CLEANUP, NULL, cb, data);

	if (rc < 0)
		return rc;
	*n_cleaned = 0;
	r->n_cleaned = n_cleaned;
	return s3__req_started(r, uploads_page(r), req_out);
}

/* ---- delete of every version (delete_versions = yes) ----
 *
 * In a versioned bucket a DELETE only adds a delete marker: the bytes stay,
 * billed, as a noncurrent version. With delete_versions the delete lists the
 * key's versions and delete markers (ListObjectVersions with the full key as
 * prefix, keeping exact matches only: never another key's) and deletes each by
 * versionId, page by page. Reuses the uploads slots: key, version id. */

static int versions_page(struct s3_req *r);
static void vdelete_next(struct s3_req *r);

static void on_version_deleted(struct s3_http *h, int status, const struct td_target_error *e)
{
	struct s3_req *r = h->req;

	s3__http_destroy(h);
	if (status < 0) {
		s3__req_fail(r, status, e);
		return;
	}
	vdelete_next(r);
}

static void vdelete_next(struct s3_req *r)
{
	int rc;

	if (r->next_upload < r->n_uploads) {
		struct upload_ref *u = &r->uploads[r->next_upload++];
		char id[3 * 1100], q[3 * 1100 + 16];
		struct s3_http *h;

		if (td_s3_uri_encode(id, sizeof(id), u->id, 0) < 0) {
			s3__req_fail(r, -ENAMETOOLONG, NULL);
			return;
		}
		snprintf(q, sizeof(q), "versionId=%s", id);
		h = s3__http_new(r, "DELETE", u->key, q, on_version_deleted);
		if (!h) {
			s3__req_fail(r, -ENOMEM, NULL);
			return;
		}
		h->ok404 = true;
		rc = s3__http_submit(h);
		if (rc < 0)
			s3__http_destroy(h);
	} else if (r->more_pages) {
		rc = versions_page(r);
	} else {
		s3__req_end(r, 0, NULL);
		return;
	}
	if (rc < 0)
		s3__req_fail(r, rc, NULL);
}

/* Keeps the page's versions and delete markers of exactly r->full_key. */
static int versions_collect(struct s3_req *r, const struct td_s3_xml_node *root)
{
	const struct td_s3_xml_node *c;
	size_t n = 0;

	s3__uploads_clear(r);
	for (c = root->child; c; c = c->next)
		n += strcmp(c->name, "Version") == 0 || strcmp(c->name, "DeleteMarker") == 0;
	r->uploads = calloc(n ? n : 1, sizeof(*r->uploads));
	if (!r->uploads)
		return -ENOMEM;
	for (c = root->child; c && r->n_uploads < n; c = c->next) {
		struct upload_ref *u = &r->uploads[r->n_uploads];
		const char *key, *id;

		if (strcmp(c->name, "Version") != 0 && strcmp(c->name, "DeleteMarker") != 0)
			continue;
		key = td_s3_xml_child_text(c, "Key");
		id = td_s3_xml_child_text(c, "VersionId");
		if (!key || strcmp(key, r->full_key) != 0 || !id || !*id || strlen(id) > 1000)
			continue;
		if (keep_ref(u, key, id) < 0)
			return -ENOMEM;
		r->n_uploads++;
	}
	return 0;
}

static void on_versions(struct s3_http *h, int status, const struct td_target_error *e)
{
	struct s3_req *r = h->req;
	struct td_s3_xml *doc =
	    listing_doc(h, status, e, "ListVersionsResult", "ListObjectVersions");
	const struct td_s3_xml_node *root;

	if (!doc)
		return;
	root = td_s3_xml_root(doc);
	if (versions_collect(r, root) < 0) {
		td_s3_xml_free(doc);
		s3__req_fail(r, -ENOMEM, NULL);
		return;
	}
	next_page(r, root, "NextVersionIdMarker");
	td_s3_xml_free(doc);
	/* Past our key the listing has nothing more for us. */
	if (r->more_pages && r->key_marker && strcmp(r->key_marker, r->full_key) > 0)
		r->more_pages = false;
	if (r->more_pages && (!r->key_marker || !*r->key_marker)) {
		fail_proto(r, "truncated version listing without a marker");
		return;
	}
	vdelete_next(r);
}

static int versions_page(struct s3_req *r)
{
	char km[3 * 2100], im[3 * 1100], pf[3 * 2100];
	char *q = NULL;
	int n;

	if (td_s3_uri_encode(pf, sizeof(pf), r->full_key, 0) < 0)
		return -ENAMETOOLONG;
	if (r->key_marker && *r->key_marker) {
		if (td_s3_uri_encode(km, sizeof(km), r->key_marker, 0) < 0 ||
		    td_s3_uri_encode(im, sizeof(im), r->id_marker ? r->id_marker : "", 0) < 0)
			return -ENAMETOOLONG;
		n = asprintf(&q, "key-marker=%s&prefix=%s&version-id-marker=%s&versions=", km, pf,
		             im);
	} else {
		n = asprintf(&q, "prefix=%s&versions=", pf);
	}
	if (n < 0)
		return -ENOMEM;
	n = listing_get(r, q, on_versions);
	free(q);
	return n;
}

int s3__delete_versions(struct s3_target *t, struct td_target_req **req_out, const char *key,
                        td_target_cb cb, void *data)
{
	struct s3_req *r;
	int rc = s3__req_open(&r, t, K_DELETE, key, cb, data);

	if (rc < 0)
		return rc;
	return s3__req_started(r, versions_page(r), req_out);
}
