/* test_header_memory.c - memory at open stays proportional to the header:
 * the peak RSS of a child process that opens a safetensors file with a
 * 96 MB header of 1.6 M zero-size tensors (in file order, and not), and a
 * 71 MB sharded index of 1.5 M entries, must stay within 4x the header
 * bytes plus 64 MiB (a JSON tree of them took 1.94 GB and 384 MB). */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ttsm.h"
#include "testutil.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define TTSM_TEST_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define TTSM_TEST_SANITIZED 1
#endif
#endif

static char *dir;

static long status_kb(const char *key)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    size_t kl = strlen(key);
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, key, kl) == 0 && line[kl] == ':')
            v = atol(line + kl + 1);
    if (f)
        fclose(f);
    return v;
}

/* Opens `path` in a child and returns the growth of its peak RSS in bytes;
 * the open's status must be `want`. */
static long long peak_growth(const char *path, ttsm_status want)
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        /* The peak so far is the parent's: start counting afresh. */
        int c = open("/proc/self/clear_refs", O_WRONLY);
        long long out[2] = {-1, -1};
        if (c >= 0 && write(c, "5", 1) == 1) {
            long before = status_kb("VmRSS");
            ttsm_checkpoint *ck = NULL;
            ttsm_error err;
            ttsm_status st = ttsm_checkpoint_open(path, NULL, &ck, &err);
            long peak = status_kb("VmHWM");
            out[0] = st;
            out[1] = (peak - before) * 1024ll;
            if (st != want)
                fprintf(stderr, "%s: %s\n", path, err.message);
            ttsm_checkpoint_close(ck);
        }
        if (c >= 0)
            close(c);
        ssize_t w = write(fds[1], out, sizeof out);
        _exit(w == (ssize_t)sizeof out ? 0 : 1);
    }
    close(fds[1]);
    long long got[2];
    ssize_t r = read(fds[0], got, sizeof got);
    close(fds[0]);
    int ws;
    waitpid(pid, &ws, 0);
    assert_int_equal(r, sizeof got);
    assert_true(WIFEXITED(ws) && WEXITSTATUS(ws) == 0);
    if (got[1] < 0)
        skip(); /* no /proc/self/clear_refs here: the peak cannot be measured */
    assert_int_equal(got[0], want);
    return got[1];
}

/* A header of `n` zero-size F32 tensors, named in file order (zero-padded)
 * or not; returns its length. */
static unsigned long long write_zero_size(const char *path, size_t n, int padded)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    unsigned char len[8] = {0};
    fwrite(len, 1, 8, f);
    unsigned long long h = 0;
    h += (unsigned long long)fprintf(f, "{");
    for (size_t i = 0; i < n; i++)
        h += (unsigned long long)fprintf(f, padded ? "%s\"t%07zu\":{\"dtype\":\"F32\",\"shape\":[0],"
                                                     "\"data_offsets\":[0,0]}"
                                                   : "%s\"t%zu\":{\"dtype\":\"F32\",\"shape\":[0],"
                                                     "\"data_offsets\":[0,0]}",
                                         i ? "," : "", i);
    h += (unsigned long long)fprintf(f, "}");
    fseek(f, 0, SEEK_SET);
    for (int k = 0; k < 8; k++)
        len[k] = (unsigned char)(h >> (8 * k));
    fwrite(len, 1, 8, f);
    fclose(f);
    return h;
}

static void zero_size_tensors_stay_within_4x(void **state)
{
    (void)state;
#ifdef TTSM_TEST_SANITIZED
    skip(); /* a sanitizer's shadow memory and quarantine are not the library's */
#endif
    for (int padded = 1; padded >= 0; padded--) {
        char *p = tu_path(dir, padded ? "sorted.safetensors" : "unsorted.safetensors");
        unsigned long long h = write_zero_size(p, 1600000, padded);
        assert_true(h > 90000000ull && h <= 100000000ull);
        long long grew = peak_growth(p, TTSM_OK);
        printf("%s: header %llu bytes, peak RSS grew by %lld bytes (%.2fx)\n",
               padded ? "in file order" : "out of order", h, grew, (double)grew / (double)h);
        assert_true(grew <= 4 * (long long)h + (64ll << 20));
        unlink(p);
        free(p);
    }
}

static void large_index_stays_within_4x(void **state)
{
    (void)state;
#ifdef TTSM_TEST_SANITIZED
    skip();
#endif
    char *p = tu_path(dir, "big.safetensors.index.json");
    FILE *f = fopen(p, "wb");
    assert_non_null(f);
    long long bytes = fprintf(f, "{\"metadata\": {\"total_size\": 0}, \"weight_map\": {");
    for (int i = 0; i < 1500000; i++)
        bytes += fprintf(f, "%s\"t%07d\": \"model-%05d-of-00002.safetensors\"", i ? ", " : "", i,
                         1 + i % 2);
    bytes += fprintf(f, "}}");
    fclose(f);
    assert_true(bytes > 70000000ll && bytes <= 100000000ll);
    /* Parsed in full; then the first shard is missing. */
    long long grew = peak_growth(p, TTSM_ERR_NOT_FOUND);
    printf("index: %lld bytes, peak RSS grew by %lld bytes (%.2fx)\n", bytes, grew,
           (double)grew / (double)bytes);
    assert_true(grew <= 4 * bytes + (64ll << 20));
    unlink(p);
    free(p);
}

int main(void)
{
    dir = strdup(tu_mkdtemp());
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(zero_size_tensors_stay_within_4x),
        cmocka_unit_test(large_index_stays_within_4x),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    tu_rmtree(dir);
    free(dir);
    return rc;
}
