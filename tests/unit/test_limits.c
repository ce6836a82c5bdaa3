/* test_limits.c - every length, count and depth a file can claim has a cap: a
 * refusal per cap not tested by the readers' own tests (docs/reliability.md has
 * the list), each run in a child that reports its peak RSS growth and time, so
 * claims like 2^60 tensors must fail fast and cheap. Big inputs are sparse. */
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "formats/table.h"
#include "base/strbuf.h"
#include "mgr_util.h"

#define FIXTURES TTSM_SOURCE_DIR "/tests/fixtures"
#define MAX_RSS_GROWTH_KB (48 * 1024) /* refusing a claim must not allocate it */
#define MAX_SECONDS 3.0


/* ---- running a refusal in a child, measured ------------------------------ */

typedef ttsm_status (*op_fn)(const void *ctx, ttsm_error *err);

typedef struct outcome {
    ttsm_status st;
    long rss_growth_kb;
    double seconds;
    char message[TTSM_ERROR_MESSAGE_MAX];
} outcome;

static long peak_rss_kb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

/* Runs op in a child: the parent's heap and the previous cases do not blur
 * the peak, and a crash fails one case, not the whole test. */
static outcome measure(op_fn op, const void *ctx)
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        /* start the peak from here (Linux: "5" resets VmHWM) */
        int cr = open("/proc/self/clear_refs", O_WRONLY);
        if (cr >= 0) {
            if (write(cr, "5", 1) != 1) { /* an old kernel: the peak is the fork's */
            }
            close(cr);
        }
        outcome o;
        memset(&o, 0, sizeof o);
        ttsm_error err;
        ttsm_error_clear(&err);
        long before = peak_rss_kb();
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        o.st = op(ctx, &err);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        o.rss_growth_kb = peak_rss_kb() - before;
        o.seconds = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
        snprintf(o.message, sizeof o.message, "%s", err.message);
        ssize_t w = write(fds[1], &o, sizeof o);
        _exit(w == (ssize_t)sizeof o ? 0 : 1);
    }
    close(fds[1]);
    outcome o;
    memset(&o, 0, sizeof o);
    ssize_t r = read(fds[0], &o, sizeof o);
    close(fds[0]);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || r != (ssize_t)sizeof o)
        fail_msg("the child died (status %d): a crash, not a refusal", status);
    return o;
}

static void expect_refusal(const char *what, op_fn op, const void *ctx, ttsm_status code,
                           const char *needle)
{
    outcome o = measure(op, ctx);
    printf("limit %-52s %-22s %8.1f ms, peak RSS +%ld KiB\n", what, ttsm_status_name(o.st),
           o.seconds * 1e3, o.rss_growth_kb);
    if (o.st != code || !strstr(o.message, needle))
        fail_msg("%s: expected %s with \"%s\", got %s: %s", what, ttsm_status_name(code), needle,
                 ttsm_status_name(o.st), o.message);
    if (o.rss_growth_kb > MAX_RSS_GROWTH_KB || o.seconds > MAX_SECONDS)
        fail_msg("%s: refused, but used %ld KiB more and %.2f s", what, o.rss_growth_kb,
                 o.seconds);
}

/* ---- operations ------------------------------------------------------------ */

static ttsm_status open_file(const void *path, ttsm_error *err)
{
    return mu_open_once(path, 0, err);
}

static ttsm_status open_file_read_mode(const void *path, ttsm_error *err)
{
    return mu_open_once(path, 1, err);
}

static ttsm_status load_dir(const void *path, ttsm_error *err)
{
    return ttsm_engines_load_dir(path, err);
}

static ttsm_status load_file_engine(const void *path, ttsm_error *err)
{
    return mu_load_once("file", path, err);
}

/* ---- building inputs ----------------------------------------------------- */

static void put16(unsigned char *p, unsigned v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
}
static void put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}
static void put64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static char *write_bytes(const char *name, const void *data, size_t len)
{
    return tu_write_file(tu_dir, name, data, len);
}

