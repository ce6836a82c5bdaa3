/* test_hub.c - the Hub client's pure parts, without a network: path and repo
 * id checks, URL resolution and origins (the token rule), response header
 * parsing and its caps, the listing parsers (unsafe paths, sizes), the cache
 * layout writers (refs, relative links, markers) and removal, and allocation
 * failures in each. The HTTP side is tested against the test Hub
 * (tests/hub/test_pull_*.py). */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <unistd.h>

#include <jansson.h>

#include "testutil.h"
#include "base/alloc.h"
#include "store/hub.h"
#include "store/hub_cache.h"
#include "store/hub_http.h"
#include "store/hub_writer.h"

#define C1 "0123456789abcdef0123456789abcdef01234567"
#define C2 "89abcdef0123456789abcdef0123456789abcdef"
#define SHA_A "aa00000000000000000000000000000000000000000000000000000000000000"
#define SHA_B "bb00000000000000000000000000000000000000000000000000000000000000"

static void test_path_ok(void **state)
{
    (void)state;
    static const char *const good[] = {"a", "a/b", "sub dir/ünï/cfg ü.json", ".hidden",
                                       "a..b", "...", "x/.y/z"};
    static const char *const bad[] = {"", "/abs", "../x", "a/../b", "a/..", ".", "./a",
                                      "a//b", "a/", "a\001b", "a\x7f", "\xff\xfe",
                                      "\xc0\xaf", "a/\xed\xa0\x80"};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++)
        assert_true(ttsm__hub_path_ok(good[i]));
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        if (ttsm__hub_path_ok(bad[i]))
            fail_msg("accepted unsafe path \"%s\"", bad[i]);
    char longseg[300], longpath[TTSM__HUB_PATH_MAX + 10];
    memset(longseg, 'a', 256);
    longseg[256] = '\0';
    assert_false(ttsm__hub_path_ok(longseg));
    for (size_t i = 0; i < sizeof longpath - 1; i++)
        longpath[i] = i % 100 == 99 ? '/' : 'b';
    longpath[sizeof longpath - 1] = '\0';
    assert_false(ttsm__hub_path_ok(longpath));
}

