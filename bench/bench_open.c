/* bench_open.c - time to open a checkpoint until every tensor is usable
 * through the mapping (ttsm_checkpoint_open + a data pointer per tensor),
 * against the bare system calls any mmap-based opener makes on the same
 * files (open, fstat, mmap, munmap, close). No tensor byte is read. With
 * --rss, instead: the peak memory an open adds, in a child process per file,
 * against the bytes of the headers it reads.
 * Usage: bench_open [--reps N] [--budget SECONDS] [--io mmap|read] LABEL=PATH ...
 *        bench_open --rss LABEL=PATH ...
 *        (one JSON line per file) */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "bench_util.h"
#include "ttsm.h"

static uint64_t open_once(const char *path, const ttsm_checkpoint_options *opts,
                          size_t *n_tensors, ttsm_checkpoint **keep)
{
    ttsm_error err;
    ttsm_checkpoint *ck = NULL;
    uint64_t t0 = bu_now_ns();
    if (ttsm_checkpoint_open(path, opts, &ck, &err) != TTSM_OK)
        bu_die("ttsm_checkpoint_open", err.message);
    size_t n = ttsm_checkpoint_tensor_count(ck);
    uintptr_t sum = 0;
    for (size_t i = 0; i < n; i++) {
        const void *p;
        if (ttsm_checkpoint_tensor_data(ck, ttsm_checkpoint_tensor(ck, i), &p, &err) != TTSM_OK)
            bu_die("ttsm_checkpoint_tensor_data", err.message);
        sum += (uintptr_t)p;
    }
    uint64_t t = bu_now_ns() - t0;
    volatile uintptr_t sink = sum; /* keeps the loop */
    (void)sink;
    *n_tensors = n;
    *keep = ck;
    return t;
}

/* What the kernel charges for mapping each file once. */
static uint64_t floor_once(const ttsm_checkpoint *ck)
{
    size_t nf = ttsm_checkpoint_file_count(ck);
    uint64_t t0 = bu_now_ns();
    for (size_t i = 0; i < nf; i++) {
        const char *p = ttsm_checkpoint_file_path(ck, i);
        int fd = open(p, O_RDONLY | O_CLOEXEC);
        struct stat sb;
        if (fd < 0 || fstat(fd, &sb) != 0)
            bu_die("open", p);
        void *m = mmap(NULL, (size_t)sb.st_size, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_NORESERVE, fd, 0);
        if (m == MAP_FAILED)
            bu_die("mmap", p);
        munmap(m, (size_t)sb.st_size);
        close(fd);
    }
    return bu_now_ns() - t0;
}

typedef struct item {
    const char *label, *path;
    uint64_t *t, *f, spent;
    int n;
} item;

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

/* Header bytes a safetensors file (8 + N) or a JSON index (the whole file)
 * makes a reader parse; 0 for other formats. */
static uint64_t header_bytes(const char *path)
{
    unsigned char b[9];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, b, sizeof b);
    close(fd);
    if (n >= 1 && b[0] == '{')
        return bu_file_size(path);
    if (n < 9 || b[8] != '{')
        return 0;
    uint64_t len = 0;
    for (int i = 7; i >= 0; i--)
        len = len << 8 | b[i];
    return 8 + len;
}

