/* cuda.c - CUDA discovery through the driver API, opened with dlopen
 * at run time so the library has no build-time CUDA dependency. Discovery
 * runs once per process; without a driver it finds no devices and keeps the
 * reason for error messages. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/config.h"
#include "base/error.h"
#include "devices/cuda.h"

typedef int CUresult;
typedef int CUdevice;
typedef void *CUcontext;
typedef unsigned long long CUdeviceptr;
typedef void *CUstream;
typedef void *CUevent;

/* Process-global by necessity: the CUDA driver itself is process-global
 * (cuInit, primary contexts), so the handle to it and what it told us are
 * kept once, behind `lock`. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
    int done;
    void *dl;
    int count;
    char status[256];
    CUresult (*Init)(unsigned);
    CUresult (*DeviceGetCount)(int *);
    CUresult (*DeviceGet)(CUdevice *, int);
    CUresult (*DeviceGetName)(char *, int, CUdevice);
    CUresult (*DeviceTotalMem)(size_t *, CUdevice);
    CUresult (*PrimaryCtxRetain)(CUcontext *, CUdevice);
    CUresult (*PrimaryCtxRelease)(CUdevice);
    CUresult (*CtxPush)(CUcontext);
    CUresult (*CtxPop)(CUcontext *);
    CUresult (*MemGetInfo)(size_t *, size_t *);
    CUresult (*GetErrorString)(CUresult, const char **);
    /* Memory and copies, optional at discovery (a driver without them can
     * still be listed; the backend then fails at allocation). */
    CUresult (*MemAlloc)(CUdeviceptr *, size_t);
    CUresult (*MemFree)(CUdeviceptr);
    CUresult (*MemHostAlloc)(void **, size_t, unsigned);
    CUresult (*MemFreeHost)(void *);
    CUresult (*MemcpyHtoDAsync)(CUdeviceptr, const void *, size_t, CUstream);
    CUresult (*StreamCreate)(CUstream *, unsigned);
    CUresult (*StreamSynchronize)(CUstream);
    CUresult (*EventCreate)(CUevent *, unsigned);
    CUresult (*EventRecord)(CUevent, CUstream);
    CUresult (*EventSynchronize)(CUevent);
} cu;

/* Upload state per device: the retained primary context (kept until the
 * driver is reset, so PyTorch and we share it), a stream and a ring of
 * pinned staging buffers: the file is read into buffer k+1 while buffer k's
 * cuMemcpyHtoDAsync runs, and a buffer is filled again only after the event
 * recorded behind its copy has completed. Public measurements (llama.cpp)
 * saw 4.3 GiB/s with 1 MiB of staging and 6.8 GiB/s with 4 MiB, nothing more
 * beyond: 8 MiB buffers, four of them in flight at most. */
#define STAGE_RING 4
#define STAGE_BYTES (8u << 20)
#define MAX_CUDA_DEVICES 64
static struct cudev {
    pthread_mutex_t xfer; /* one upload at a time per device */
    int has_ctx, has_ring;
    CUcontext ctx;
    CUstream stream;
    void *stage[STAGE_RING];
    CUevent ev[STAGE_RING];
    int busy[STAGE_RING];
    size_t next;
} devs[MAX_CUDA_DEVICES] = {
#define X1 {PTHREAD_MUTEX_INITIALIZER, 0, 0, NULL, NULL, {NULL}, {NULL}, {0}, 0}
#define X4 X1, X1, X1, X1
#define X16 X4, X4, X4, X4
    X16, X16, X16, X16
#undef X16
#undef X4
#undef X1
};

static const char *cu_error(CUresult r)
{
    const char *s = NULL;
    if (cu.GetErrorString && cu.GetErrorString(r, &s) == 0 && s)
        return s;
    return "unknown CUDA error";
}

static void *sym(const char *name)
{
    return dlsym(cu.dl, name);
}

