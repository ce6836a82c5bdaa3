/* bench_gpu.c - upload throughput of a checkpoint to cuda:0 through
 * ttsm_load (fresh manager each time), warm (from the page cache) against
 * the driver's own limit on the same bytes, cuMemcpyHtoD from a pinned
 * buffer (and from pageable memory), and cold (the file dropped from the
 * page cache) against the smaller of that and the disk's sequential read().
 * The driver is opened with dlopen, like libttsm does (TTSM_CUDA_DRIVER
 * names another, as for the library), so this builds without CUDA; where
 * there is no driver it prints one line saying so and exits 0.
 * Usage: bench_gpu [--reps N] PATH */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "ttsm.h"

typedef int CUresult;
typedef int CUdevice;
typedef void *CUcontext;
typedef unsigned long long CUdeviceptr;

typedef struct cuda {
    CUresult (*init)(unsigned);
    CUresult (*device_get)(CUdevice *, int);
    CUresult (*device_name)(char *, int, CUdevice);
    CUresult (*retain)(CUcontext *, CUdevice);
    CUresult (*release)(CUdevice);
    CUresult (*set_current)(CUcontext);
    CUresult (*mem_alloc)(CUdeviceptr *, size_t);
    CUresult (*mem_free)(CUdeviceptr);
    CUresult (*host_alloc)(void **, size_t);
    CUresult (*host_free)(void *);
    CUresult (*htod)(CUdeviceptr, const void *, size_t);
    CUresult (*sync)(void);
} cuda;

static void *sym(void *h, const char *name)
{
    void *p = dlsym(h, name);
    if (!p)
        bu_die("libcuda.so.1 lacks", name);
    return p;
}

#define CK(call, what)                                                                        \
    do {                                                                                      \
        CUresult r_ = (call);                                                                 \
        if (r_ != 0) {                                                                        \
            char m_[64];                                                                      \
            snprintf(m_, sizeof m_, "CUresult %d", r_);                                       \
            bu_die(what, m_);                                                                 \
        }                                                                                     \
    } while (0)

static void no_gpu(const char *why)
{
    bu_begin("gpu");
    bu_str("status", "not run");
    bu_str("why", why);
    bu_end();
    exit(0);
}

static double htod_gbps(const cuda *c, CUdeviceptr d, const void *src, size_t n, int reps,
                        uint64_t *best_ns)
{
    uint64_t *t = bu_xmalloc(sizeof *t * (size_t)reps);
    for (int r = 0; r < reps; r++) {
        uint64_t t0 = bu_now_ns();
        CK(c->htod(d, src, n), "cuMemcpyHtoD");
        CK(c->sync(), "cuCtxSynchronize");
        t[r] = bu_now_ns() - t0;
    }
    uint64_t med = bu_quantile(t, (size_t)reps, 0.5, 0);
    *best_ns = t[0];
    free(t);
    return (double)n / (double)med;
}

/* One ttsm_load of `path` to cuda:0 in a fresh manager, in ns. */
static uint64_t load_ns(const char *path, uint64_t *bytes)
{
    ttsm_manager *mgr;
    ttsm_error err;
    if (ttsm_manager_create(NULL, &mgr, &err) != TTSM_OK)
        bu_die("ttsm_manager_create", err.message);
    ttsm_load_config cfg = ttsm_load_config_default();
    cfg.engine = "file";
    cfg.model_path = path;
    cfg.device = "cuda:0";
    ttsm_model *m;
    uint64_t t0 = bu_now_ns();
    if (ttsm_load(mgr, &cfg, &m, &err) != TTSM_OK)
        bu_die("ttsm_load", err.message);
    uint64_t dt = bu_now_ns() - t0;
    *bytes = ttsm_model_bytes(m);
    ttsm_model_release(m);
    ttsm_manager_destroy(mgr);
    return dt;
}

/* Sequential read() of the whole file into one reused buffer, in ns. */
static uint64_t read_ns(const char *path, unsigned char *buf, size_t cap)
{
    uint64_t t0 = bu_now_ns();
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        bu_die("open", path);
    for (;;) {
        ssize_t r = read(fd, buf, cap);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            bu_die("read", path);
        if (r == 0)
            break;
    }
    close(fd);
    return bu_now_ns() - t0;
}