/* A file of `size` bytes, all holes but `head` at 0 and `tail` at the end. */
static char *write_sparse(const char *name, uint64_t size, const void *head, size_t head_len,
                          const void *tail, size_t tail_len)
{
    char *p = tu_path(tu_dir, name);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, (off_t)size), 0);
    if (head_len)
        assert_int_equal(pwrite(fd, head, head_len, 0), (ssize_t)head_len);
    if (tail_len)
        assert_int_equal(pwrite(fd, tail, tail_len, (off_t)(size - tail_len)), (ssize_t)tail_len);
    close(fd);
    return p;
}

/* A stored zip of `n` members. */
typedef struct member {
    const char *name;
    const void *data;
    size_t len;
} member;

static unsigned char *zip_build(const member *m, size_t n, size_t *out_len)
{
    size_t cap = 1024;
    for (size_t i = 0; i < n; i++)
        cap += 2 * (46 + strlen(m[i].name)) + m[i].len;
    unsigned char *z = calloc(1, cap);
    size_t at = 0, *off = calloc(n, sizeof *off);
    for (size_t i = 0; i < n; i++) {
        uint32_t crc = (uint32_t)crc32(0, m[i].data, (uInt)m[i].len);
        size_t nl = strlen(m[i].name);
        off[i] = at;
        memcpy(z + at, "PK\3\4", 4);
        put16(z + at + 4, 20);
        put32(z + at + 14, crc);
        put32(z + at + 18, (uint32_t)m[i].len);
        put32(z + at + 22, (uint32_t)m[i].len);
        put16(z + at + 26, (unsigned)nl);
        memcpy(z + at + 30, m[i].name, nl);
        memcpy(z + at + 30 + nl, m[i].data, m[i].len);
        at += 30 + nl + m[i].len;
    }
    size_t cd = at;
    for (size_t i = 0; i < n; i++) {
        size_t nl = strlen(m[i].name);
        memcpy(z + at, "PK\1\2", 4);
        put16(z + at + 4, 20);
        put16(z + at + 6, 20);
        put32(z + at + 16, (uint32_t)crc32(0, m[i].data, (uInt)m[i].len));
        put32(z + at + 20, (uint32_t)m[i].len);
        put32(z + at + 24, (uint32_t)m[i].len);
        put16(z + at + 28, (unsigned)nl);
        put32(z + at + 42, (uint32_t)off[i]);
        memcpy(z + at + 46, m[i].name, nl);
        at += 46 + nl;
    }
    memcpy(z + at, "PK\5\6", 4);
    put16(z + at + 8, (unsigned)n);
    put16(z + at + 10, (unsigned)n);
    put32(z + at + 12, (uint32_t)(at - cd));
    put32(z + at + 16, (uint32_t)cd);
    at += 22;
    free(off);
    *out_len = at;
    return z;
}

/* A PyTorch archive whose data.pkl is `pkl`, with a 4-byte storage "0". */
static char *write_torch(const char *name, const void *pkl, size_t len, const char *version)
{
    member m[3] = {{"archive/data.pkl", pkl, len},
                   {"archive/version", version, strlen(version)},
                   {"archive/data/0", "\0\0\x80?", 4}};
    size_t zl;
    unsigned char *z = zip_build(m, 3, &zl);
    char *p = write_bytes(name, z, zl);
    free(z);
    return p;
}

/* ---- the headline claims, from the readers' fixtures and new files ------- */

