/* test_gw_keys.c — unit tests of ward-gateway's keys file and the API-key lookup. */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gateway/keys.h"

/* Loads text as a keys file; the file is gone when this returns. *path_out, when
 * wanted, gets the path it had (the caller frees it). */
static enum ward_err load(const char *text, struct gw_keys **keys, char *err, size_t errlen,
                          char **path_out)
{
    char *path = strdup("/tmp/test_gw_keys_XXXXXX");
    enum ward_err rc;
    int fd;
    FILE *f;

    cr_assert(path != NULL);
    fd = mkstemp(path);
    cr_assert(fd >= 0);
    f = fdopen(fd, "w");
    cr_assert(f != NULL);
    cr_assert(fwrite(text, 1, strlen(text), f) == strlen(text));
    cr_assert(fclose(f) == 0);
    rc = gw_keys_load(path, keys, err, errlen);
    unlink(path);
    if (path_out != NULL)
        *path_out = path;
    else
        free(path);
    return rc;
}

static struct gw_keys *load_ok(const char *text)
{
    struct gw_keys *keys = NULL;
    char err[256];
    enum ward_err rc = load(text, &keys, err, sizeof err, NULL);
    cr_assert_eq(rc, WARD_ERR_OK, "load failed: %s", err);
    cr_assert_not_null(keys);
    return keys;
}

static void expect_error(const char *text, int line, const char *want)
{
    static struct gw_keys sentinel;
    struct gw_keys *keys = &sentinel;
    char err[256];
    char prefix[128];
    char *path = NULL;
    enum ward_err rc = load(text, &keys, err, sizeof err, &path);

    cr_assert_eq(rc, WARD_ERR_SYNTAX, "rc %d for: %s", rc, text);
    cr_assert_null(keys);
    snprintf(prefix, sizeof prefix, "%s:%d: ", path, line);
    cr_expect(strncmp(err, prefix, strlen(prefix)) == 0, "want line %d, got \"%s\"", line, err);
    cr_expect(strstr(err, want) != NULL, "want \"%s\" in \"%s\"", want, err);
    free(path);
}

static const char keys_file[] = "# ward-gateway API keys: NAME KEY\n"
                                "\n"
                                "mobile-app   k_live_0123456789abcdef\n"
                                "   # an indented comment\n"
                                "partner.acme\tk_live_ACME_fedcba9876543210\r\n"
                                "ci@example   k_live_0123456789abcdef0\n"
                                "  \t \n";

Test(gw_keys, parses_names_keys_comments_and_blank_lines)
{
    struct gw_keys *keys = load_ok(keys_file);

    cr_assert_eq(keys->n, 3);
    cr_expect_str_eq(keys->v[0].name, "mobile-app");
    cr_expect_eq(keys->v[0].line, 3);
    cr_expect_str_eq(keys->v[1].name, "partner.acme");
    cr_expect_eq(keys->v[1].line, 5);
    cr_expect_str_eq(keys->v[2].name, "ci@example");
    cr_expect_eq(keys->v[2].line, 6);
    gw_keys_free(keys);
}

Test(gw_keys, empty_file_has_no_keys)
{
    struct gw_keys *keys = load_ok("# nobody yet\n");
    cr_expect_eq(keys->n, 0);
    cr_expect_null(gw_keys_find(keys, "k_live_0123456789abcdef"));
    gw_keys_free(keys);
}

Test(gw_keys, find)
{
    struct gw_keys *keys = load_ok(keys_file);

    /* known keys, wherever they are in the file */
    cr_expect_str_eq(gw_keys_find(keys, "k_live_0123456789abcdef"), "mobile-app");
    cr_expect_str_eq(gw_keys_find(keys, "k_live_ACME_fedcba9876543210"), "partner.acme");
    cr_expect_str_eq(gw_keys_find(keys, "k_live_0123456789abcdef0"), "ci@example");
    /* unknown; a prefix of a real key; a real key with more after it; wrong case */
    cr_expect_null(gw_keys_find(keys, "k_live_ffffffffffffffff"));
    cr_expect_null(gw_keys_find(keys, "k_live_0123456789abcde"));
    cr_expect_null(gw_keys_find(keys, "k_live_ACME_fedcba987654321"));
    cr_expect_null(gw_keys_find(keys, "k_live_ACME_fedcba9876543210x"));
    cr_expect_null(gw_keys_find(keys, "K_LIVE_0123456789ABCDEF"));
    /* the line's blanks are not part of the key; neither is the name */
    cr_expect_null(gw_keys_find(keys, " k_live_0123456789abcdef"));
    cr_expect_null(gw_keys_find(keys, "mobile-app"));
    /* empty and absent */
    cr_expect_null(gw_keys_find(keys, ""));
    cr_expect_null(gw_keys_find(keys, NULL));
    cr_expect_null(gw_keys_find(NULL, "k_live_0123456789abcdef"));
    gw_keys_free(keys);
}

Test(gw_keys, error_line_without_both_fields)
{
    expect_error("a k_live_0123456789abcdef\n# c\nlonely\n", 3,
                 "expected \"NAME KEY\", found one field");
    expect_error("\n\na k_live_0123456789abcdef extra\n", 3,
                 "expected \"NAME KEY\", found more than two fields");
}

Test(gw_keys, error_short_key)
{
    expect_error("a k_live_0123456789abcdef\nb 0123456789abcde\n", 2,
                 "the key of b is 15 characters long; at least 16 are needed");
}

Test(gw_keys, error_duplicates_name_the_first_line)
{
    expect_error("a k_live_0123456789abcdef\n"
                 "b k_live_1123456789abcdef\n"
                 "a k_live_2123456789abcdef\n",
                 3, "duplicate name a (first on line 1)");
    expect_error("a k_live_0123456789abcdef\n"
                 "# gap\n"
                 "b k_live_1123456789abcdef\n"
                 "c k_live_0123456789abcdef\n",
                 4, "the key of c is already the key of a (line 1)");
}

Test(gw_keys, error_bad_name)
{
    expect_error("a/b k_live_0123456789abcdef\n", 1, "name \"a/b\" may hold only");
}

Test(gw_keys, error_unreadable_file)
{
    struct gw_keys *keys = NULL;
    char err[256];

    cr_assert_eq(gw_keys_load("/nonexistent/keys", &keys, err, sizeof err), WARD_ERR_SYSTEM);
    cr_expect_null(keys);
    cr_expect_str_eq(err, "/nonexistent/keys: cannot read: No such file or directory");
    cr_expect_eq(gw_keys_load(NULL, &keys, err, sizeof err), WARD_ERR_INVAL);
    gw_keys_free(NULL);
}
