/*
 * fuzz_s3_xml — libFuzzer harness for the S3 response parser (lib/s3_xml.c).
 * Build: CC=clang cmake -S . -B build-fuzz -DTD_FUZZ=ON && cmake --build build-fuzz
 * --target fuzz_s3_xml; run: build-fuzz/tests/fuzz/fuzz_s3_xml tests/fuzz/corpus
 */
#include "s3_xml.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t walk(const struct td_s3_xml_node *n, unsigned depth)
{
	size_t k = 0;

	for (; n; n = n->next) {
		/* Touch every byte the parser claims to have produced. */
		k += strlen(n->name) + n->text_len + (n->text_len ? (unsigned char)n->text[0] : 0);
		if (strlen(n->text) > n->text_len)
			__builtin_trap();
		k += walk(n->child, depth + 1);
	}
	return k;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct td_s3_xml *doc = NULL;

	if (td_s3_xml_parse(&doc, (const char *)data, size) == 0) {
		const struct td_s3_xml_node *root = td_s3_xml_root(doc);

		(void)walk(root, 0);
		(void)td_s3_xml_child_text(root, "Code");
		(void)td_s3_xml_child(td_s3_xml_child(root, "Contents"), "Key");
		td_s3_xml_free(doc);
	}
	return 0;
}
