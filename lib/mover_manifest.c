/*
 * mover_manifest — the manifest stored beside each object (`<key>.json`), so
 * the bucket describes itself and a lost catalog can be rebuilt from it
 * (DESIGN.md, "Object layout"): original path, size, mode, owner, times,
 * xattrs (each value base64, so binary ones are exact; the same set the
 * catalog row keeps, at most TD_XATTR_MAX bytes), SHA-256, when and on which
 * host it was tiered.
 *
 * Threads: called from on_put on the loop thread. Owns nothing: the text
 * returned is the caller's to free().
 */
#include "mover_int.h"

#include <jansson.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static char *b64(const void *data, size_t n)
{
	char *out = malloc(4 * ((n + 2) / 3) + 1);

	if (out)
		EVP_EncodeBlock((unsigned char *)out, data, (int)n);
	return out;
}

char *mover_manifest_text(struct job *j)
{
	char host[256] = "", when[64], perm[16], *pb64 = b64(j->path, j->path_len), *text;
	time_t now = time(NULL);
	struct tm tm;
	json_t *doc, *pathstr = json_stringn(j->path, j->path_len); /* NULL if not UTF-8 */

	gethostname(host, sizeof(host) - 1);
	gmtime_r(&now, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	doc = json_pack("{s:i, s:s, s:o?, s:s?, s:I, s:i, s:i, s:i, s:I, s:I, s:I, s:s, s:s, s:s, "
	                "s:s, s:s, s:o}",
	                "version", 1, "id", j->id, "path", pathstr, "path_b64", pb64, "size",
	                (json_int_t)j->st.st_size, "mode", (int)j->st.st_mode, "uid",
	                (int)j->st.st_uid, "gid", (int)j->st.st_gid, "atime_ns",
	                (json_int_t)mover_ts_ns(&j->st.st_atim), "mtime_ns",
	                (json_int_t)mover_ts_ns(&j->st.st_mtim), "ctime_ns",
	                (json_int_t)mover_ts_ns(&j->st.st_ctim), "sha256", j->put.sha256_hex,
	                "tiered_at", when, "host", host, "policy", j->policy ? j->policy : "",
	                "target", j->target_name, "xattrs", td_xattr_to_json(j->xa.buf, j->xa.len));
	free(pb64);
	if (!doc)
		return NULL;
	/* "mode" stays the full st_mode (readers since version 1 take it); "perm"
	 * is the permission bits as a person writes them. */
	snprintf(perm, sizeof(perm), "%04o", (unsigned)(j->st.st_mode & 07777));
	json_object_set_new(doc, "perm", json_string(perm));
	text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(doc);
	return text;
}
