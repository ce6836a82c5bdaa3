/* test_memory_bounds.c - memory bounded by the input: the five shapes of
 * file that made `ttsm inspect` hold far more than they are (a 1 MB zip with
 * a deflated 1 GiB storage, a 96 MB safetensors header of 1.6 M zero-size
 * tensors, GGUF arrays of 2^24 u8 and 4 x 2^22 f32, a 71 MB index of 1.5 M
 * entries), each run as the real CLI in a child process whose peak RSS
 * (wait4's ru_maxrss) must stay within 4 x the header bytes plus a constant.
 * The two safetensors-parser shapes held far more (about 20x and 5x their input)
 * while the headers went through a JSON tree; since the single-pass scanner
 * they are checked like the rest. Sanitizer builds
 * run smaller shapes and print figures only (shadow memory and quarantine
 * are in the RSS there). */
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include "testutil.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SANITIZED 1
#endif
#endif
#ifndef SANITIZED
#define SANITIZED 0
#endif

#define MiB (1024.0 * 1024.0)
#define CONSTANT_BYTES (32ull << 20) /* the CLI's own footprint, with room */
#define SCALE (SANITIZED ? 16u : 1u) /* sanitizer builds: shapes 16 x smaller */


/* ---- the CLI in a child, measured ------------------------------------------ */

typedef struct run_result {
    int rc;         /* exit code, or 128 + signal */
    long peak_kb;   /* the child's peak RSS */
    char err[1024]; /* the start of its stderr */
} run_result;

static run_result run_cli(const char *a1, const char *a2, const char *a3)
{
    char *errpath = tu_path(tu_dir, "stderr.txt");
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int out = open("/dev/null", O_WRONLY);
        int e = open(errpath, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(out, 1);
        dup2(e, 2);
        char *argv[] = {(char *)TTSM_CLI, (char *)a1, (char *)a2, (char *)a3, NULL};
        execv(TTSM_CLI, argv);
        _exit(127);
    }
    int status;
    struct rusage ru;
    assert_int_equal(wait4(pid, &status, 0, &ru), pid);
    run_result r;
    memset(&r, 0, sizeof r);
    r.rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    r.peak_kb = ru.ru_maxrss;
    size_t n;
    unsigned char *text = tu_read_file(errpath, &n);
    snprintf(r.err, sizeof r.err, "%s", text ? (char *)text : "");
    r.err[strcspn(r.err, "\n")] = '\0';
    free(text);
    free(errpath);
    return r;
}

/* Runs one shape and checks it: the exit code and message, and the peak
 * against 4 x `header` + CONSTANT_BYTES (in a sanitizer build the figure is
 * printed only). */
static void measure(const char *what, const char *a1, const char *a2, const char *a3,
                    uint64_t header, int want_rc, const char *needle)
{
    run_result r = run_cli(a1, a2, a3);
    double peak = (double)r.peak_kb * 1024.0, bound = 4.0 * (double)header + CONSTANT_BYTES;
    int within = peak <= bound;
    printf("shape %-46s exit %d, peak RSS %8.1f MiB, bound %7.1f MiB (4 x %.1f MiB + %.0f): %s\n",
           what, r.rc, peak / MiB, bound / MiB, (double)header / MiB, CONSTANT_BYTES / MiB,
           SANITIZED ? "not asserted in a sanitizer build" : within ? "within" : "OVER");
    if (r.err[0])
        printf("      message: %s\n", r.err);
    if (r.rc != want_rc || (needle && !strstr(r.err, needle)))
        fail_msg("%s: exit %d, expected %d with \"%s\": %s", what, r.rc, want_rc,
                 needle ? needle : "", r.err);
    if (!SANITIZED && !within)
        fail_msg("%s: peak RSS %.1f MiB, over the bound of %.1f MiB", what, peak / MiB,
                 bound / MiB);
}

/* ---- writing the shapes ------------------------------------------------------ */

static FILE *create(const char *name, char **path)
{
    *path = tu_path(tu_dir, name);
    FILE *f = fopen(*path, "wb");
    assert_non_null(f);
    return f;
}

static uint64_t size_of(const char *path)
{
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    return (uint64_t)sb.st_size;
}

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

typedef struct zmember {
    const char *name;
    const unsigned char *data; /* what is stored: the compressed bytes when deflated */
    size_t len;
    int deflated;
    uint64_t size;             /* inflated size */
    uint32_t crc;
} zmember;