/* Called with `lock` held. */
static void discover(void)
{
    if (cu.done)
        return;
    cu.done = 1;
    cu.count = 0;
    /* TTSM_CUDA_DRIVER names another driver library: for tests (a stand-in
     * driver) and for unusual installs. */
    const char *lib = getenv("TTSM_CUDA_DRIVER");
    if (!lib || !*lib)
        lib = "libcuda.so.1";
    cu.dl = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
    if (!cu.dl) {
        const char *e = dlerror();
        ttsm__format_trunc(cu.status, sizeof cu.status, "no CUDA driver (%s)",
                           e ? e : lib);
        return;
    }
#define LOAD(field, name)                                                                   \
    do {                                                                                    \
        *(void **)&cu.field = sym(name);                                                    \
        if (!cu.field) {                                                                    \
            ttsm__format_trunc(cu.status, sizeof cu.status,                                 \
                               "CUDA driver %s lacks %s (too old?)", lib, name);            \
            goto fail;                                                                      \
        }                                                                                   \
    } while (0)
    LOAD(Init, "cuInit");
    LOAD(DeviceGetCount, "cuDeviceGetCount");
    LOAD(DeviceGet, "cuDeviceGet");
    LOAD(DeviceGetName, "cuDeviceGetName");
    LOAD(DeviceTotalMem, "cuDeviceTotalMem_v2");
    LOAD(PrimaryCtxRetain, "cuDevicePrimaryCtxRetain");
    LOAD(PrimaryCtxRelease, "cuDevicePrimaryCtxRelease_v2");
    LOAD(CtxPush, "cuCtxPushCurrent_v2");
    LOAD(CtxPop, "cuCtxPopCurrent_v2");
    LOAD(MemGetInfo, "cuMemGetInfo_v2");
#undef LOAD
    *(void **)&cu.GetErrorString = sym("cuGetErrorString"); /* optional */
    *(void **)&cu.MemAlloc = sym("cuMemAlloc_v2");
    *(void **)&cu.MemFree = sym("cuMemFree_v2");
    *(void **)&cu.MemHostAlloc = sym("cuMemHostAlloc");
    *(void **)&cu.MemFreeHost = sym("cuMemFreeHost");
    *(void **)&cu.MemcpyHtoDAsync = sym("cuMemcpyHtoDAsync_v2");
    *(void **)&cu.StreamCreate = sym("cuStreamCreate");
    *(void **)&cu.StreamSynchronize = sym("cuStreamSynchronize");
    *(void **)&cu.EventCreate = sym("cuEventCreate");
    *(void **)&cu.EventRecord = sym("cuEventRecord");
    *(void **)&cu.EventSynchronize = sym("cuEventSynchronize");

    CUresult r = cu.Init(0);
    if (r != 0) {
        ttsm__format_trunc(cu.status, sizeof cu.status, "cuInit failed: %s (CUDA error %d)",
                           cu_error(r), r);
        goto fail;
    }
    int n = 0;
    r = cu.DeviceGetCount(&n);
    if (r != 0) {
        ttsm__format_trunc(cu.status, sizeof cu.status,
                           "cuDeviceGetCount failed: %s (CUDA error %d)", cu_error(r), r);
        goto fail;
    }
    if (n <= 0) {
        ttsm__format_trunc(cu.status, sizeof cu.status, "the CUDA driver reports no devices");
        goto fail;
    }
    cu.count = n > 65535 ? 65535 : n;
    cu.status[0] = '\0';
    return;
fail:
    /* Keep the library open: unloading a driver that ran cuInit is unsafe. */
    cu.count = 0;
}

int ttsm__cuda_device_count(void)
{
    pthread_mutex_lock(&lock);
    discover();
    int n = cu.count;
    pthread_mutex_unlock(&lock);
    return n;
}

const char *ttsm_cuda_status(void)
{
    pthread_mutex_lock(&lock);
    discover();
    pthread_mutex_unlock(&lock);
    /* status is written only during discovery, under the lock, and then
     * stays until a test calls ttsm__cuda_reset(). */
    return cu.status;
}

