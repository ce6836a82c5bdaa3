/* fake_cuda.c - a stand-in for libcuda.so.1 that tests load through
 * TTSM_CUDA_DRIVER, so CUDA discovery is tested without a GPU. Its
 * behaviour comes from FAKE_CUDA_MODE:
 *   two      two devices (8 GiB and 16 GiB)          (default)
 *   nodev    cuInit fails with CUDA_ERROR_NO_DEVICE (100)
 *   zero     cuInit succeeds, no devices
 *   memfail  devices exist, cuMemGetInfo fails
 *   countfail cuDeviceGetCount fails with an unknown error */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef int CUresult;
typedef int CUdevice;
typedef void *CUcontext;

static const char *mode(void)
{
    const char *m = getenv("FAKE_CUDA_MODE");
    return m ? m : "two";
}

int fake_cuda_init_calls;

CUresult cuInit(unsigned flags)
{
    (void)flags;
    fake_cuda_init_calls++;
    return strcmp(mode(), "nodev") == 0 ? 100 : 0;
}

CUresult cuDriverGetVersion(int *v)
{
    *v = 13000;
    return 0;
}

CUresult cuDeviceGetCount(int *n)
{
    if (strcmp(mode(), "countfail") == 0)
        return 999;
    *n = strcmp(mode(), "zero") == 0 ? 0 : 2;
    return 0;
}

CUresult cuDeviceGet(CUdevice *d, int ordinal)
{
    if (ordinal < 0 || ordinal > 1)
        return 101; /* CUDA_ERROR_INVALID_DEVICE */
    *d = ordinal;
    return 0;
}

CUresult cuDeviceGetName(char *name, int len, CUdevice d)
{
    snprintf(name, (size_t)len, "Fake GPU %d", d);
    return 0;
}

CUresult cuDeviceTotalMem_v2(size_t *bytes, CUdevice d)
{
    *bytes = (size_t)(d + 1) * (8ull << 30);
    return 0;
}

static CUcontext current;
static char ctx_storage[2];

CUresult cuDevicePrimaryCtxRetain(CUcontext *ctx, CUdevice d)
{
    *ctx = &ctx_storage[d];
    return 0;
}

CUresult cuDevicePrimaryCtxRelease_v2(CUdevice d)
{
    (void)d;
    return 0;
}

CUresult cuCtxPushCurrent_v2(CUcontext ctx)
{
    current = ctx;
    return 0;
}

CUresult cuCtxPopCurrent_v2(CUcontext *ctx)
{
    if (ctx)
        *ctx = current;
    current = NULL;
    return 0;
}

CUresult cuMemGetInfo_v2(size_t *free_b, size_t *total)
{
    if (strcmp(mode(), "memfail") == 0)
        return 2; /* CUDA_ERROR_OUT_OF_MEMORY */
    int d = current == &ctx_storage[1];
    *total = (size_t)(d + 1) * (8ull << 30);
    *free_b = *total - (1ull << 30);
    return 0;
}

CUresult cuGetErrorString(CUresult e, const char **s)
{
    switch (e) {
    case 100: *s = "no CUDA-capable device is detected"; break;
    case 2: *s = "out of memory"; break;
    default: *s = "unknown error"; break;
    }
    return 0;
}

/* Memory and copies on host memory, so the CUDA upload path (primary
 * context, pinned staging ring, async copies, events) runs without a GPU.
 * FAKE_CUDA_MODE=allocfail makes cuMemAlloc fail with out of memory. */
typedef unsigned long long CUdeviceptr;
long fake_cuda_allocated, fake_cuda_copies, fake_cuda_host_allocs;

CUresult cuMemAlloc_v2(CUdeviceptr *p, size_t n)
{
    if (strcmp(mode(), "allocfail") == 0)
        return 2;
    void *m = malloc(n);
    if (!m)
        return 2;
    *p = (CUdeviceptr)(size_t)m;
    fake_cuda_allocated += (long)n;
    return 0;
}

CUresult cuMemFree_v2(CUdeviceptr p)
{
    free((void *)(size_t)p);
    return 0;
}

CUresult cuMemHostAlloc(void **p, size_t n, unsigned flags)
{
    (void)flags;
    *p = malloc(n);
    fake_cuda_host_allocs++;
    return *p ? 0 : 2;
}

CUresult cuMemFreeHost(void *p)
{
    free(p);
    return 0;
}

CUresult cuMemcpyHtoDAsync_v2(CUdeviceptr dst, const void *src, size_t n, void *stream)
{
    (void)stream;
    if (!current)
        return 201; /* CUDA_ERROR_INVALID_CONTEXT: the library must push one */
    memcpy((void *)(size_t)dst, src, n);
    fake_cuda_copies++;
    return 0;
}

CUresult cuStreamCreate(void **s, unsigned flags)
{
    (void)flags;
    static char stream;
    *s = &stream;
    return 0;
}

CUresult cuStreamSynchronize(void *s)
{
    (void)s;
    return 0;
}

CUresult cuEventCreate(void **e, unsigned flags)
{
    (void)flags;
    static char events[64];
    static int next;
    *e = &events[next++ % 64];
    return 0;
}

CUresult cuEventRecord(void *e, void *s)
{
    (void)e;
    (void)s;
    return 0;
}

CUresult cuEventSynchronize(void *e)
{
    (void)e;
    return 0;
}