static void zip_write(FILE *f, const zmember *m, size_t n)
{
    uint64_t off[8], at = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char h[30] = {0};
        size_t nl = strlen(m[i].name);
        off[i] = at;
        memcpy(h, "PK\3\4", 4);
        put16(h + 4, 20);
        put16(h + 8, m[i].deflated ? 8 : 0);
        put32(h + 14, m[i].crc);
        put32(h + 18, (uint32_t)m[i].len);
        put32(h + 22, (uint32_t)m[i].size);
        put16(h + 26, (unsigned)nl);
        fwrite(h, 1, 30, f);
        fwrite(m[i].name, 1, nl, f);
        fwrite(m[i].data, 1, m[i].len, f);
        at += 30 + nl + m[i].len;
    }
    uint64_t cd = at;
    for (size_t i = 0; i < n; i++) {
        unsigned char h[46] = {0};
        size_t nl = strlen(m[i].name);
        memcpy(h, "PK\1\2", 4);
        put16(h + 4, 20);
        put16(h + 6, 20);
        put16(h + 10, m[i].deflated ? 8 : 0);
        put32(h + 16, m[i].crc);
        put32(h + 20, (uint32_t)m[i].len);
        put32(h + 24, (uint32_t)m[i].size);
        put16(h + 28, (unsigned)nl);
        put32(h + 42, (uint32_t)off[i]);
        fwrite(h, 1, 46, f);
        fwrite(m[i].name, 1, nl, f);
        at += 46 + nl;
    }
    unsigned char e[22] = {0};
    memcpy(e, "PK\5\6", 4);
    put16(e + 8, (unsigned)n);
    put16(e + 10, (unsigned)n);
    put32(e + 12, (uint32_t)(at - cd));
    put32(e + 16, (uint32_t)cd);
    fwrite(e, 1, 22, f);
}

/* A raw deflate stream of `total` zero bytes: one 1 MiB segment compressed
 * and full-flushed (self-contained, byte-aligned), repeated, then an empty
 * final block. */
static unsigned char *deflate_zeros(uint64_t total, size_t *out_len, uint32_t *crc)
{
    const size_t seg = 1u << 20;
    unsigned char *zeros = calloc(1, seg), *sbuf = malloc(seg), *tail = malloc(64);
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    assert_int_equal(deflateInit2(&zs, 9, Z_DEFLATED, -MAX_WBITS, 9, Z_DEFAULT_STRATEGY), Z_OK);
    zs.next_in = zeros;
    zs.avail_in = (uInt)seg;
    zs.next_out = sbuf;
    zs.avail_out = (uInt)seg;
    assert_int_equal(deflate(&zs, Z_FULL_FLUSH), Z_OK);
    size_t slen = seg - zs.avail_out;
    zs.next_out = tail;
    zs.avail_out = 64;
    assert_int_equal(deflate(&zs, Z_FINISH), Z_STREAM_END);
    size_t tlen = 64 - zs.avail_out;
    deflateEnd(&zs);
    uint64_t n = total / seg;
    unsigned char *out = malloc(slen * n + tlen);
    for (uint64_t i = 0; i < n; i++)
        memcpy(out + i * slen, sbuf, slen);
    memcpy(out + n * slen, tail, tlen);
    *out_len = slen * n + tlen;
    uLong c1 = crc32(0, zeros, (uInt)seg), c = c1;
    for (uint64_t i = 1; i < n; i++)
        c = crc32_combine(c, c1, (z_off_t)seg);
    *crc = (uint32_t)c;
    free(zeros);
    free(sbuf);
    free(tail);
    return out;
}

/* {"w": _rebuild_tensor_v2(storage "0" of FloatStorage, numel n, shape [n])} */
static size_t torch_pickle(unsigned char *p, uint32_t n)
{
    size_t k = 0;
#define ADD(lit) (memcpy(p + k, (lit), sizeof(lit) - 1), k += sizeof(lit) - 1)
    ADD("\x80\x02}X\x01\x00\x00\x00w");
    ADD("ctorch._utils\n_rebuild_tensor_v2\n");
    ADD("((X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x00" "0X\x03\x00\x00\x00"
        "cpuJ");
    put32(p + k, n);
    k += 4;
    ADD("tQK\x00J");
    put32(p + k, n);
    k += 4;
    ADD("\x85K\x01\x85\x89" "ccollections\nOrderedDict\n)RtRs.");
#undef ADD
    return k;
}

static char *write_bomb(void)
{
    uint64_t bytes = 1ull << 30; /* cheap to write at any scale: nothing inflates it */
    size_t clen;
    uint32_t crc;
    unsigned char *comp = deflate_zeros(bytes, &clen, &crc);
    unsigned char pkl[256];
    size_t pl = torch_pickle(pkl, (uint32_t)(bytes / 4));
    zmember m[3] = {{"archive/data.pkl", pkl, pl, 0, pl, (uint32_t)crc32(0, pkl, (uInt)pl)},
                    {"archive/version", (const unsigned char *)"3\n", 2, 0, 2,
                     (uint32_t)crc32(0, (const Bytef *)"3\n", 2)},
                    {"archive/data/0", comp, clen, 1, bytes, crc}};
    char *path;
    FILE *f = create("bomb.pt", &path);
    zip_write(f, m, 3);
    assert_int_equal(fclose(f), 0);
    free(comp);
    return path;
}