ttsm_status ttsm__cuda_device_info(int ordinal, ttsm_device_info *out, ttsm_error *err)
{
    ttsm_status st = TTSM_OK;
    char name[TTSM_DEVICE_NAME_MAX];
    snprintf(name, sizeof name, "cuda:%d", ordinal);
    pthread_mutex_lock(&lock);
    discover();
    if (ordinal < 0 || ordinal >= cu.count) {
        st = ttsm__err(err, TTSM_ERR_DEVICE, name, "no such device", "%d CUDA devices%s%s",
                       cu.count, cu.status[0] ? ": " : "", cu.status);
        goto out;
    }
    CUdevice dev;
    CUresult r = cu.DeviceGet(&dev, ordinal);
    if (r != 0) {
        st = ttsm__err(err, TTSM_ERR_DEVICE, name, "driver failure", "cuDeviceGet: %s",
                       cu_error(r));
        goto out;
    }
    memset(out, 0, sizeof *out);
    memcpy(out->name, name, sizeof name);
    char desc[sizeof out->description];
    if (cu.DeviceGetName(desc, (int)sizeof desc, dev) != 0)
        snprintf(desc, sizeof desc, "CUDA device %d", ordinal);
    desc[sizeof desc - 1] = '\0';
    memcpy(out->description, desc, sizeof desc);
    size_t total = 0, free_b = 0;
    r = cu.DeviceTotalMem(&total, dev);
    if (r != 0) {
        st = ttsm__err(err, TTSM_ERR_DEVICE, name, "driver failure", "cuDeviceTotalMem: %s",
                       cu_error(r));
        goto out;
    }
    /* Free memory needs a context; the primary one is what PyTorch uses too,
     * so retaining it here costs nothing extra in a process that runs both. */
    CUcontext ctx;
    r = cu.PrimaryCtxRetain(&ctx, dev);
    if (r != 0) {
        st = ttsm__err(err, TTSM_ERR_DEVICE, name, "driver failure",
                       "cuDevicePrimaryCtxRetain: %s", cu_error(r));
        goto out;
    }
    r = cu.CtxPush(ctx);
    if (r == 0) {
        size_t t2;
        r = cu.MemGetInfo(&free_b, &t2);
        cu.CtxPop(NULL);
    }
    cu.PrimaryCtxRelease(dev);
    if (r != 0) {
        st = ttsm__err(err, TTSM_ERR_DEVICE, name, "driver failure", "cuMemGetInfo: %s",
                       cu_error(r));
        goto out;
    }
    out->total_bytes = total;
    out->free_bytes = free_b;
out:
    pthread_mutex_unlock(&lock);
    return st;
}

void ttsm__cuda_reset(void)
{
    pthread_mutex_lock(&lock);
    for (int i = 0; i < MAX_CUDA_DEVICES; i++) {
        struct cudev *d = &devs[i];
        for (int k = 0; k < STAGE_RING && d->has_ring; k++)
            if (d->stage[k])
                cu.MemFreeHost(d->stage[k]);
        if (d->has_ctx)
            cu.PrimaryCtxRelease(i);
        pthread_mutex_t m = d->xfer;
        memset(d, 0, sizeof *d);
        d->xfer = m;
    }
    if (cu.dl)
        dlclose(cu.dl);
    memset(&cu, 0, sizeof cu);
    pthread_mutex_unlock(&lock);
    ttsm__config_changed(); /* "auto" may resolve differently now */
}

/* ---- the cuda backend --------------------------------------------------- */

static ttsm_status cu_fail(ttsm_error *err, int index, const char *call, CUresult r)
{
    char name[24];
    snprintf(name, sizeof name, "cuda:%d", index);
    return ttsm__err(err, r == 2 ? TTSM_ERR_OUT_OF_MEMORY : TTSM_ERR_DEVICE, name,
                     "driver failure", "%s: %s (CUDA error %d)", call, cu_error(r), r);
}

/* Makes the device's primary context current (retained once). Takes `lock`
 * for the one-time setup only. */
