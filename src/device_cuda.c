/* device_cuda.c - CUDA discovery through the driver API, opened with dlopen
 * at run time so the library has no build-time CUDA dependency. Discovery
 * runs once per process; without a driver it finds no devices and keeps the
 * reason for error messages. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "device_internal.h"
#include "error_internal.h"

typedef int CUresult;
typedef int CUdevice;
typedef void *CUcontext;

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
} cu;

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
    if (cu.dl)
        dlclose(cu.dl);
    memset(&cu, 0, sizeof cu);
    pthread_mutex_unlock(&lock);
}