static char *write_zero_tensors(uint64_t *header)
{
    uint32_t n = 1600000u / SCALE;
    char *path;
    FILE *f = create("zero.safetensors", &path);
    unsigned char len[8] = {0};
    fwrite(len, 1, 8, f);
    uint64_t h = 0;
    h += (uint64_t)fprintf(f, "{");
    for (uint32_t i = 0; i < n; i++)
        h += (uint64_t)fprintf(f, "%s\"t%07u\":{\"dtype\":\"F32\",\"shape\":[0],"
                                  "\"data_offsets\":[0,0]}", i ? "," : "", i);
    h += (uint64_t)fprintf(f, "}");
    while (h % 8) {
        fputc(' ', f);
        h++;
    }
    put64(len, h);
    assert_int_equal(fseek(f, 0, SEEK_SET), 0);
    fwrite(len, 1, 8, f);
    assert_int_equal(fclose(f), 0);
    *header = h;
    return path;
}

/* GGUF v3, no tensors, `n_arrays` arrays of `count` elements of type `et`
 * (0 u8, 6 f32), each element from `elem`. */
static char *write_gguf(const char *name, uint32_t et, uint64_t count, int n_arrays,
                        void (*elem)(uint64_t i, unsigned char *out))
{
    char *path;
    FILE *f = create(name, &path);
    unsigned char h[24];
    memcpy(h, "GGUF", 4);
    put32(h + 4, 3);
    put64(h + 8, 0);
    put64(h + 16, (uint64_t)n_arrays);
    fwrite(h, 1, 24, f);
    unsigned esz = et == 0 ? 1 : 4;
    unsigned char *buf = malloc(65536 * esz);
    for (int a = 0; a < n_arrays; a++) {
        char key[32];
        int kl = snprintf(key, sizeof key, "big.array.%d", a);
        unsigned char kv[8 + 32 + 4 + 4 + 8];
        size_t k = 0;
        put64(kv, (uint64_t)kl);
        k += 8;
        memcpy(kv + k, key, (size_t)kl);
        k += (size_t)kl;
        put32(kv + k, 9); /* array */
        k += 4;
        put32(kv + k, et);
        k += 4;
        put64(kv + k, count);
        k += 8;
        fwrite(kv, 1, k, f);
        for (uint64_t i = 0; i < count; i += 65536) {
            uint64_t m = count - i < 65536 ? count - i : 65536;
            for (uint64_t j = 0; j < m; j++)
                elem(i + j, buf + j * esz);
            fwrite(buf, esz, (size_t)m, f);
        }
    }
    free(buf);
    assert_int_equal(fclose(f), 0);
    return path;
}

/* Three digits each ("255,"): the longest text a u8 makes. */
static void elem_u8(uint64_t i, unsigned char *out)
{
    out[0] = (unsigned char)(100 + i % 156);
}

/* Nine significant digits, negative, with an exponent ("-1.23456791e-20,"):
 * the longest text an f32 makes. */
static void elem_f32(uint64_t i, unsigned char *out)
{
    float v = -1.23456789e-20f * (1.0f + (float)(i % 1000003) / 1048576.0f);
    uint32_t b;
    memcpy(&b, &v, 4);
    put32(out, b);
}

static char *write_index(void)
{
    uint32_t n = 1500000u / SCALE;
    char *path;
    FILE *f = create("big.safetensors.index.json", &path);
    fprintf(f, "{\"metadata\":{},\"weight_map\":{");
    for (uint32_t i = 0; i < n; i++)
        fprintf(f, "%s\"model.layers.%07u.w\":\"model-1.safetensors\"", i ? "," : "", i);
    fprintf(f, "}}");
    assert_int_equal(fclose(f), 0);
    /* a shard without those tensors: the index is parsed whole, then refused */
    unsigned char st[16];
    put64(st, 8);
    memcpy(st + 8, "{}      ", 8);
    free(tu_write_file(tu_dir, "model-1.safetensors", st, sizeof st));
    return path;
}

/* ---- the shapes -------------------------------------------------------------- */

/* VmHWM or VmRSS of this process, in KiB. */
static long status_kb(const char *field)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    size_t fl = strlen(field);
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, field, fl) == 0)
            v = strtol(line + fl, NULL, 10);
    if (f)
        fclose(f);
    return v;
}