static ttsm_status push_ctx(int index, ttsm_error *err)
{
    if (index < 0 || index >= MAX_CUDA_DEVICES)
        return cu_fail(err, index, "device index", 101);
    pthread_mutex_lock(&lock);
    discover();
    ttsm_status st = TTSM_OK;
    struct cudev *d = &devs[index];
    if (index >= cu.count)
        st = cu_fail(err, index, "no such device", 101);
    else if (!cu.MemAlloc || !cu.MemFree || !cu.MemHostAlloc || !cu.MemFreeHost ||
             !cu.MemcpyHtoDAsync || !cu.StreamCreate || !cu.StreamSynchronize ||
             !cu.EventCreate || !cu.EventRecord || !cu.EventSynchronize)
        st = ttsm__err(err, TTSM_ERR_DEVICE, "cuda", "driver too old",
                       "the driver lacks memory or stream functions");
    else if (!d->has_ctx) {
        CUdevice dev;
        CUresult r = cu.DeviceGet(&dev, index);
        if (r == 0)
            r = cu.PrimaryCtxRetain(&d->ctx, dev);
        if (r != 0)
            st = cu_fail(err, index, "cuDevicePrimaryCtxRetain", r);
        else
            d->has_ctx = 1;
    }
    pthread_mutex_unlock(&lock);
    if (st == TTSM_OK) {
        CUresult r = cu.CtxPush(d->ctx);
        if (r != 0)
            st = cu_fail(err, index, "cuCtxPushCurrent", r);
    }
    return st;
}

static void pop_ctx(void)
{
    cu.CtxPop(NULL);
}

static size_t cuda_count(void *user)
{
    (void)user;
    return (size_t)ttsm__cuda_device_count();
}

static ttsm_status cuda_memory(void *user, int index, uint64_t *free_b, uint64_t *total,
                               ttsm_error *err)
{
    (void)user;
    ttsm_device_info info;
    ttsm_status st = ttsm__cuda_device_info(index, &info, err);
    if (st == TTSM_OK) {
        *free_b = info.free_bytes;
        *total = info.total_bytes;
    }
    return st;
}

static ttsm_status cuda_alloc(void *user, int index, uint64_t n, void **out, ttsm_error *err)
{
    (void)user;
    ttsm_status st = push_ctx(index, err);
    if (st != TTSM_OK)
        return st;
    CUdeviceptr p = 0;
    CUresult r = n > SIZE_MAX ? 2 : cu.MemAlloc(&p, (size_t)n);
    pop_ctx();
    if (r != 0)
        return cu_fail(err, index, "cuMemAlloc", r);
    *out = (void *)(uintptr_t)p;
    return TTSM_OK;
}

static void cuda_free(void *user, int index, void *ptr, uint64_t n)
{
    (void)user;
    (void)n;
    if (push_ctx(index, NULL) != TTSM_OK)
        return;
    cu.MemFree((CUdeviceptr)(uintptr_t)ptr);
    pop_ctx();
}

/* Called with the context current and d->xfer held. */
static ttsm_status ensure_ring(struct cudev *d, int index, ttsm_error *err)
{
    if (d->has_ring)
        return TTSM_OK;
    CUresult r = cu.StreamCreate(&d->stream, 1 /* non-blocking */);
    if (r != 0)
        return cu_fail(err, index, "cuStreamCreate", r);
    for (int k = 0; k < STAGE_RING; k++) {
        if ((r = cu.MemHostAlloc(&d->stage[k], STAGE_BYTES, 0)) != 0)
            return cu_fail(err, index, "cuMemHostAlloc", r);
        if ((r = cu.EventCreate(&d->ev[k], 2 /* disable timing */)) != 0)
            return cu_fail(err, index, "cuEventCreate", r);
        d->busy[k] = 0;
    }
    d->has_ring = 1;
    return TTSM_OK;
}

/* Where an upload's bytes come from: host memory (copied in), or a file
 * (read straight into the pinned buffer: no pass through the page tables of
 * a mapping, and the read of one chunk overlaps the copies of the others). */
typedef struct source {
    const unsigned char *mem;
    int fd;
    uint64_t off;
} source;