/* --rss: opens each file in a child, whose peak RSS is reset first. */
static void rss(int n, char **specs)
{
    for (int i = 0; i < n; i++) {
        char *eq = strchr(specs[i], '=');
        if (!eq)
            bu_die("usage", "arguments are LABEL=PATH");
        *eq = '\0';
        int fds[2];
        if (pipe(fds) != 0)
            bu_die("pipe", NULL);
        pid_t pid = fork();
        if (pid == 0) {
            close(fds[0]);
            long out[6] = {-1, -1, 0, 0, 0, 0};
            int c = open("/proc/self/clear_refs", O_WRONLY);
            if (c >= 0 && write(c, "5", 1) == 1) {
                long before = status_kb("VmRSS");
                ttsm_checkpoint *ck;
                ttsm_error err;
                if (ttsm_checkpoint_open(eq + 1, NULL, &ck, &err) != TTSM_OK)
                    bu_die("ttsm_checkpoint_open", err.message);
                out[0] = before;
                out[1] = status_kb("VmHWM");
                out[2] = (long)ttsm_checkpoint_tensor_count(ck);
                out[3] = (long)ttsm_checkpoint_format(ck);
                uint64_t hb = header_bytes(eq + 1);
                for (size_t k = 0; hb && ttsm_checkpoint_format(ck) == TTSM_FORMAT_SAFETENSORS_SHARDED &&
                                   k < ttsm_checkpoint_file_count(ck);
                     k++)
                    hb += header_bytes(ttsm_checkpoint_file_path(ck, k));
                out[4] = (long)hb;
                ttsm_checkpoint_close(ck);
            }
            ssize_t w = write(fds[1], out, sizeof out);
            _exit(w == (ssize_t)sizeof out ? 0 : 1);
        }
        close(fds[1]);
        long got[6];
        ssize_t r = read(fds[0], got, sizeof got);
        close(fds[0]);
        int ws;
        waitpid(pid, &ws, 0);
        if (r != (ssize_t)sizeof got || got[1] < 0)
            continue; /* no clear_refs here: nothing to report */
        bu_begin("open_rss");
        bu_str("label", specs[i]);
        bu_str("format", ttsm_format_name((ttsm_format)got[3]));
        bu_u64("tensors", (uint64_t)got[2]);
        bu_u64("header_bytes", (uint64_t)got[4]);
        bu_u64("rss_growth", (uint64_t)(got[1] - got[0]) * 1024);
        bu_end();
    }
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--rss") == 0) {
        rss(argc - 2, argv + 2);
        return 0;
    }
    /* Freed memory stays in the process between repetitions: otherwise
     * glibc hands it back after each close and every repetition times the
     * kernel faulting in fresh pages for the table (about 1.6 us a page on
     * the VM the committed results come from) instead of the reader. The
     * --rss mode measures memory in a fresh process instead. */
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
    mallopt(M_MMAP_THRESHOLD, 1 << 30);
    int reps = 7;
    double budget_s = 10;
    int i = 1;
    /* --io read: headers through pread instead of the mapping, for comparison
     * (in read mode the data pointers read every tensor's bytes too). */
    ttsm_checkpoint_options opts = ttsm_checkpoint_options_default();
    for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
        if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc)
            reps = atoi(argv[++i]);
        else if (strcmp(argv[i], "--budget") == 0 && i + 1 < argc)
            budget_s = atof(argv[++i]);
        else if (strcmp(argv[i], "--io") == 0 && i + 1 < argc)
            opts.io_mode = strcmp(argv[++i], "read") == 0 ? TTSM_IO_READ : TTSM_IO_MMAP;
        else
            bu_die("usage", "bench_open [--reps N] [--budget SECONDS] [--io mmap|read] "
                            "LABEL=PATH ...");
    }
    if (reps < 1 || reps > 100000 || budget_s <= 0)
        bu_die("usage", "--reps must be 1..100000, --budget > 0");
    size_t n_items = (size_t)(argc - i);
    item *it = bu_xmalloc(sizeof *it * (n_items ? n_items : 1));
    for (size_t k = 0; k < n_items; k++, i++) {
        char *eq = strchr(argv[i], '=');
        if (!eq)
            bu_die("usage", "arguments are LABEL=PATH");
        *eq = '\0';
        it[k] = (item){argv[i], eq + 1, bu_xmalloc(sizeof(uint64_t) * (size_t)reps),
                       bu_xmalloc(sizeof(uint64_t) * (size_t)reps), 0, 0};
    }
    /* Round-robin: other work on the machine then disturbs every file
     * alike instead of whichever happened to run at a bad moment. A file
     * that has used up its time budget stops after 3 repetitions. */
    uint64_t budget_ns = (uint64_t)(budget_s * 1e9);
    for (size_t k = 0; k < n_items; k++) {
        size_t n;
        ttsm_checkpoint *ck;
        it[k].spent += open_once(it[k].path, &opts, &n, &ck); /* warm-up: page cache, allocator */
        ttsm_checkpoint_close(ck);
    }
    for (int r = 0; r < reps; r++)
        for (size_t k = 0; k < n_items; k++) {
            if (it[k].n >= 3 && it[k].spent > budget_ns)
                continue;
            size_t n;
            ttsm_checkpoint *ck;
            /* An untimed open of the same file first: what is timed does not
             * depend on what the file before it left in the caches. */
            open_once(it[k].path, &opts, &n, &ck);
            ttsm_checkpoint_close(ck);
            uint64_t dt = open_once(it[k].path, &opts, &n, &ck);
            it[k].f[it[k].n] = floor_once(ck);
            ttsm_checkpoint_close(ck);
            it[k].t[it[k].n++] = dt;
            it[k].spent += dt;
        }
    for (size_t k = 0; k < n_items; k++) {
        size_t n;
        ttsm_checkpoint *ck;
        open_once(it[k].path, &opts, &n, &ck);
        uint64_t file_bytes = 0;
        size_t nf = ttsm_checkpoint_file_count(ck);
        for (size_t j = 0; j < nf; j++)
            file_bytes += ttsm_checkpoint_file_size(ck, j);
        bu_stats s = bu_summarise(it[k].t, (size_t)it[k].n);
        bu_stats fs = bu_summarise(it[k].f, (size_t)it[k].n);
        bu_begin("open");
        bu_str("label", it[k].label);
        bu_str("format", ttsm_format_name(ttsm_checkpoint_format(ck)));
        bu_u64("tensors", n);
        bu_u64("files", nf);
        bu_u64("file_bytes", file_bytes);
        bu_u64("data_bytes", ttsm_checkpoint_total_bytes(ck));
        bu_stats_out("open", &s);
        bu_stats_out("floor", &fs);
        bu_end();
        ttsm_checkpoint_close(ck);
        free(it[k].t);
        free(it[k].f);
    }
    free(it);
    return 0;
}
