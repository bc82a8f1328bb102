/*
 * target_s3_error — what a finished attempt of the s3 backend means: success,
 * or a -errno with a retry verdict and one human sentence for the log and
 * tierctl. Two tables hold the facts (transport failures by CURLcode, HTTP
 * error answers by status and S3 error code); the code around them only finds
 * the row and writes the row's message. The errno mapping is target.h's.
 *
 * Threading: loop thread only. Owns nothing.
 */
#include "target_s3_int.h"
#include "s3_xml.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* How a row's message is written. The "_IF_NONE" ones keep the server's own
 * <Message> when it sent one. */
enum msg {
	M_CONNECT,    /* cannot connect to ENDPOINT: reason */
	M_RESOLVE,    /* cannot resolve the host of ENDPOINT */
	M_TIMEOUT,    /* ENDPOINT timed out or stalled */
	M_BROKEN,     /* connection to ENDPOINT broken */
	M_TLS,        /* TLS with ENDPOINT failed */
	M_CURL,       /* request to ENDPOINT failed: curl's words */
	M_BUSY,       /* server busy or failing (HTTP n CODE): the server's message */
	M_BAD_KEY,    /* ENDPOINT does not know this access key */
	M_BAD_SECRET, /* the secret key is wrong for this access key */
	M_SKEW,       /* clock skew with ENDPOINT: by how much, from its Date */
	M_REGION,     /* wrong region: the one the server names in <Region> */
	M_NO_BUCKET,  /* bucket "B" does not exist on ENDPOINT */
	M_NO_OBJECT_IF_NONE,
	M_DENIED_IF_NONE,
	M_DIGEST, /* the server received other bytes than were sent (CODE) */
	M_FULL_IF_NONE,
	M_CHANGED, /* the object changed during the download (412) */
	M_OTHER_IF_NONE,
};

/* Transport failures, by CURLcode; anything else is the last row's. */
static const struct curl_rule {
	CURLcode cc;
	int err;
	bool retry;
	enum msg msg;
} curl_rules[] = {
	{ CURLE_COULDNT_CONNECT, -ECONNREFUSED, true, M_CONNECT }, /* or -EHOSTUNREACH */
	{ CURLE_COULDNT_RESOLVE_HOST, -EHOSTUNREACH, true, M_RESOLVE },
	{ CURLE_OPERATION_TIMEDOUT, -ETIMEDOUT, true, M_TIMEOUT },
	{ CURLE_SEND_ERROR, -ECONNRESET, true, M_BROKEN },
	{ CURLE_RECV_ERROR, -ECONNRESET, true, M_BROKEN },
	{ CURLE_GOT_NOTHING, -ECONNRESET, true, M_BROKEN },
	{ CURLE_PARTIAL_FILE, -ECONNRESET, true, M_BROKEN },
	{ CURLE_HTTP2, -ECONNRESET, true, M_BROKEN },
	{ CURLE_HTTP2_STREAM, -ECONNRESET, true, M_BROKEN },
	{ CURLE_SSL_CONNECT_ERROR, -EPROTO, false, M_TLS },
	{ CURLE_PEER_FAILED_VERIFICATION, -EPROTO, false, M_TLS },
	{ CURLE_SSL_CACERT_BADFILE, -EPROTO, false, M_TLS },
	{ CURLE_SSL_CERTPROBLEM, -EPROTO, false, M_TLS },
	{ CURLE_OK, -EIO, false, M_CURL }, /* the default */
};

/*
 * HTTP error answers. The first row that matches wins: its status range
 * (0, 0: any status) and its S3 error code (NULL: any code) must both match.
 * Order matters: 507 comes before the 5xx row, so a full target is not retried
 * as a busy one.
 */
