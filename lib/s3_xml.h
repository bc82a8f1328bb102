/*
 * s3_xml — a small, defensive XML reader for S3 responses (errors, initiate and
 * complete multipart, ListObjectsV2, ListMultipartUploads). Any thread; no
 * globals.
 *
 * It builds a tree of elements with their decoded text, nothing more: no DTDs
 * (a DOCTYPE is refused, so no entity expansion), no namespaces (a "p:" prefix
 * is dropped), attributes skipped. Input, depth, element count and text length
 * are all capped; anything malformed or over a cap gives -EPROTO, never a crash.
 */
#pragma once

#include <stddef.h>

#define TD_S3_XML_MAX_INPUT (4u << 20) /* bytes */
#define TD_S3_XML_MAX_DEPTH 32
#define TD_S3_XML_MAX_NODES 65536
#define TD_S3_XML_MAX_TEXT  (64u << 10) /* decoded text of one element */

struct td_s3_xml_node {
	const char *name; /* local name, NUL-terminated */
	const char *text; /* decoded character data directly inside, "" if none */
	size_t text_len;
	struct td_s3_xml_node *child;
	struct td_s3_xml_node *next;
};

struct td_s3_xml; /* opaque document: owns every node and string */

/* Parses buf[0..n). Returns 0 and a document in *out, -EPROTO for malformed or
 * over-cap input, -ENOMEM. */
int td_s3_xml_parse(struct td_s3_xml **out, const char *buf, size_t n);
void td_s3_xml_free(struct td_s3_xml *doc);
const struct td_s3_xml_node *td_s3_xml_root(const struct td_s3_xml *doc);

/* First child of `n` named `name`, or NULL. */
const struct td_s3_xml_node *td_s3_xml_child(const struct td_s3_xml_node *n, const char *name);
/* Text of the first child named `name`, or NULL when there is none. */
const char *td_s3_xml_child_text(const struct td_s3_xml_node *n, const char *name);