static void test_huge_claims_are_cheap(void **state)
{
    (void)state;
    static const struct {
        const char *file, *what, *needle;
    } fixtures[] = {
        {"gguf/tensor_count_huge.gguf", "GGUF: 2^60 tensors", "tensor"},
        {"gguf/kv_count_huge.gguf", "GGUF: 2^62 key/values", ""},
        {"gguf/string_value_over_cap.gguf", "GGUF: string over 64 MiB", ""},
        {"gguf/array_len_over_cap.gguf", "GGUF: array over 2^24 elements", ""},
        {"gguf/key_len_over_cap.gguf", "GGUF: key over 64 KiB", ""},
        {"gguf/nested_too_deep.gguf", "GGUF: arrays nested past 8", ""},
        {"gguf/tensor_offset_huge.gguf", "GGUF: tensor offset near 2^64", ""},
        {"safetensors/bad_header_too_large.safetensors", "safetensors: header over 100 MB", ""},
        {"safetensors/bad_element_count_overflow.safetensors", "safetensors: shape past 2^64", ""},
        {"torch/malicious/billion_laughs.pt", "pickle: shared references, 2^k visits", ""},
        {"torch/malicious/deep_lists.pt", "pickle: lists nested past 128", ""},
        {"torch/malicious/zip_bomb_ratio.pt", "zip: deflate bomb (ratio)", ""},
    };
    for (size_t i = 0; i < sizeof fixtures / sizeof fixtures[0]; i++) {
        char *path = tu_fmt("%s/%s", FIXTURES, fixtures[i].file);
        expect_refusal(fixtures[i].what, open_file, path, TTSM_ERR_FORMAT, fixtures[i].needle);
        expect_refusal(fixtures[i].what, open_file_read_mode, path, TTSM_ERR_FORMAT,
                       fixtures[i].needle);
        free(path);
    }

    /* GGUF v3 header alone: 2^60 tensors, no key/values */
    unsigned char g[24];
    memcpy(g, "GGUF", 4);
    put32(g + 4, 3);
    put64(g + 8, 1ull << 60);
    put64(g + 16, 0);
    char *p = write_bytes("claims.gguf", g, sizeof g);
    expect_refusal("GGUF: bare header claiming 2^60 tensors", open_file, p, TTSM_ERR_FORMAT,
                   "claims.gguf");
    free(p);

    /* safetensors header length 2^60 */
    unsigned char s[16];
    put64(s, 1ull << 60);
    memcpy(s + 8, "{}      ", 8);
    p = write_bytes("claims.safetensors", s, sizeof s);
    expect_refusal("safetensors: header length 2^60", open_file, p, TTSM_ERR_FORMAT,
                   "claims.safetensors");
    free(p);

    /* pickle: BINBYTES8 of 2^60 bytes; LONG4 of 2^31 bytes; BINUNICODE8 */
    static const unsigned char b8[] = {0x80, 4, 0x8e, 0, 0, 0, 0, 0, 0, 0, 0x10, '.'};
    static const unsigned char l4[] = {0x80, 2, 0x8b, 0xff, 0xff, 0xff, 0x7f, '.'};
    static const unsigned char u8[] = {0x80, 4, 0x8d, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, '.'};
    p = write_torch("b8.pt", b8, sizeof b8, "3\n");
    expect_refusal("pickle: BINBYTES8 of 2^60 bytes", open_file, p, TTSM_ERR_FORMAT, "b8.pt");
    free(p);
    p = write_torch("l4.pt", l4, sizeof l4, "3\n");
    expect_refusal("pickle: LONG4 of 2^31 bytes", open_file, p, TTSM_ERR_FORMAT,
                   "the limit is 1024");
    free(p);
    p = write_torch("u8.pt", u8, sizeof u8, "3\n");
    expect_refusal("pickle: BINUNICODE8 of 2^63 bytes", open_file, p, TTSM_ERR_FORMAT, "u8.pt");
    free(p);
}

/* ---- caps with no test elsewhere ----------------------------------------- */

/* zip: an end record claiming 2^24 + 1 entries, and a central directory
 * over 1 GiB - in sparse files big enough that the claims fit the file. */