/* Opens `path` with the inflate cap raised to 2 GiB in a child and lists
 * its tensors and metadata, as inspect does: @return the growth of the
 * child's peak RSS in bytes (-1 when the open failed). */
static long long open_uncapped_growth(const char *path)
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int cr = open("/proc/self/clear_refs", O_WRONLY); /* "5": VmHWM starts again */
        if (cr >= 0) {
            if (write(cr, "5", 1) != 1) {
            }
            close(cr);
        }
        long before = status_kb("VmRSS:");
        ttsm_checkpoint_options o = ttsm_checkpoint_options_default();
        o.max_inflate_bytes = 2ull << 30;
        ttsm_checkpoint *ck;
        ttsm_error err;
        long long growth = -1;
        if (ttsm_checkpoint_open(path, &o, &ck, &err) == TTSM_OK) {
            volatile uint64_t sum = 0;
            for (size_t i = 0; i < ttsm_checkpoint_tensor_count(ck); i++)
                sum += ttsm_checkpoint_tensor(ck, i)->nbytes;
            sum += ttsm_checkpoint_total_bytes(ck) + ttsm_checkpoint_metadata_count(ck);
            growth = (long long)(status_kb("VmHWM:") - before) * 1024;
            if (sum == 0) /* the storage is 1 GiB: never */
                growth = -1;
            ttsm_checkpoint_close(ck);
        }
        ssize_t w = write(fds[1], &growth, sizeof growth);
        _exit(w == (ssize_t)sizeof growth ? 0 : 1);
    }
    close(fds[1]);
    long long growth = -2;
    ssize_t r = read(fds[0], &growth, sizeof growth);
    close(fds[0]);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(r == (ssize_t)sizeof growth && WIFEXITED(status) && WEXITSTATUS(status) == 0);
    return growth;
}

static void test_deflated_storage(void **state)
{
    (void)state;
    char *p = write_bomb();
    uint64_t size = size_of(p);
    /* the default cap is proportionate: refused from its declared size */
    measure("torch zip, deflated 1 GiB storage: inspect", "inspect", p, NULL, size, 6,
            "over the cap of 67108864 bytes (max_inflate_bytes)");
    /* with the cap raised it opens - and opening never inflates it */
    long long growth = open_uncapped_growth(p);
    double bound = 4.0 * (double)size + CONSTANT_BYTES;
    printf("shape %-46s peak RSS growth %8.1f MiB, bound %7.1f MiB%s\n",
           "torch zip, 1 GiB storage, cap raised: open", (double)growth / MiB, bound / MiB,
           SANITIZED ? ": not asserted in a sanitizer build" : "");
    if (growth < 0)
        fail_msg("the archive does not open with max_inflate_bytes = 2 GiB");
    if (!SANITIZED && (double)growth > bound)
        fail_msg("opening inflated the storage: peak RSS grew by %.1f MiB", (double)growth / MiB);
    free(p);
}

static void test_zero_size_tensors(void **state)
{
    (void)state;
    uint64_t header;
    char *p = write_zero_tensors(&header);
    measure("safetensors, 96 MB header, 1.6 M zero-size tensors", "inspect", p, NULL, header, 0,
            NULL);
    free(p);
}

static void test_gguf_arrays(void **state)
{
    (void)state;
    char *p = write_gguf("u8.gguf", 0, (1ull << 24) / SCALE, 1, elem_u8);
    measure("GGUF, u8 array of 2^24: inspect --json", "inspect", "--json", p, size_of(p), 0, NULL);
    free(p);
    p = write_gguf("f32.gguf", 6, (1ull << 22) / SCALE, 4, elem_f32);
    measure("GGUF, four f32 arrays of 2^22: inspect", "inspect", p, NULL, size_of(p), 0, NULL);
    measure("GGUF, four f32 arrays of 2^22: inspect --json", "inspect", "--json", p, size_of(p),
            0, NULL);
    free(p);
}

static void test_big_index(void **state)
{
    (void)state;
    char *p = write_index();
    measure("sharded index, 71 MB, 1.5 M entries", "inspect", p, NULL, size_of(p), 6,
            "tensor missing from shard");
    free(p);
}

int main(void)
{
    if (SANITIZED)
        printf("sanitizer build: shapes are %u x smaller and peak RSS is printed, not "
               "asserted\n", SCALE);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_deflated_storage),
        cmocka_unit_test(test_gguf_arrays),
        cmocka_unit_test(test_zero_size_tensors),
        cmocka_unit_test(test_big_index),
    };
    return cmocka_run_group_tests(tests, tu_dir_setup, tu_dir_teardown);
}