static void test_repo_ids_and_folders(void **state)
{
    (void)state;
    assert_true(ttsm__hub_repo_id_ok("ResembleAI/chatterbox"));
    assert_true(ttsm__hub_repo_id_ok("gpt2"));
    assert_true(ttsm__hub_repo_id_ok("havok2/Kartoffelbox-v0.1_0.65h2"));
    static const char *const bad[] = {"", "/x", "x/", "a/b/c", "a--b/c", "a/b..c", "../x",
                                      "a b/c", ".a/b", "a/b-", "a/b?x"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        if (ttsm__hub_repo_id_ok(bad[i]))
            fail_msg("accepted repo id \"%s\"", bad[i]);
    char folder[256], id[128];
    ttsm__hub_repo r = {"SayanoAI/RVC-Studio", TTSM__REPO_DATASET}, back;
    assert_int_equal(ttsm__hub_folder(&r, folder, sizeof folder), 0);
    assert_string_equal(folder, "datasets--SayanoAI--RVC-Studio");
    assert_int_equal(ttsm__hub_folder_repo(folder, &back, id, sizeof id), 0);
    assert_string_equal(back.id, "SayanoAI/RVC-Studio");
    assert_int_equal(back.kind, TTSM__REPO_DATASET);
    r = (ttsm__hub_repo){"org/name", TTSM__REPO_MODEL};
    assert_int_equal(ttsm__hub_folder(&r, folder, sizeof folder), 0);
    assert_string_equal(folder, "models--org--name");
    assert_int_equal(ttsm__hub_folder_repo("blobs", &back, id, sizeof id), -1);
    assert_int_equal(ttsm__hub_folder_repo("models--a--b--c", &back, id, sizeof id), -1);
    r.id = "a/../b";
    assert_int_equal(ttsm__hub_folder(&r, folder, sizeof folder), -1);
    assert_true(ttsm__hub_is_commit(C1));
    assert_false(ttsm__hub_is_commit("0123456789ABCDEF0123456789abcdef01234567"));
    assert_false(ttsm__hub_is_commit("main"));
}

static void test_urls(void **state)
{
    (void)state;
    char out[TTSM__URL_MAX];
    assert_int_equal(ttsm__url_resolve("http://h:1/org/x/resolve/main/a.json",
                                       "/api/resolve-cache/models/org/x/" C1 "/a.json?etag=%22e%22",
                                       out, sizeof out),
                     0);
    assert_string_equal(out, "http://h:1/api/resolve-cache/models/org/x/" C1 "/a.json?etag=%22e%22");
    assert_int_equal(ttsm__url_resolve("https://hub/a/b", "https://cdn.example/lfs/x?s=1", out,
                                       sizeof out),
                     0);
    assert_string_equal(out, "https://cdn.example/lfs/x?s=1");
    assert_int_equal(ttsm__url_resolve("https://hub/a/b", "file:///etc/passwd", out, sizeof out),
                     -1);
    assert_int_equal(ttsm__url_resolve("https://hub/a/b", "/x", out, 10), -1);
    /* Origins: one server is one origin, whatever the spelling. */
    assert_int_equal(ttsm__url_origin("https://HuggingFace.co/org/x", out, sizeof out), 0);
    assert_string_equal(out, "https://huggingface.co:443");
    char o2[256];
    assert_int_equal(ttsm__url_origin("https://huggingface.co:443/api", o2, sizeof o2), 0);
    assert_string_equal(out, o2);
    assert_int_equal(ttsm__url_origin("http://127.0.0.1:8080/x", out, sizeof out), 0);
    assert_string_equal(out, "http://127.0.0.1:8080");
    assert_int_equal(ttsm__url_origin("ftp://x/y", out, sizeof out), -1);
    assert_true(ttsm__url_is_relative("/api/x"));
    assert_true(ttsm__url_is_relative("x/y?a=http://z"));
    assert_false(ttsm__url_is_relative("//cdn/x"));
    assert_false(ttsm__url_is_relative("https://cdn/x"));
    ttsm__url_for_message("https://cdn/lfs/x?signature=secret#f", out, sizeof out);
    assert_string_equal(out, "https://cdn/lfs/x");
}

static int header(ttsm__http_resp *r, const char *line)
{
    return ttsm__http_parse_header(r, line, strlen(line));
}

static void test_headers(void **state)
{
    (void)state;
    ttsm__http_resp *r = malloc(sizeof *r);
    ttsm__http_resp_reset(r);
    assert_int_equal(header(r, "HTTP/1.1 302 Found\r\n"), 0);
    assert_int_equal(r->status, 302);
    assert_int_equal(header(r, "location: https://cdn/lfs/1?x=2\r\n"), 0);
    assert_int_equal(header(r, "X-Linked-Size:   4194304  \r\n"), 0);
    assert_int_equal(header(r, "Content-Length: 123\r\n"), 0);
    assert_int_equal(header(r, "X-Linked-Etag: \"" SHA_A "\"\r\n"), 0);
    assert_int_equal(header(r, "X-Repo-Commit: " C1 "\r\n"), 0);
    assert_int_equal(header(r, "x-error-code: GatedRepo\r\n"), 0);
    assert_int_equal(header(r, "Link: <https://h/a?cursor=1>; rel=\"prev\", "
                               "<https://h/a?cursor=2>; rel=\"next\"\r\n"),
                     0);
    assert_int_equal(header(r, "no colon here\r\n"), 0);
    assert_string_equal(r->location, "https://cdn/lfs/1?x=2");
    assert_int_equal(r->linked_size, 4194304);
    assert_int_equal(r->content_length, 123);
    assert_string_equal(r->linked_etag, "\"" SHA_A "\"");
    assert_string_equal(r->commit, C1);
    assert_string_equal(r->error_code, "GatedRepo");
    assert_string_equal(r->link_next, "https://h/a?cursor=2");
    /* Sizes that are not plain byte counts are absent, not misread. */
    static const char *const sizes[] = {"Content-Length: -1\r\n", "Content-Length: 1e9\r\n",
                                        "Content-Length: 12 3\r\n",
                                        "Content-Length: 99999999999999999999\r\n",
                                        "Content-Length:\r\n"};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        assert_int_equal(header(r, sizes[i]), 0);
        assert_int_equal(r->content_length, -1);
    }
    /* A new response starts clean (an interim 100, then the answer). */
    assert_int_equal(header(r, "HTTP/1.1 100 Continue\r\n"), 0);
    assert_int_equal(r->status, 100);
    assert_string_equal(r->location, "");
    assert_int_equal(r->linked_size, -1);
    assert_int_equal(header(r, "HTTP/2 404 \r\n"), 0);
    assert_int_equal(r->status, 404);
    /* A value longer than its field fails the response, naming the header. */
    char *big = malloc(TTSM__URL_MAX + 64);
    int n = snprintf(big, TTSM__URL_MAX + 64, "Location: /");
    memset(big + n, 'x', TTSM__URL_MAX);
    strcpy(big + n + TTSM__URL_MAX, "\r\n");
    assert_int_equal(header(r, big), -1);
    assert_string_equal(r->overlong, "Location");
    /* A long error message is cut, never fatal. */
    memcpy(big, "X-Error-Message: ", 17);
    assert_int_equal(header(r, big), 0);
    assert_int_equal(strlen(r->error_message), sizeof r->error_message - 1);
    free(big);
    free(r);
}