static ttsm_status fill(const source *src, uint64_t at, void *buf, size_t c, ttsm_error *err)
{
    if (src->mem) {
        memcpy(buf, src->mem + at, c);
        return TTSM_OK;
    }
    for (size_t done = 0; done < c;) {
        ssize_t r = pread(src->fd, (char *)buf + done, c - done, (off_t)(src->off + at + done));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return ttsm__err(err, TTSM_ERR_IO, "cuda", "read failed",
                             "uploading from a file at offset %llu: %s",
                             (unsigned long long)(src->off + at + done),
                             r < 0 ? strerror(errno) : "the file ended (was it truncated?)");
        done += (size_t)r;
    }
    return TTSM_OK;
}

/* The ring: chunk k goes through buffer k % STAGE_RING, which is waited
 * for (its last copy's event) before it is filled again. */
static ttsm_status upload_from(int index, void *dst, const source *src, uint64_t n,
                               ttsm_error *err)
{
    ttsm_status st = push_ctx(index, err);
    if (st != TTSM_OK)
        return st;
    struct cudev *d = &devs[index];
    pthread_mutex_lock(&d->xfer);
    st = ensure_ring(d, index, err);
    for (uint64_t off = 0; st == TTSM_OK && off < n;) {
        size_t c = n - off < STAGE_BYTES ? (size_t)(n - off) : STAGE_BYTES;
        size_t k = d->next++ % STAGE_RING;
        CUresult r = d->busy[k] ? cu.EventSynchronize(d->ev[k]) : 0;
        if (r != 0) {
            st = cu_fail(err, index, "cuEventSynchronize", r);
            break;
        }
        d->busy[k] = 0;
        if ((st = fill(src, off, d->stage[k], c, err)) != TTSM_OK)
            break;
        r = cu.MemcpyHtoDAsync((CUdeviceptr)(uintptr_t)dst + off, d->stage[k], c, d->stream);
        if (r == 0) {
            d->busy[k] = 1; /* its copy is queued: in flight until the event */
            r = cu.EventRecord(d->ev[k], d->stream);
        }
        if (r != 0)
            st = cu_fail(err, index, "upload", r);
        off += c;
    }
    if (st != TTSM_OK && d->has_ring) {
        /* Nothing may still read a buffer (or write the allocation, which
         * the caller now frees) after a failure returns. */
        cu.StreamSynchronize(d->stream);
        memset(d->busy, 0, sizeof d->busy);
    }
    pthread_mutex_unlock(&d->xfer);
    pop_ctx();
    return st;
}

static ttsm_status cuda_upload(void *user, int index, void *dst, const void *src, uint64_t n,
                               ttsm_error *err)
{
    (void)user;
    source s = {src, -1, 0};
    return upload_from(index, dst, &s, n, err);
}

ttsm_status ttsm__cuda_upload_file(int index, void *dst, int fd, uint64_t offset, uint64_t n,
                                   ttsm_error *err)
{
    source s = {NULL, fd, offset};
    return upload_from(index, dst, &s, n, err);
}

int ttsm__cuda_is_backend(const ttsm_backend *b)
{
    return b && b->upload == cuda_upload;
}

static ttsm_status cuda_sync(void *user, int index, ttsm_error *err)
{
    (void)user;
    ttsm_status st = push_ctx(index, err);
    if (st != TTSM_OK)
        return st;
    struct cudev *d = &devs[index];
    pthread_mutex_lock(&d->xfer);
    CUresult r = d->has_ring ? cu.StreamSynchronize(d->stream) : 0;
    pthread_mutex_unlock(&d->xfer);
    pop_ctx();
    return r ? cu_fail(err, index, "cuStreamSynchronize", r) : TTSM_OK;
}

static const ttsm_backend cuda_backend = {
    TTSM_BACKEND_VERSION, "cuda", 0, NULL, cuda_count, cuda_memory, cuda_alloc, cuda_free,
    cuda_upload, cuda_sync,
};

const ttsm_backend *ttsm__cuda_backend(void)
{
    return &cuda_backend;
}