static const struct http_rule {
	long lo, hi;
	const char *code;
	int err;
	bool retry;
	enum msg msg;
} http_rules[] = {
	{ 507, 507, NULL, -ENOSPC, false, M_FULL_IF_NONE },
	{ 500, 999, NULL, -EAGAIN, true, M_BUSY }, /* 5xx, and anything above */
	{ 408, 408, NULL, -EAGAIN, true, M_BUSY },
	{ 429, 429, NULL, -EAGAIN, true, M_BUSY },
	{ 0, 0, "SlowDown", -EAGAIN, true, M_BUSY },
	{ 0, 0, "RequestTimeout", -EAGAIN, true, M_BUSY },
	{ 0, 0, "InternalError", -EAGAIN, true, M_BUSY },
	{ 0, 0, "InvalidAccessKeyId", -EACCES, false, M_BAD_KEY },
	{ 0, 0, "SignatureDoesNotMatch", -EACCES, false, M_BAD_SECRET },
	{ 0, 0, "RequestTimeTooSkewed", -EACCES, false, M_SKEW },
	{ 0, 0, "AuthorizationHeaderMalformed", -EACCES, false, M_REGION },
	{ 0, 0, "NoSuchBucket", -ENOENT, false, M_NO_BUCKET },
	{ 404, 404, NULL, -ENOENT, false, M_NO_OBJECT_IF_NONE },
	{ 401, 401, NULL, -EACCES, false, M_DENIED_IF_NONE },
	{ 403, 403, NULL, -EACCES, false, M_DENIED_IF_NONE },
	{ 0, 0, "BadDigest", -EIO, false, M_DIGEST },
	{ 0, 0, "InvalidDigest", -EIO, false, M_DIGEST },
	{ 0, 0, "EntityTooLarge", -ENOSPC, false, M_FULL_IF_NONE },
	{ 0, 0, "QuotaExceeded", -ENOSPC, false, M_FULL_IF_NONE },
	{ 412, 412, NULL, -EIO, false, M_CHANGED },
	{ 409, 409, NULL, -EEXIST, false, M_OTHER_IF_NONE },
	{ 0, 0, NULL, -EIO, false, M_OTHER_IF_NONE }, /* the default */
};

static const struct http_rule *http_rule(long status, const char *code)
{
	const struct http_rule *w = http_rules;

	for (; w->lo || w->code; w++) {
		bool status_ok = w->lo == 0 || (status >= w->lo && status <= w->hi);
		bool code_ok = !w->code || strcmp(code, w->code) == 0;

		if (status_ok && code_ok)
			break;
	}
	return w;
}

int s3__classify_http(long status, const char *code, bool *retry)
{
	const struct http_rule *w = http_rule(status, code ? code : "");

	*retry = w->retry;
	return w->err;
}

/* What a message is made of: the exchange's target and answer, and the
 * server's own <Message> (smsg, "" if none). */
struct msg_ctx {
	const struct s3_target *t;
	const struct s3_http *h;
	long status;
	const char *code;
	const char *smsg;
	const char *region; /* <Region> of the error body, "" if none */
	long oserr;
};

/* One case per message kind: the messages side by side read better than
 * spread over helpers, so this switch stays long. */