static void test_listings(void **state)
{
    (void)state;
    char commit[41];
    ttsm__hub_list l = {0};
    ttsm_error err;
    const char *rev = "{\"id\": \"o/n\", \"sha\": \"" C1 "\", \"siblings\": [{\"rfilename\": "
                      "\"a.json\"}, {\"rfilename\": \"sub dir/b.bin\", \"size\": 5}, {}]}";
    tu_assert_ok(ttsm__hub_parse_revision("o/n", rev, strlen(rev), commit, &l, &err), &err);
    assert_string_equal(commit, C1);
    assert_int_equal(l.n, 2);
    assert_non_null(ttsm__hub_list_find(&l, "sub dir/b.bin"));
    assert_int_equal(ttsm__hub_list_find(&l, "sub dir/b.bin")->size, 5);
    assert_int_equal(ttsm__hub_list_find(&l, "a.json")->size, -1);
    assert_null(ttsm__hub_list_find(&l, "c"));
    ttsm__hub_list_free(&l);
    static const char *const bad_rev[] = {
        "{\"sha\": \"main\"}", "[]", "{\"sha\": \"" C1 "\", \"siblings\": 3}",
        "{\"sha\": \"" C1 "\", \"siblings\": [{\"rfilename\": \"../escape.bin\"}]}",
        "{\"sha\": \"" C1 "\", \"siblings\": [{\"rfilename\": \"a/../../b\"}]}",
        "{\"sha\": \"" C1 "\", \"sha\": \"" C2 "\"}", "{\"sha\": \"" C1 "\""};
    for (size_t i = 0; i < sizeof bad_rev / sizeof *bad_rev; i++) {
        ttsm_status st = ttsm__hub_parse_revision("o/n", bad_rev[i], strlen(bad_rev[i]), commit,
                                                  &l, &err);
        tu_assert_error(st, &err, TTSM_ERR_FORMAT, "o/n");
        ttsm__hub_list_free(&l);
    }
    const char *tree = "[{\"type\": \"directory\", \"path\": \"d/e\", \"size\": 0},"
                       " {\"type\": \"file\", \"path\": \"d/x.bin\", \"size\": 7, \"oid\": \"o\","
                       " \"lfs\": {\"oid\": \"" SHA_A "\", \"size\": 7}}]";
    tu_assert_ok(ttsm__hub_parse_tree("o/n", "d", tree, strlen(tree), &l, &err), &err);
    assert_int_equal(l.n, 1);
    assert_string_equal(l.e[0].path, "d/x.bin");
    assert_int_equal(l.e[0].size, 7);
    ttsm__hub_list_free(&l);
    static const char *const bad_tree[] = {
        "{}", "[{\"type\": \"file\", \"path\": \"x.bin\", \"size\": 1}]", /* outside d/ */
        "[{\"type\": \"file\", \"path\": \"d/../x\", \"size\": 1}]",
        "[{\"type\": \"directory\", \"path\": \"../up\"}]",
        "[{\"type\": \"file\", \"path\": \"d/x\", \"size\": -1}]",
        "[{\"type\": \"file\", \"path\": \"d/x\", \"size\": \"7\"}]",
        "[{\"type\": \"file\", \"path\": \"d/x\", \"size\": 99999999999999999}]"};
    for (size_t i = 0; i < sizeof bad_tree / sizeof *bad_tree; i++) {
        ttsm_status st =
            ttsm__hub_parse_tree("o/n", "d", bad_tree[i], strlen(bad_tree[i]), &l, &err);
        tu_assert_error(st, &err, TTSM_ERR_FORMAT, "o/n");
        ttsm__hub_list_free(&l);
    }
}