static void test_zip_caps(void **state)
{
    (void)state;
    const uint64_t entries = (1ull << 24) + 1, cd_size = entries * 46;
    unsigned char tail[56 + 20 + 22];
    memset(tail, 0, sizeof tail);
    /* ZIP64 end record, its locator, then the classic end record */
    uint64_t size = cd_size + sizeof tail;
    unsigned char *e64 = tail, *loc = tail + 56, *eocd = tail + 76;
    memcpy(e64, "PK\6\6", 4);
    put64(e64 + 4, 44);
    put16(e64 + 12, 45);
    put16(e64 + 14, 45);
    put64(e64 + 24, entries);
    put64(e64 + 32, entries);
    put64(e64 + 40, cd_size);
    put64(e64 + 48, 0);
    memcpy(loc, "PK\6\7", 4);
    put64(loc + 8, cd_size);
    put32(loc + 16, 1);
    memcpy(eocd, "PK\5\6", 4);
    put16(eocd + 8, 0xffff);
    put16(eocd + 10, 0xffff);
    put32(eocd + 12, 0xffffffffu);
    put32(eocd + 16, 0xffffffffu);
    static const unsigned char pk[4] = {'P', 'K', 3, 4};
    char *p = write_sparse("entries.pt", size, pk, 4, tail, sizeof tail);
    expect_refusal("zip: 2^24 + 1 entries (ZIP64)", open_file, p, TTSM_ERR_FORMAT,
                   "limit 16777216 entries");
    free(p);

    const uint64_t big_cd = (1ull << 30) + 4096;
    size = big_cd + sizeof tail;
    put64(e64 + 24, 1000);
    put64(e64 + 32, 1000);
    put64(e64 + 40, big_cd);
    put64(loc + 8, big_cd);
    p = write_sparse("bigcd.pt", size, pk, 4, tail, sizeof tail);
    expect_refusal("zip: central directory over 1 GiB", open_file, p, TTSM_ERR_FORMAT,
                   "central directory too large");
    free(p);

    /* the end record is searched for in the last 64 KiB + 22 bytes only */
    size_t zl;
    static const char pkl[] = "\x80\x02}.";
    member m[2] = {{"archive/data.pkl", pkl, 4}, {"archive/version", "3\n", 2}};
    unsigned char *z = zip_build(m, 2, &zl);
    unsigned char *padded = calloc(1, zl + 70000);
    memcpy(padded, z, zl);
    put16(padded + zl - 2, 0); /* comment length 0, then 70000 stray bytes */
    p = write_bytes("far_eocd.pt", padded, zl + 70000);
    expect_refusal("zip: end record beyond the 64 KiB comment window", open_file, p,
                   TTSM_ERR_FORMAT, "end of central directory");
    free(p);
    free(padded);
    free(z);
}

/* PyTorch archive records: storage keys of at most 256 bytes, version
 * records of at most 64, dotted names of at most 64 KiB. */
