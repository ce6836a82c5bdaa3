/* bench_usable.c - time to usable on CPU: ttsm_load of a model, then every
 * byte of every tensor read once, as a first forward pass would, in a fresh
 * manager: mmap as it is, mmap with the prefetch option, and read mode;
 * against plain sequential read() of the same files (into one reused
 * buffer: the limit; and into fresh buffers, as a copying loader does),
 * each followed by the same pass. Cold (the files dropped from
 * the page cache before every run) or warm, methods taken in turn.
 * Usage: bench_usable [--reps N] [--cold] [--models-dir ROOT]
 *                     LABEL=file:PATH | LABEL=ENGINE ...   (JSON lines) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "ttsm.h"

#define MAX_FILES 64

typedef struct target {
    const char *label, *engine, *path;
    char *files[MAX_FILES];
    size_t n_files;
    uint64_t file_bytes, tensor_bytes;
} target;

static const char *models_dir;
static volatile uint64_t sink;

/* The first pass: every byte read, eight at a time. */
static uint64_t touch(const void *p, uint64_t n)
{
    const unsigned char *b = p;
    uint64_t s = 0, i = 0, w;
    for (; i + 8 <= n; i += 8) {
        memcpy(&w, b + i, 8);
        s += w;
    }
    for (; i < n; i++)
        s += b[i];
    return s;
}

static ttsm_load_config config(const target *t)
{
    ttsm_load_config c = ttsm_load_config_default();
    c.engine = t->engine;
    c.model_path = t->path;
    c.device = "cpu";
    return c;
}

static ttsm_manager *manager(ttsm_io_mode io, int prefetch)
{
    ttsm_manager_options o = ttsm_manager_options_default();
    o.io_mode = io;
    o.prefetch = prefetch;
    o.models_dirs = models_dir;
    o.hf_cache = "/nonexistent/ttsm-bench-no-hub";
    ttsm_manager *m;
    ttsm_error err;
    if (ttsm_manager_create(&o, &m, &err) != TTSM_OK)
        bu_die("ttsm_manager_create", err.message);
    return m;
}

/* Learns the model's files and tensor bytes from one load. */
static void describe(target *t)
{
    ttsm_manager *mgr = manager(TTSM_IO_MMAP, 0);
    ttsm_load_config c = config(t);
    ttsm_model *m;
    ttsm_error err;
    if (ttsm_load(mgr, &c, &m, &err) != TTSM_OK)
        bu_die("ttsm_load", err.message);
    for (size_t k = 0; k < ttsm_model_component_count(m); k++) {
        const ttsm_checkpoint *ck = ttsm_model_component_checkpoint(m, k);
        size_t nf = ck ? ttsm_checkpoint_file_count(ck) : 1;
        for (size_t f = 0; f < nf; f++) {
            const char *p = ck ? ttsm_checkpoint_file_path(ck, f) : ttsm_model_component_path(m, k);
            if (t->n_files == MAX_FILES)
                bu_die("too many files", p);
            t->files[t->n_files++] = strdup(p);
            t->file_bytes += bu_file_size(p);
        }
        for (size_t i = 0; i < ttsm_model_tensor_count(m, k); i++)
            t->tensor_bytes += ttsm_model_get_tensor(m, k, i)->nbytes;
    }
    ttsm_model_release(m);
    ttsm_manager_destroy(mgr);
}

enum { M_STREAM, M_READ, M_MMAP, M_PREFETCH, M_READMODE, N_METHODS };
static const char *const method_name[N_METHODS] = {"read()", "read() into fresh buffers",
                                                   "mmap", "mmap + prefetch", "read mode"};

/* The limit: every file read in order, 8 MiB at a time into one buffer
 * used again and again (so no page of it faults after the first), each
 * piece passed over once. How fast the bytes can arrive at all. */
static uint64_t run_stream(const target *t)
{
    const size_t chunk = (size_t)8 << 20;
    unsigned char *buf = bu_xmalloc(chunk);
    memset(buf, 0, chunk);
    uint64_t t0 = bu_now_ns(), s = 0;
    for (size_t f = 0; f < t->n_files; f++) {
        int fd = open(t->files[f], O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            bu_die("open", t->files[f]);
        for (;;) {
            ssize_t n = read(fd, buf, chunk);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0)
                bu_die("read", t->files[f]);
            if (n == 0)
                break;
            s += touch(buf, (uint64_t)n);
        }
        close(fd);
    }
    uint64_t dt = bu_now_ns() - t0;
    sink += s;
    free(buf);
    return dt;
}

/* What a loader that copies pays: every file into a fresh buffer of its
 * own (its pages faulted in as they are filled), then the pass. */