static char *read_link(const char *p)
{
    static char buf[PATH_MAX];
    ssize_t n = readlink(p, buf, sizeof buf - 1);
    if (n < 0)
        fail_msg("%s is not a link: %s", p, strerror(errno));
    buf[n] = '\0';
    return buf;
}

static void test_layout(void **state)
{
    (void)state;
    char *dir = strdup(tu_mkdtemp());
    char *rd = tu_path(dir, "models--o--n");
    ttsm_error err;
    char commit[41];
    tu_assert_ok(ttsm__hub_write_ref(rd, "main", C1, &err), &err);
    tu_assert_ok(ttsm__hub_write_ref(rd, "refs/pr/1", C2, &err), &err);
    tu_assert_ok(ttsm__hub_write_ref(rd, C2, C2, &err), &err); /* a commit: no ref */
    assert_int_equal(ttsm__hub_read_ref(rd, "main", commit), 0);
    assert_string_equal(commit, C1);
    assert_int_equal(ttsm__hub_read_ref(rd, "refs/pr/1", commit), 0);
    assert_string_equal(commit, C2);
    char *p = tu_fmt("%s/refs/%s", rd, C2);
    assert_int_equal(access(p, F_OK), -1);
    free(p);
    size_t len;
    p = tu_fmt("%s/refs/main", rd);
    unsigned char *text = tu_read_file(p, &len);
    assert_int_equal(len, 40); /* the commit, no newline */
    free(text);
    free(p);
    tu_assert_error(ttsm__hub_write_ref(rd, "../../evil", C1, &err), &err,
                    TTSM_ERR_INVALID_ARGUMENT, "invalid ref");
    /* Links are relative, one ../ more per folder, and replace a wrong one. */
    tu_assert_ok(ttsm__hub_link(rd, C1, "a.json", SHA_A, &err), &err);
    tu_assert_ok(ttsm__hub_link(rd, C1, "x/y z/ü.bin", SHA_B, &err), &err);
    p = tu_fmt("%s/snapshots/%s/a.json", rd, C1);
    assert_string_equal(read_link(p), "../../blobs/" SHA_A);
    free(p);
    p = tu_fmt("%s/snapshots/%s/x/y z/ü.bin", rd, C1);
    assert_string_equal(read_link(p), "../../../../blobs/" SHA_B);
    tu_assert_ok(ttsm__hub_link(rd, C1, "x/y z/ü.bin", SHA_A, &err), &err);
    assert_string_equal(read_link(p), "../../../../blobs/" SHA_A);
    free(p);
    tu_assert_error(ttsm__hub_link(rd, C1, "../up.bin", SHA_A, &err), &err, TTSM_ERR_FORMAT,
                    "unsafe snapshot entry");
    tu_assert_error(ttsm__hub_link(rd, "main", "a", SHA_A, &err), &err, TTSM_ERR_FORMAT,
                    "unsafe snapshot entry");
    tu_assert_error(ttsm__hub_link(rd, C1, "a", "../x", &err), &err, TTSM_ERR_FORMAT,
                    "unsafe snapshot entry");
    /* Markers. */
    assert_false(ttsm__hub_marked_absent(rd, C1, "sub/gone.pt"));
    tu_assert_ok(ttsm__hub_mark_absent(rd, C1, "sub/gone.pt", &err), &err);
    assert_true(ttsm__hub_marked_absent(rd, C1, "sub/gone.pt"));
    tu_assert_error(ttsm__hub_mark_absent(rd, C1, "sub/../../x", &err), &err, TTSM_ERR_FORMAT,
                    "unsafe marker");
    /* Nothing of the temporary names is left. */
    assert_int_equal(tu_system("find '%s' -name '*.tmp' | grep -q .", dir) == 0, 0);
    tu_rmtree(dir);
    free(rd);
    free(dir);
}

static void blob(const char *rd, const char *sha, size_t n)
{
    char *d = tu_path(rd, "blobs");
    mkdir(d, 0755);
    char *data = calloc(1, n);
    free(tu_write_file(d, sha, data, n));
    free(data);
    free(d);
}