static void test_torch_caps(void **state)
{
    (void)state;
    /* {"w": _rebuild_tensor_v2(persistent_id(("storage", FloatStorage, KEY, "cpu", 1)), ...)} */
    char key[301];
    memset(key, 'k', 300);
    key[300] = '\0';
    unsigned char pkl[1024];
    size_t n = 0;
#define ADDS(lit) (memcpy(pkl + n, (lit), sizeof(lit) - 1), n += sizeof(lit) - 1)
    ADDS("\x80\x02}X\x01\x00\x00\x00w");
    ADDS("ctorch._utils\n_rebuild_tensor_v2\n");
    ADDS("((X\x07\x00\x00\x00storagectorch\nFloatStorage\n");
    pkl[n++] = 'X';
    put32(pkl + n, 300);
    n += 4;
    memcpy(pkl + n, key, 300);
    n += 300;
    ADDS("X\x03\x00\x00\x00" "cpuK\x01tQ");
    ADDS("K\x00K\x01\x85K\x01\x85\x89" "ccollections\nOrderedDict\n)RtR");
    ADDS("s.");
#undef ADDS
    char *p = write_torch("longkey.pt", pkl, n, "3\n");
    expect_refusal("pytorch: storage key over 256 bytes", open_file, p, TTSM_ERR_FORMAT,
                   "bad storage key");
    free(p);

    char version[101];
    memset(version, '3', 100);
    version[100] = '\0';
    static const char empty[] = "\x80\x02}.";
    p = write_torch("longversion.pt", empty, 4, version);
    expect_refusal("pytorch: version record over 64 bytes", open_file, p, TTSM_ERR_FORMAT,
                   "longversion.pt");
    free(p);

    /* 70 nested dicts under 1000-byte keys over a tensor: its dotted name
     * would be 70 KiB */
    static const char leaf[] = "ctorch._utils\n_rebuild_tensor_v2\n"
                               "((X\x07\x00\x00\x00storagectorch\nFloatStorage\n"
                               "X\x01\x00\x00\x00" "0X\x03\x00\x00\x00" "cpuK\x01tQ"
                               "K\x00K\x01\x85K\x01\x85\x89" "ccollections\nOrderedDict\n)RtR";
    const int depth = 70, klen = 1000;
    size_t cap = 8 + (size_t)depth * (6 + (size_t)klen) + (size_t)depth + sizeof leaf + 8;
    unsigned char *q = malloc(cap);
    n = 0;
    q[n++] = 0x80;
    q[n++] = 2;
    for (int d = 0; d < depth; d++) {
        q[n++] = '}';
        q[n++] = 'X';
        put32(q + n, (uint32_t)klen);
        n += 4;
        memset(q + n, 'a' + d % 26, (size_t)klen);
        n += (size_t)klen;
    }
    memcpy(q + n, leaf, sizeof leaf - 1);
    n += sizeof leaf - 1;
    for (int d = 0; d < depth; d++)
        q[n++] = 's';
    q[n++] = '.';
    p = write_torch("longname.pt", q, n, "3\n");
    expect_refusal("pytorch: dotted name over 64 KiB", open_file, p, TTSM_ERR_FORMAT,
                   "name too long");
    free(p);
    free(q);
}

/* safetensors and sharded indexes: a tensor name over 64 KiB, more than
 * 4096 shards, an index over 100 MB, JSON nested past jansson's depth. */
static void test_safetensors_caps(void **state)
{
    (void)state;
    size_t nl = 70000;
    size_t hl = nl + 64;
    char *h = malloc(hl + 16);
    int k = snprintf(h + 8, hl + 8, "{\"");
    memset(h + 8 + k, 'n', nl);
    k += (int)nl;
    k += snprintf(h + 8 + k, hl + 8 - (size_t)k,
                  "\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}");
    while (k % 8)
        h[8 + k++] = ' ';
    put64((unsigned char *)h, (uint64_t)k);
    h[8 + k] = 0;
    char *p = write_bytes("longname.safetensors", h, 8 + (size_t)k + 1);
    expect_refusal("safetensors: tensor name over 64 KiB", open_file, p, TTSM_ERR_FORMAT,
                   "bad tensor name");
    free(p);
    free(h);

    /* 4097 shards named: refused before any is opened */
    ttsm__sb idx = {0};
    ttsm__sb_adds(&idx, "{\"weight_map\": {");
    for (int i = 0; i <= 4096; i++)
        ttsm__sb_addf(&idx, "%s\"t%d\": \"s%d.safetensors\"", i ? ", " : "", i, i);
    ttsm__sb_adds(&idx, "}}");
    assert_false(idx.failed);
    p = write_bytes("many.safetensors.index.json", idx.p, idx.len);
    ttsm__sb_free(&idx);
    expect_refusal("sharded index: 4097 shards", open_file, p, TTSM_ERR_FORMAT, "4097 shard files");
    free(p);

    /* an index file over 100 MB (sparse) */
    p = write_sparse("huge.safetensors.index.json", 100000001ull, "{", 1, "}", 1);
    expect_refusal("sharded index: file over 100 MB", open_file, p, TTSM_ERR_FORMAT,
                   "index too large");
    free(p);

    /* metadata nested 100,000 deep: jansson stops at its depth limit */
    size_t depth = 100000;
    char *deep = malloc(2 * depth + 64);
    size_t n = (size_t)sprintf(deep, "{\"metadata\": {\"x\": ");
    memset(deep + n, '[', depth);
    n += depth;
    memset(deep + n, ']', depth);
    n += depth;
    n += (size_t)sprintf(deep + n, "}, \"weight_map\": {\"a\": \"s.safetensors\"}}");
    p = write_bytes("deep.safetensors.index.json", deep, n);
    expect_refusal("sharded index: JSON nested 100,000 deep", open_file, p, TTSM_ERR_FORMAT,
                   "deep.safetensors.index.json");
    free(p);
    free(deep);
}