static uint64_t run_read(const target *t)
{
    uint64_t t0 = bu_now_ns(), s = 0;
    for (size_t f = 0; f < t->n_files; f++) {
        uint64_t n = bu_file_size(t->files[f]);
        unsigned char *buf = bu_xmalloc((size_t)n);
        if (bu_read_all(t->files[f], buf, n) != n)
            bu_die("short read", t->files[f]);
        s += touch(buf, n);
        free(buf);
    }
    sink += s;
    return bu_now_ns() - t0;
}

static uint64_t run_load(const target *t, ttsm_io_mode io, int prefetch)
{
    ttsm_manager *mgr = manager(io, prefetch);
    ttsm_load_config c = config(t);
    ttsm_model *m;
    ttsm_error err;
    uint64_t t0 = bu_now_ns(), s = 0;
    if (ttsm_load(mgr, &c, &m, &err) != TTSM_OK)
        bu_die("ttsm_load", err.message);
    for (size_t k = 0; k < ttsm_model_component_count(m); k++)
        for (size_t i = 0; i < ttsm_model_tensor_count(m, k); i++) {
            const ttsm_model_tensor *x = ttsm_model_get_tensor(m, k, i);
            s += touch(x->data, x->nbytes);
        }
    uint64_t dt = bu_now_ns() - t0;
    sink += s;
    ttsm_model_prefetch_wait(m); /* before the next run drops the cache */
    ttsm_model_release(m);
    ttsm_manager_destroy(mgr);
    return dt;
}

static uint64_t run_method(const target *t, int method)
{
    switch (method) {
    case M_STREAM: return run_stream(t);
    case M_READ: return run_read(t);
    case M_MMAP: return run_load(t, TTSM_IO_MMAP, 0);
    case M_PREFETCH: return run_load(t, TTSM_IO_MMAP, 1);
    default: return run_load(t, TTSM_IO_READ, 0);
    }
}

int main(int argc, char **argv)
{
    int reps = 5, cold = 0, i = 1;
    for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
        if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc)
            reps = atoi(argv[++i]);
        else if (strcmp(argv[i], "--cold") == 0)
            cold = 1;
        else if (strcmp(argv[i], "--models-dir") == 0 && i + 1 < argc)
            models_dir = argv[++i];
        else
            bu_die("usage", "bench_usable [--reps N] [--cold] [--models-dir ROOT] "
                            "LABEL=file:PATH|LABEL=ENGINE ...");
    }
    if (reps < 1 || reps > 1000)
        bu_die("usage", "--reps must be 1..1000");
    for (; i < argc; i++) {
        target t;
        memset(&t, 0, sizeof t);
        char *eq = strchr(argv[i], '=');
        if (!eq)
            bu_die("usage", "arguments are LABEL=file:PATH or LABEL=ENGINE");
        *eq = '\0';
        t.label = argv[i];
        if (strncmp(eq + 1, "file:", 5) == 0) {
            t.engine = "file";
            t.path = eq + 6;
        } else {
            t.engine = eq + 1;
        }
        describe(&t);
        uint64_t *times[N_METHODS];
        double res_max = 0;
        const char *how = "warm";
        for (int k = 0; k < N_METHODS; k++)
            times[k] = bu_xmalloc(sizeof(uint64_t) * (size_t)reps);
        if (!cold) /* warm: every file in the page cache first */
            run_stream(&t);
        /* In turn, starting one further each round, so that no method
         * always follows the same one. */
        for (int r = 0; r < reps; r++)
            for (int k = 0; k < N_METHODS; k++) {
                int m = (k + r) % N_METHODS;
                if (cold) {
                    /* What is left in the page cache, as a share of the
                     * model's bytes (a one-page file kept would otherwise
                     * read as 100%). */
                    how = bu_drop_cache((const char *const *)t.files, t.n_files);
                    double in = 0;
                    for (size_t f = 0; f < t.n_files; f++)
                        in += bu_resident(t.files[f]) * (double)bu_file_size(t.files[f]);
                    double res = t.file_bytes ? in / (double)t.file_bytes : 0;
                    if (res > res_max)
                        res_max = res;
                }
                times[m][r] = run_method(&t, m);
            }
        for (int k = 0; k < N_METHODS; k++) {
            bu_stats s = bu_summarise(times[k], (size_t)reps);
            bu_begin("usable");
            bu_str("label", t.label);
            bu_str("method", method_name[k]);
            bu_str("cache", cold ? "cold" : "warm");
            bu_str("drop", how);
            bu_f64("resident_max", res_max);
            bu_u64("files", t.n_files);
            bu_u64("file_bytes", t.file_bytes);
            bu_u64("tensor_bytes", t.tensor_bytes);
            bu_stats_out("time", &s);
            bu_end();
            free(times[k]);
        }
        for (size_t f = 0; f < t.n_files; f++)
            free(t.files[f]);
    }
    return 0;
}