static void test_remove(void **state)
{
    (void)state;
    char *cache = strdup(tu_mkdtemp());
    char *rd = tu_path(cache, "models--o--n");
    ttsm_error err;
    ttsm__hub_repo repo = {"o/n", TTSM__REPO_MODEL};
    /* Two snapshots; "a" in both (one blob), "b" only in the first, "keep"
     * (another model's) shares b's blob in the second. */
    tu_assert_ok(ttsm__hub_write_ref(rd, "main", C2, &err), &err);
    tu_assert_ok(ttsm__hub_link(rd, C1, "m/a", SHA_A, &err), &err);
    tu_assert_ok(ttsm__hub_link(rd, C2, "m/a", SHA_A, &err), &err);
    tu_assert_ok(ttsm__hub_link(rd, C1, "m/b", SHA_B, &err), &err);
    tu_assert_ok(ttsm__hub_link(rd, C2, "keep", SHA_B, &err), &err);
    blob(rd, SHA_A, 10);
    blob(rd, SHA_B, 20);
    const char *paths[] = {"m/a", "m/b"};
    ttsm__hub_removal r;
    memset(&r, 0, sizeof r);
    tu_assert_ok(ttsm__hub_remove(cache, &repo, paths, 2, 1, &r, &err), &err);
    assert_int_equal(r.n_links, 3);
    assert_int_equal(r.n_blobs, 1); /* b's blob is still referenced by "keep" */
    assert_int_equal(r.freed, 10);
    assert_false(r.repo_removed);
    char *p = tu_fmt("%s/snapshots/%s/m/a", rd, C1);
    assert_int_equal(access(p, F_OK), 0); /* a dry run changes nothing */
    ttsm__hub_removal_free(&r);
    tu_assert_ok(ttsm__hub_remove(cache, &repo, paths, 2, 0, &r, &err), &err);
    assert_int_equal(r.n_links, 3);
    assert_int_equal(access(p, F_OK), -1);
    free(p);
    p = tu_fmt("%s/blobs/%s", rd, SHA_B);
    assert_int_equal(access(p, F_OK), 0);
    free(p);
    p = tu_fmt("%s/snapshots/%s", rd, C1);
    assert_int_equal(access(p, F_OK), -1); /* the emptied snapshot folder went */
    free(p);
    ttsm__hub_removal_free(&r);
    /* The last entry: the folder goes whole. */
    const char *last[] = {"keep"};
    tu_assert_ok(ttsm__hub_remove(cache, &repo, last, 1, 0, &r, &err), &err);
    assert_true(r.repo_removed);
    assert_int_equal(access(rd, F_OK), -1);
    ttsm__hub_removal_free(&r);
    const char *unsafe[] = {"../x"};
    tu_assert_error(ttsm__hub_remove(cache, &repo, unsafe, 1, 1, &r, &err), &err,
                    TTSM_ERR_INVALID_ARGUMENT, "unsafe path");
    ttsm__hub_removal_free(&r);
    tu_rmtree(cache);
    free(rd);
    free(cache);
}

static void digest_hex(EVP_MD_CTX *md, char out[65])
{
    unsigned char d[32];
    unsigned n = 0;
    assert_int_equal(EVP_DigestFinal_ex(md, d, &n), 1);
    for (unsigned i = 0; i < n; i++)
        snprintf(out + 2 * i, 3, "%02x", d[i]);
}

/* The writer thread: chunks of every size (across its 4 MiB buffers) land
 * in order, hashed as written; a flush in the middle leaves the file at
 * exactly the bytes queued; a write error comes back. */