/* The manager and the registry: 1025 components in one model, a JSON
 * component over 256 MiB, a manifest over 4 MiB, 1025 manifests in a
 * folder. */
static ttsm_status load_json_engine(const void *path, ttsm_error *err)
{
    return mu_load_once("limits_json", path, err);
}

static void test_manager_and_registry_caps(void **state)
{
    (void)state;
    char *folder = tu_path(tu_dir, "many");
    mkdir(folder, 0755);
    for (int i = 0; i <= 1024; i++) {
        char name[32];
        snprintf(name, sizeof name, "c%04d.safetensors", i);
        free(mu_write_st(folder, name, 1, 0));
    }
    expect_refusal("model: 1025 components", load_file_engine, folder, TTSM_ERR_FORMAT,
                   "too many components");
    free(folder);

    ttsm_error err;
    tu_assert_ok(mu_register_file_engine("limits_json", TTSM_FILE_JSON, &err), &err);
    char *p = write_sparse("huge.json", (256ull << 20) + 1, "{", 1, "}", 1);
    expect_refusal("model: JSON component over 256 MiB", load_json_engine, p, TTSM_ERR_FORMAT,
                   "JSON too large");
    free(p);

    char *edir = tu_path(tu_dir, "bigmanifest");
    mkdir(edir, 0755);
    char *mp = tu_path(edir, "big.json");
    int fd = open(mp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_int_equal(ftruncate(fd, (5 << 20)), 0);
    assert_int_equal(pwrite(fd, "{", 1, 0), 1);
    close(fd);
    expect_refusal("registry: manifest over 4 MiB", load_dir, edir, TTSM_ERR_FORMAT,
                   "larger than 4194304 bytes");
    free(mp);
    free(edir);

    edir = tu_path(tu_dir, "manymanifests");
    mkdir(edir, 0755);
    for (int i = 0; i <= 1024; i++) {
        char name[32];
        snprintf(name, sizeof name, "e%04d.json", i);
        free(tu_write_file(edir, name, "{}", 2));
    }
    expect_refusal("registry: 1025 manifests in a folder", load_dir, edir, TTSM_ERR_FORMAT,
                   "more than 1024 *.json files");
    free(edir);
}

/* The string builder behind paths and messages refuses past 1 GiB without
 * reading its input. */
static void test_strbuf_cap(void **state)
{
    (void)state;
    ttsm__sb b = {0};
    ttsm__sb_adds(&b, "x");
    ttsm__sb_add(&b, "y", ((size_t)1 << 30) + 1);
    assert_true(b.failed);
    ttsm__sb_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_huge_claims_are_cheap),
        cmocka_unit_test(test_zip_caps),
        cmocka_unit_test(test_torch_caps),
        cmocka_unit_test(test_safetensors_caps),
        cmocka_unit_test(test_manager_and_registry_caps),
        cmocka_unit_test(test_strbuf_cap),
    };
    return cmocka_run_group_tests(tests, tu_dir_setup, tu_dir_teardown);
}