static void write_msg(char *out, size_t cap, enum msg m, const struct msg_ctx *c)
{
	const char *ep = c->t->endpoint;

	switch (m) {
	case M_CONNECT:
		snprintf(out, cap, "cannot connect to %s: %s", ep,
		         c->oserr ? strerror((int)c->oserr) : c->h->errbuf);
		break;
	case M_RESOLVE:
		snprintf(out, cap, "cannot resolve the host of %s", ep);
		break;
	case M_TIMEOUT:
		snprintf(out, cap, "%s timed out or stalled: %s", ep, c->h->errbuf);
		break;
	case M_BROKEN:
		snprintf(out, cap, "connection to %s broken: %s", ep, c->h->errbuf);
		break;
	case M_TLS:
		if (strstr(c->h->errbuf, "certificate problem") && c->t->ca_file)
			snprintf(out, cap,
			         "TLS with %s failed: its certificate is signed by no CA in "
			         "ca_file = %s nor in the system's bundle; set ca_file to the PEM "
			         "file of the CA that signed it: %s",
			         ep, c->t->ca_file, c->h->errbuf);
		else if (strstr(c->h->errbuf, "certificate problem"))
			snprintf(
			    out, cap,
			    "TLS with %s failed: its certificate is signed by no CA this host "
			    "trusts; for a private CA set ca_file = the PEM file of the CA that "
			    "signed it: %s",
			    ep, c->h->errbuf);
		else
			snprintf(out, cap,
			         "TLS with %s failed (certificates are always "
			         "verified; ca_file adds a bundle): %s",
			         ep, c->h->errbuf);
		break;
	case M_CURL:
		snprintf(out, cap, "request to %s failed: %s", ep, c->smsg);
		break;
	case M_BUSY:
		snprintf(out, cap, "server busy or failing (HTTP %ld%s%s)%s%.400s", c->status,
		         *c->code ? " " : "", c->code, c->smsg[0] ? ": " : "", c->smsg);
		break;
	case M_BAD_KEY:
		snprintf(out, cap,
		         "authentication failed: %s does not know this access key "
		         "(InvalidAccessKeyId)",
		         ep);
		break;
	case M_BAD_SECRET:
		snprintf(out, cap,
		         "authentication failed: the secret key is wrong for this access key "
		         "(SignatureDoesNotMatch)");
		break;
	case M_SKEW: {
		int64_t off = c->h->date_s > 0 ? c->h->date_s - (int64_t)time(NULL) : 0;

		if (c->h->date_s > 0)
			snprintf(out, cap,
			         "clock skew: the clock of %s is %lld s %s this host's "
			         "(RequestTimeTooSkewed); set this host's time right (NTP: "
			         "systemd-timesyncd, chrony)",
			         ep, (long long)(off < 0 ? -off : off),
			         off < 0 ? "behind" : "ahead of");
		else
			snprintf(out, cap,
			         "clock skew: this host's clock differs too much from %s's "
			         "(RequestTimeTooSkewed); set this host's time right (NTP)",
			         ep);
		break;
	}
	case M_REGION:
		if (c->region[0])
			snprintf(out, cap,
			         "wrong region: the bucket \"%s\" is in region \"%s\", not \"%s\" "
			         "(AuthorizationHeaderMalformed); set region = %s",
			         c->t->bucket, c->region, c->t->region, c->region);
		else
			snprintf(
			    out, cap,
			    "the server refused the signature's scope "
			    "(AuthorizationHeaderMalformed), "
			    "most likely the region \"%s\" is wrong; set region = to the bucket's: "
			    "%.300s",
			    c->t->region, c->smsg);
		break;
	case M_NO_BUCKET:
		snprintf(out, cap,
		         "bucket \"%s\" does not exist on %s: create it (e.g. aws s3 mb s3://%s) "
		         "or set bucket = to an existing one",
		         c->t->bucket, ep, c->t->bucket);
		break;
	case M_DIGEST:
		snprintf(out, cap, "the server received other bytes than were sent (%s)", c->code);
		break;
	case M_CHANGED:
		snprintf(out, cap,
		         "object changed on the target (its ETag is no longer the one "
		         "expected)");
		break;
	case M_NO_OBJECT_IF_NONE:
	case M_DENIED_IF_NONE:
	case M_FULL_IF_NONE:
	case M_OTHER_IF_NONE:
		if (c->smsg[0])
			break; /* out already holds the server's message */
		if (m == M_NO_OBJECT_IF_NONE)
			snprintf(out, cap, "no such object");
		else if (m == M_DENIED_IF_NONE)
			snprintf(out, cap,
			         "access denied (HTTP %ld): wrong credentials or no permission on "
			         "bucket \"%s\"",
			         c->status, c->t->bucket);
		else if (m == M_FULL_IF_NONE)
			snprintf(out, cap, "target full (HTTP %ld)", c->status);
		else
			snprintf(out, cap, "HTTP %ld from %s", c->status, ep);
		break;
	}
}

/* A transfer that got no complete HTTP answer. */
static int classify_curl(struct s3_http *h, CURLcode cc, struct td_target_error *e, bool *retry)
{
	const struct curl_rule *w = curl_rules;
	struct msg_ctx c = { .t = h->t, .h = h, .code = "", .smsg = "" };
	int err;

	curl_easy_getinfo(h->easy, CURLINFO_OS_ERRNO, &c.oserr);
	while (w->cc != CURLE_OK && w->cc != cc)
		w++;
	err = w->err;
	if (cc == CURLE_COULDNT_CONNECT && (c.oserr == EHOSTUNREACH || c.oserr == ENETUNREACH))
		err = -EHOSTUNREACH;
	if (w->msg == M_CURL)
		c.smsg = h->errbuf[0] ? h->errbuf : curl_easy_strerror(cc);
	write_msg(e->message, sizeof(e->message), w->msg, &c);
	*retry = w->retry;
	return err;
}