int main(int argc, char **argv)
{
    int reps = 3;
    const char *path = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc)
            reps = atoi(argv[++i]);
        else if (!path)
            path = argv[i];
        else
            bu_die("usage", "bench_gpu [--reps N] PATH");
    }
    if (!path || reps < 1 || reps > 100)
        bu_die("usage", "bench_gpu [--reps N] PATH");
    const char *lib = getenv("TTSM_CUDA_DRIVER");
    void *h = dlopen(lib && *lib ? lib : "libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!h)
        no_gpu(dlerror());
    cuda c;
    *(void **)&c.init = sym(h, "cuInit");
    *(void **)&c.device_get = sym(h, "cuDeviceGet");
    *(void **)&c.device_name = sym(h, "cuDeviceGetName");
    *(void **)&c.retain = sym(h, "cuDevicePrimaryCtxRetain");
    *(void **)&c.release = sym(h, "cuDevicePrimaryCtxRelease_v2");
    *(void **)&c.set_current = sym(h, "cuCtxSetCurrent");
    *(void **)&c.mem_alloc = sym(h, "cuMemAlloc_v2");
    *(void **)&c.mem_free = sym(h, "cuMemFree_v2");
    *(void **)&c.host_alloc = sym(h, "cuMemAllocHost_v2");
    *(void **)&c.host_free = sym(h, "cuMemFreeHost");
    *(void **)&c.htod = sym(h, "cuMemcpyHtoD_v2");
    *(void **)&c.sync = sym(h, "cuCtxSynchronize");
    if (c.init(0) != 0)
        no_gpu("cuInit failed");
    CUdevice dev;
    CK(c.device_get(&dev, 0), "cuDeviceGet");
    char name[256];
    CK(c.device_name(name, (int)sizeof name, dev), "cuDeviceGetName");
    CUcontext ctx;
    CK(c.retain(&ctx, dev), "cuDevicePrimaryCtxRetain");
    CK(c.set_current(ctx), "cuCtxSetCurrent");

    uint64_t size = bu_file_size(path), best;
    void *pinned;
    CK(c.host_alloc(&pinned, (size_t)size), "cuMemAllocHost");
    bu_read_all(path, pinned, size);
    unsigned char *pageable = bu_xmalloc((size_t)size);
    memcpy(pageable, pinned, (size_t)size);
    CUdeviceptr d;
    CK(c.mem_alloc(&d, (size_t)size), "cuMemAlloc");
    CK(c.htod(d, pinned, (size_t)size), "cuMemcpyHtoD"); /* warm-up */
    CK(c.sync(), "cuCtxSynchronize");
    double pinned_gbps = htod_gbps(&c, d, pinned, (size_t)size, reps, &best);
    double pageable_gbps = htod_gbps(&c, d, pageable, (size_t)size, reps, &best);
    CK(c.mem_free(d), "cuMemFree");
    CK(c.host_free(pinned), "cuMemFreeHost");
    free(pageable);

    /* ttsm: a fresh manager per load, the file in the page cache. */
    uint64_t *t = bu_xmalloc(sizeof *t * (size_t)reps);
    uint64_t bytes = 0;
    for (int r = 0; r <= reps; r++) {
        uint64_t dt = load_ns(path, &bytes);
        if (r > 0) /* the first is the warm-up */
            t[r - 1] = dt;
    }
    uint64_t med = bu_quantile(t, (size_t)reps, 0.5, 0);

    /* Cold: the file dropped before each run; the disk's own pace is a
     * sequential read() of it, 8 MiB at a time into one buffer. */
    uint64_t *disk = bu_xmalloc(sizeof *disk * (size_t)reps);
    const char *how = "none";
    double resident = 0;
    unsigned char *buf = bu_xmalloc(8u << 20);
    for (int r = 0; r < reps; r++) {
        const char *paths[] = {path};
        how = bu_drop_cache(paths, 1);
        double res = bu_resident(path);
        resident = res > resident ? res : resident;
        disk[r] = read_ns(path, buf, 8u << 20);
        bu_drop_cache(paths, 1);
        t[r] = load_ns(path, &bytes);
    }
    free(buf);
    uint64_t cold = bu_quantile(t, (size_t)reps, 0.5, 0), dmed = bu_quantile(disk, (size_t)reps, 0.5, 0);
    free(t);
    free(disk);
    CK(c.release(dev), "cuDevicePrimaryCtxRelease");

    bu_begin("gpu");
    bu_str("status", "run");
    bu_str("device", name);
    bu_u64("file_bytes", size);
    bu_u64("model_bytes", bytes);
    bu_f64("pinned_htod_gbps", pinned_gbps);
    bu_f64("pageable_htod_gbps", pageable_gbps);
    bu_u64("ttsm_load_median_ns", med);
    bu_f64("ttsm_load_gbps", (double)bytes / (double)med);
    bu_u64("cold_load_median_ns", cold);
    bu_f64("cold_load_gbps", (double)bytes / (double)cold);
    bu_u64("disk_read_median_ns", dmed);
    bu_f64("disk_read_gbps", (double)size / (double)dmed);
    bu_str("drop", how);
    bu_f64("resident_max", resident);
    bu_end();
    return 0;
}