static void test_writer(void **state)
{
    (void)state;
    char *dir = strdup(tu_mkdtemp());
    char *path = tu_path(dir, "out");
    size_t total = (11u << 20) + 12345;
    unsigned char *data = malloc(total);
    for (size_t i = 0; i < total; i++)
        data[i] = (unsigned char)(i * 2654435761u >> 13);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    EVP_MD_CTX *md = EVP_MD_CTX_new(), *ref = EVP_MD_CTX_new();
    EVP_DigestInit_ex(md, EVP_sha256(), NULL);
    EVP_DigestInit_ex(ref, EVP_sha256(), NULL);
    EVP_DigestUpdate(ref, data, total);
    ttsm__writer *w = ttsm__writer_start(fd, md);
    assert_non_null(w);
    size_t off = 0, step = 1;
    while (off < total) {
        size_t n = step < total - off ? step : total - off;
        assert_int_equal(ttsm__writer_put(w, (const char *)data + off, n), 0);
        off += n;
        step = step * 3 + 7;
        if (off > (5u << 20) && off < (5u << 20) + (1u << 20)) {
            assert_int_equal(ttsm__writer_flush(w), 0);
            struct stat sb;
            assert_int_equal(fstat(fd, &sb), 0);
            assert_int_equal((size_t)sb.st_size, off);
        }
    }
    ttsm__writer_stop(w);
    char a[65], b[65];
    digest_hex(md, a);
    digest_hex(ref, b);
    assert_string_equal(a, b);
    close(fd);
    size_t len;
    unsigned char *back = tu_read_file(path, &len);
    assert_int_equal(len, total);
    assert_memory_equal(back, data, total);
    free(back);
    /* A file that cannot be written: the error comes back, nothing hangs. */
    fd = open(path, O_RDONLY);
    EVP_DigestInit_ex(md, EVP_sha256(), NULL);
    w = ttsm__writer_start(fd, md);
    assert_non_null(w);
    int e = 0;
    for (size_t i = 0; i < 4 && !e; i++)
        e = ttsm__writer_put(w, (const char *)data, 5u << 20);
    if (!e)
        e = ttsm__writer_flush(w);
    assert_int_equal(e, EBADF);
    ttsm__writer_stop(w);
    close(fd);
    EVP_MD_CTX_free(md);
    EVP_MD_CTX_free(ref);
    free(data);
    tu_rmtree(dir);
    free(path);
    free(dir);
}

/* jansson reports some failed allocations of its lexer as syntax errors
 * (test_torture.c counts them too): only those may read as FORMAT. */
static int in_jansson(void *p)
{
    Dl_info info;
    return p && dladdr(p, &info) && info.dli_fname && strstr(info.dli_fname, "jansson");
}

/* Every allocation of the parsers and the layout writers fails in turn:
 * each failure is TTSM_ERR_OUT_OF_MEMORY (or a clean I/O error) and leaks
 * nothing (ASan checks the leaks). */
static void test_allocation_failures(void **state)
{
    (void)state;
    const char *rev = "{\"sha\": \"" C1 "\", \"siblings\": [{\"rfilename\": \"a\"}, "
                      "{\"rfilename\": \"b/c\", \"size\": 3}]}";
    char *cache = strdup(tu_mkdtemp());
    char *rd = tu_path(cache, "models--o--n");
    long failures = 0;
    for (long n = 1; n < 1000; n++) {
        char commit[41];
        ttsm__hub_list l = {0};
        ttsm_error err;
        ttsm__alloc_fail_after(n);
        ttsm_status st = ttsm__hub_parse_revision("o/n", rev, strlen(rev), commit, &l, &err);
        if (st == TTSM_OK)
            st = ttsm__hub_link(rd, C1, "b/c", SHA_A, &err);
        ttsm__hub_removal r;
        memset(&r, 0, sizeof r);
        const char *paths[] = {"b/c"};
        if (st == TTSM_OK)
            st = ttsm__hub_remove(cache, &(ttsm__hub_repo){"o/n", 0}, paths, 1, 1, &r, &err);
        void *site = ttsm__alloc_fail_site();
        ttsm__alloc_fail_after(0);
        ttsm__hub_list_free(&l);
        ttsm__hub_removal_free(&r);
        if (st == TTSM_OK && !site)
            break;
        if (st != TTSM_OK) {
            failures++;
            if (st != TTSM_ERR_OUT_OF_MEMORY && st != TTSM_ERR_IO &&
                !(st == TTSM_ERR_FORMAT && in_jansson(site)))
                fail_msg("allocation %ld: %s: %s", n, ttsm_status_name(st), err.message);
        }
    }
    assert_true(failures > 5);
    tu_rmtree(cache);
    free(rd);
    free(cache);
}

int main(void)
{
    json_set_alloc_funcs(ttsm__malloc, ttsm__free);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_path_ok),       cmocka_unit_test(test_repo_ids_and_folders),
        cmocka_unit_test(test_urls),          cmocka_unit_test(test_headers),
        cmocka_unit_test(test_listings),      cmocka_unit_test(test_layout),
        cmocka_unit_test(test_remove),        cmocka_unit_test(test_writer),
        cmocka_unit_test(test_allocation_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