/* The <Region> of an <Error> body (AuthorizationHeaderMalformed names the
 * one the server wants), "" without one or with one that is not a plain word. */
static void error_body_region(struct s3_http *h, char *out, size_t cap)
{
	struct td_s3_xml *doc = NULL;
	const char *r;

	out[0] = '\0';
	if (h->resp_len == 0 || td_s3_xml_parse(&doc, h->resp, h->resp_len) < 0)
		return;
	r = td_s3_xml_child_text(td_s3_xml_root(doc), "Region");
	if (r && *r && strlen(r) < cap &&
	    strspn(r, "abcdefghijklmnopqrstuvwxyz0123456789-_") == strlen(r))
		scpy(out, cap, r);
	td_s3_xml_free(doc);
}

/* An HTTP answer outside 2xx: e gets the status, the S3 error code and
 * request id, and the row's message. */
static int classify_answer(struct s3_http *h, long status, struct td_target_error *e, bool *retry)
{
	const struct http_rule *w = http_rule(status, e->code);
	struct msg_ctx c = { .t = h->t, .h = h, .status = status, .code = e->code, .region = "" };
	char smsg[512], region[64] = "";

	scpy(smsg, sizeof(smsg), e->message);
	c.smsg = smsg;
	if (w->msg == M_REGION) {
		error_body_region(h, region, sizeof(region));
		c.region = region;
	}
	write_msg(e->message, sizeof(e->message), w->msg, &c);
	*retry = w->retry;
	return w->err;
}

int s3__classify(struct s3_http *h, CURLcode cc, struct td_target_error *e, bool *retry)
{
	long status = 0;

	*retry = false;
	memset(e, 0, sizeof(*e));
	if (h->sink_err) {
		s3__err_set(e, 0, NULL, NULL, "%s", h->sink_msg);
		return h->sink_err;
	}
	if (cc != CURLE_OK)
		return classify_curl(h, cc, e, retry);
	curl_easy_getinfo(h->easy, CURLINFO_RESPONSE_CODE, &status);
	h->status = status;
	if (status / 100 == 2)
		return 0;
	if ((status == 404 && h->ok404) || (status == 416 && h->ok416))
		return 0;
	if (s3__parse_error_body(h, e) == false)
		e->code[0] = '\0';
	e->http_status = (int)status;
	if (!e->request_id[0])
		scpy(e->request_id, sizeof(e->request_id), h->amz_request_id);
	if (status == 409 && h->ok409 &&
	    (strcmp(e->code, "BucketAlreadyOwnedByYou") == 0 ||
	     strcmp(e->code, "BucketAlreadyExists") == 0))
		return 0;
	return classify_answer(h, status, e, retry);
}

/* Parses an S3 <Error> body into e. Returns true if one was found. */
bool s3__parse_error_body(struct s3_http *h, struct td_target_error *e)
{
	struct td_s3_xml *doc = NULL;
	const struct td_s3_xml_node *root;
	bool found = false;

	if (h->resp_len == 0 || td_s3_xml_parse(&doc, h->resp, h->resp_len) < 0)
		return false;
	root = td_s3_xml_root(doc);
	if (strcmp(root->name, "Error") == 0) {
		const char *code = td_s3_xml_child_text(root, "Code");
		const char *msg = td_s3_xml_child_text(root, "Message");
		const char *rid = td_s3_xml_child_text(root, "RequestId");

		if (code)
			scpy(e->code, sizeof(e->code), code);
		if (rid)
			scpy(e->request_id, sizeof(e->request_id), rid);
		if (msg && *msg)
			scpy(e->message, sizeof(e->message), msg);
		found = true;
	}
	td_s3_xml_free(doc);
	return found;
}
