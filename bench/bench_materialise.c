/* bench_materialise.c - throughput of getting every tensor byte of one
 * checkpoint into memory (ttsm read mode: pread into owned buffers; ttsm mmap
 * mode: every page of every tensor touched), against the machine's limits
 * measured in the same process on the same file: plain read() of the whole
 * file into one buffer, and memcpy bandwidth. Warm (page cache) and, with
 * --cold, after dropping the file from the page cache.
 * Usage: bench_materialise [--reps N] [--cold] [--memcpy-mib M] PATH */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "ttsm.h"

typedef uint64_t (*run_fn)(const char *path, unsigned char *pre, uint64_t *bytes);

static uint64_t run_read_fresh(const char *path, unsigned char *pre, uint64_t *bytes)
{
    (void)pre;
    uint64_t size = bu_file_size(path);
    uint64_t t0 = bu_now_ns();
    unsigned char *buf = bu_xmalloc((size_t)size);
    *bytes = bu_read_all(path, buf, size);
    free(buf);
    return bu_now_ns() - t0;
}

static uint64_t run_read_prefaulted(const char *path, unsigned char *pre, uint64_t *bytes)
{
    uint64_t size = bu_file_size(path);
    uint64_t t0 = bu_now_ns();
    *bytes = bu_read_all(path, pre, size);
    return bu_now_ns() - t0;
}

static uint64_t run_ttsm(const char *path, ttsm_io_mode mode, uint64_t *bytes)
{
    ttsm_checkpoint_options o = ttsm_checkpoint_options_default();
    o.io_mode = mode;
    ttsm_error err;
    ttsm_checkpoint *ck;
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    uint64_t t0 = bu_now_ns();
    if (ttsm_checkpoint_open(path, &o, &ck, &err) != TTSM_OK)
        bu_die("ttsm_checkpoint_open", err.message);
    size_t n = ttsm_checkpoint_tensor_count(ck);
    unsigned sum = 0;
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++) {
        const ttsm_tensor_info *t = ttsm_checkpoint_tensor(ck, i);
        const void *p;
        if (ttsm_checkpoint_tensor_data(ck, t, &p, &err) != TTSM_OK)
            bu_die("ttsm_checkpoint_tensor_data", err.message);
        total += t->nbytes;
        if (mode == TTSM_IO_MMAP) {
            const volatile unsigned char *b = p;
            for (uint64_t off = 0; off < t->nbytes; off += page)
                sum += b[off];
            if (t->nbytes)
                sum += b[t->nbytes - 1];
        }
    }
    ttsm_checkpoint_close(ck);
    uint64_t dt = bu_now_ns() - t0;
    volatile unsigned sink = sum;
    (void)sink;
    *bytes = total;
    return dt;
}

static uint64_t run_ttsm_read(const char *path, unsigned char *pre, uint64_t *bytes)
{
    (void)pre;
    return run_ttsm(path, TTSM_IO_READ, bytes);
}

static uint64_t run_ttsm_touch(const char *path, unsigned char *pre, uint64_t *bytes)
{
    (void)pre;
    return run_ttsm(path, TTSM_IO_MMAP, bytes);
}

static void emit(const char *method, const char *cache, const char *drop, double resident,
                 uint64_t bytes, uint64_t *t, size_t n)
{
    bu_stats s = bu_summarise(t, n);
    bu_begin("materialise");
    bu_str("method", method);
    bu_str("cache", cache);
    if (drop) {
        bu_str("drop_method", drop);
        bu_f64("resident_before", resident);
    }
    bu_u64("bytes", bytes);
    bu_stats_out("t", &s);
    bu_f64("gbps_median", (double)bytes / (double)s.median);
    bu_f64("gbps_best", (double)bytes / (double)s.min);
    bu_end();
}

