/*
 * test_s3_xml — the S3 XML parser on real response shapes and on the nasty
 * inputs in tests/fuzz/corpus (label unit): valid ones decode right, hostile or
 * malformed ones give -EPROTO, nothing crashes (run it under ASan).
 */
#include "s3_xml.h"
#include "testlib.h"

#include <dirent.h>
#include <stdlib.h>

static char dir[1024];

static char *slurp(const char *name, size_t *n)
{
	char path[2048];
	FILE *f;
	char *buf;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "rbe");
	if (!f)
		return NULL;
	buf = malloc(1 << 21);
	*n = fread(buf, 1, 1 << 21, f);
	fclose(f);
	return buf;
}

static int parse_file(const char *name, struct td_s3_xml **doc)
{
	size_t n = 0;
	char *buf = slurp(name, &n);
	int r;

	if (!buf)
		return -999;
	r = td_s3_xml_parse(doc, buf, n);
	free(buf); /* the document must not point into the input */
	return r;
}

static void test_valid(void)
{
	struct td_s3_xml *d = NULL;
	const struct td_s3_xml_node *root, *c;

	REQUIRE(parse_file("error.xml", &d) == 0);
	root = td_s3_xml_root(d);
	CHECK_STR(root->name, "Error");
	CHECK_STR(td_s3_xml_child_text(root, "Code"), "SignatureDoesNotMatch");
	CHECK_STR(td_s3_xml_child_text(root, "Message"), "m & <x>");
	CHECK_STR(td_s3_xml_child_text(root, "RequestId"), "tx0");
	CHECK(td_s3_xml_child_text(root, "Nope") == NULL);
	td_s3_xml_free(d);

	REQUIRE(parse_file("list.xml", &d) == 0);
	root = td_s3_xml_root(d);
	CHECK_STR(root->name, "ListBucketResult");
	CHECK_STR(td_s3_xml_child_text(root, "NextContinuationToken"), "1ueG+/=");
	CHECK_STR(td_s3_xml_child_text(root, "IsTruncated"), "true");
	c = td_s3_xml_child(root, "Contents");
	REQUIRE(c);
	CHECK_STR(td_s3_xml_child_text(c, "Key"), "p/a &b");
	CHECK_STR(td_s3_xml_child_text(c, "ETag"), "\"abc\"");
	c = c->next;
	REQUIRE(c);
	CHECK_STR(td_s3_xml_child_text(c, "Key"), "p/日本");
	CHECK_STR(root->text, ""); /* containers keep no text */
	td_s3_xml_free(d);

	REQUIRE(parse_file("initiate.xml", &d) == 0);
	CHECK_STR(td_s3_xml_child_text(td_s3_xml_root(d), "UploadId"), "2~abc-DEF_g");
	td_s3_xml_free(d);
	REQUIRE(parse_file("complete.xml", &d) == 0);
	CHECK_STR(td_s3_xml_child_text(td_s3_xml_root(d), "ETag"), "");
	td_s3_xml_free(d);
	REQUIRE(parse_file("uploads.xml", &d) == 0);
	c = td_s3_xml_child(td_s3_xml_root(d), "Upload");
	REQUIRE(c && c->next);
	CHECK_STR(td_s3_xml_child_text(c->next, "UploadId"), "2~y");
	td_s3_xml_free(d);
	REQUIRE(parse_file("cdata.xml", &d) == 0);
	CHECK_STR(td_s3_xml_root(d)->text, "<not-a-tag>&amp;");
	td_s3_xml_free(d);
	REQUIRE(parse_file("attrs.xml", &d) == 0);
	CHECK(td_s3_xml_child(td_s3_xml_root(d), "b") != NULL);
	td_s3_xml_free(d);
}

static void test_hostile(void)
{
	const char *bad[] = { "billion-laughs.xml", "mismatched.xml",   "nul-entity.xml",
		              "big-entity.xml",     "unterminated.xml", "two-roots.xml",
		              "unknown-entity.xml", "binary.xml",       "deep.xml",
		              "long-text.xml" };

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct td_s3_xml *d = NULL;
		int r = parse_file(bad[i], &d);

		if (r != -EPROTO)
			printf("  %s: %d\n", bad[i], r);
		CHECK_INT(r, -EPROTO);
	}
	{
		struct td_s3_xml *d = NULL;

		CHECK_INT(td_s3_xml_parse(&d, "", 0), -EPROTO);
		CHECK_INT(td_s3_xml_parse(&d, NULL, 5), -EPROTO);
		CHECK_INT(td_s3_xml_parse(&d, "   ", 3), -EPROTO);
	}
}

/* Every prefix and every single-byte mutation of a real response: no crash. */
static void test_mutations(void)
{
	size_t n = 0;
	char *buf = slurp("list.xml", &n);
	unsigned ok = 0;

	REQUIRE(buf);
	for (size_t k = 0; k <= n; k++) {
		struct td_s3_xml *d = NULL;
		char *copy = malloc(k ? k : 1);

		memcpy(copy, buf, k);
		if (td_s3_xml_parse(&d, copy, k) == 0) {
			ok++;
			td_s3_xml_free(d);
		}
		free(copy);
	}
	CHECK_INT(ok, 1); /* only the whole document parses */
	for (size_t k = 0; k < n; k++) {
		static const char subst[] = { '<', '>', '&', '/', '"', ';', '\0', '#' };

		for (size_t j = 0; j < sizeof(subst); j++) {
			struct td_s3_xml *d = NULL;
			char saved = buf[k];

			buf[k] = subst[j];
			if (td_s3_xml_parse(&d, buf, n) == 0)
				td_s3_xml_free(d);
			buf[k] = saved;
		}
	}
	free(buf);
}

/* Whatever else is in the corpus (fuzzer finds get added there). */
static void test_corpus(void)
{
	DIR *dp = opendir(dir);
	struct dirent *de;
	unsigned files = 0;

	REQUIRE(dp);
	while ((de = readdir(dp))) {
		struct td_s3_xml *d = NULL;

		if (de->d_name[0] == '.')
			continue;
		if (parse_file(de->d_name, &d) == 0)
			td_s3_xml_free(d);
		files++;
	}
	closedir(dp);
	CHECK(files >= 10);
}

int main(void)
{
	const char *src = getenv("TD_SOURCE_DIR");

	snprintf(dir, sizeof(dir), "%s/tests/fuzz/corpus", src ? src : ".");
	TD_RUN(test_valid);
	TD_RUN(test_hostile);
	TD_RUN(test_mutations);
	TD_RUN(test_corpus);
	return td_test_done();
}