int main(int argc, char **argv)
{
    int reps = 3, cold = 0;
    size_t memcpy_mib = 512;
    const char *path = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc)
            reps = atoi(argv[++i]);
        else if (strcmp(argv[i], "--cold") == 0)
            cold = 1;
        else if (strcmp(argv[i], "--memcpy-mib") == 0 && i + 1 < argc)
            memcpy_mib = (size_t)atol(argv[++i]);
        else if (!path && argv[i][0] != '-')
            path = argv[i];
        else
            bu_die("usage", "bench_materialise [--reps N] [--cold] [--memcpy-mib M] PATH");
    }
    if (!path || reps < 1 || reps > 1000 || memcpy_mib < 1 || memcpy_mib > 65536)
        bu_die("usage", "bench_materialise [--reps N] [--cold] [--memcpy-mib M] PATH");
    /* glibc raises its mmap threshold after the first large free, and then
     * recycles ttsm's per-tensor buffers (already faulted in) from one
     * repetition to the next while the one big read() buffer is always a
     * fresh mapping. A fixed threshold makes every large buffer fresh for
     * both: each repetition pays its page faults, as a first load does. */
    mallopt(M_MMAP_THRESHOLD, 128 * 1024);
    uint64_t *t = bu_xmalloc(sizeof *t * (size_t)reps);
    uint64_t size = bu_file_size(path), bytes = 0;

    /* memcpy between two buffers already faulted in: the copy itself. */
    size_t mb = memcpy_mib << 20;
    unsigned char *a = bu_xmalloc(mb), *b = bu_xmalloc(mb);
    memset(a, 1, mb);
    memset(b, 2, mb);
    for (int r = 0; r < reps; r++) {
        uint64_t t0 = bu_now_ns();
        memcpy(b, a, mb);
        t[r] = bu_now_ns() - t0;
        a[(size_t)r * 4096 % mb] ^= b[mb - 1]; /* the copy is used */
    }
    emit("memcpy", "none", NULL, 0, mb, t, (size_t)reps);
    free(a);
    free(b);

    unsigned char *pre = bu_xmalloc((size_t)size);
    memset(pre, 0, (size_t)size);
    static const struct {
        const char *name;
        run_fn fn;
        int cold;
    } runs[] = {
        {"read", run_read_fresh, 1},
        {"read_prefaulted", run_read_prefaulted, 0},
        {"ttsm_read", run_ttsm_read, 1},
        {"ttsm_mmap_touch", run_ttsm_touch, 1},
    };
    enum { N_RUNS = sizeof runs / sizeof runs[0] };
    uint64_t *tt = bu_xmalloc(sizeof *tt * N_RUNS * (size_t)reps), got[N_RUNS];
    /* Methods take turns within each repetition, so other work on the
     * machine disturbs them alike. */
    for (size_t k = 0; k < N_RUNS; k++)
        runs[k].fn(path, pre, &got[k]); /* warm-up: the file is in the page cache */
    for (int r = 0; r < reps; r++)
        for (size_t k = 0; k < N_RUNS; k++)
            tt[k * (size_t)reps + (size_t)r] = runs[k].fn(path, pre, &got[k]);
    for (size_t k = 0; k < N_RUNS; k++)
        emit(runs[k].name, "warm", NULL, 0, got[k], tt + k * (size_t)reps, (size_t)reps);
    free(pre);
    if (cold) {
        /* One discarded cold read first: under a hypervisor the host may
         * cache the disk image, and the first reader would pay alone for
         * what every later one gets from the host's cache. */
        const char *drop = bu_drop_cache(&path, 1);
        run_read_fresh(path, NULL, &bytes);
        double resident[N_RUNS] = {0};
        for (int r = 0; r < reps; r++)
            for (size_t k = 0; k < N_RUNS; k++) {
                if (!runs[k].cold)
                    continue;
                drop = bu_drop_cache(&path, 1);
                double res = bu_resident(path);
                resident[k] = res > resident[k] ? res : resident[k];
                tt[k * (size_t)reps + (size_t)r] = runs[k].fn(path, NULL, &got[k]);
            }
        for (size_t k = 0; k < N_RUNS; k++)
            if (runs[k].cold)
                emit(runs[k].name, "cold", drop, resident[k], got[k], tt + k * (size_t)reps,
                     (size_t)reps);
    }
    free(tt);
    free(t);
    return 0;
}
