/* fake_cuda.c - a stand-in for libcuda.so.1 that tests load through
 * TTSM_CUDA_DRIVER, so CUDA discovery and uploads are tested without a GPU.
 * Copies are asynchronous as on a GPU: cuMemcpyHtoDAsync only queues them,
 * and they happen when an event recorded after them (or the stream) is
 * synchronised, so a staging buffer refilled too early uploads the wrong
 * bytes. It records every call and checks the rules of a staging ring: no
 * copy from a buffer whose earlier copy is still in flight, no write into a
 * buffer while its copy is in flight (a checksum at queue time and at copy
 * time), and how many copies were in flight at once.
 * Its behaviour comes from FAKE_CUDA_MODE:
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

/* Pinned allocations, so a copy's source can be told to be one. */
#define MAX_PINNED 64
static struct {
    unsigned char *p;
    size_t n;
} pinned[MAX_PINNED];

CUresult cuMemHostAlloc(void **p, size_t n, unsigned flags)
{
    (void)flags;
    *p = malloc(n);
    fake_cuda_host_allocs++;
    for (int i = 0; *p && i < MAX_PINNED; i++)
        if (!pinned[i].p) {
            pinned[i].p = *p;
            pinned[i].n = n;
            break;
        }
    return *p ? 0 : 2;
}

CUresult cuMemFreeHost(void *p)
{
    for (int i = 0; i < MAX_PINNED; i++)
        if (pinned[i].p == p)
            pinned[i].p = NULL;
    free(p);
    return 0;
}

static int pinned_of(const void *src)
{
    for (int i = 0; i < MAX_PINNED; i++)
        if (pinned[i].p && (const unsigned char *)src >= pinned[i].p &&
            (const unsigned char *)src < pinned[i].p + pinned[i].n)
            return i;
    return -1;
}

/* The queue of copies in flight, in stream order. */
#define MAX_QUEUE 256
typedef struct copy {
    void *dst;
    const void *src;
    size_t n;
    unsigned long sum; /* of the source when queued */
    long seq;
    int buffer;        /* pinned allocation, or -1 (pageable memory) */
} copy;
static copy queue[MAX_QUEUE];
static int queued;
static long next_seq, done_seq;

/* What the tests read (through dlsym). */
long fake_cuda_in_flight, fake_cuda_max_in_flight, fake_cuda_reuse_violations,
    fake_cuda_write_violations, fake_cuda_pageable_copies, fake_cuda_syncs;
/* The call log: 'C' a copy queued (buffer index in `arg`), 'R' an event
 * recorded, 'S' an event synchronised, 'W' a stream synchronised. */
#define MAX_LOG 4096
struct fake_cuda_call {
    char op;
    int arg;
};
struct fake_cuda_call fake_cuda_log[MAX_LOG];
long fake_cuda_log_len;

static void logcall(char op, int arg)
{
    if (fake_cuda_log_len < MAX_LOG)
        fake_cuda_log[fake_cuda_log_len] = (struct fake_cuda_call){op, arg};
    fake_cuda_log_len++;
}

static unsigned long checksum(const void *p, size_t n)
{
    const unsigned char *b = p;
    unsigned long h = 1469598103u;
    for (size_t i = 0; i < n; i += 61) /* a sample is enough to see a refill */
        h = (h ^ b[i]) * 1099511628211ul;
    return n ? (h ^ b[n - 1]) : h;
}

/* Completes the queued copies up to sequence `upto`. */
static void complete(long upto)
{
    int k = 0;
    for (int i = 0; i < queued; i++) {
        if (queue[i].seq > upto) {
            queue[k++] = queue[i];
            continue;
        }
        if (checksum(queue[i].src, queue[i].n) != queue[i].sum)
            fake_cuda_write_violations++; /* refilled while in flight */
        memcpy(queue[i].dst, queue[i].src, queue[i].n);
        fake_cuda_copies++;
        fake_cuda_in_flight--;
        if (queue[i].seq > done_seq)
            done_seq = queue[i].seq;
    }
    queued = k;
}

void fake_cuda_reset_checks(void)
{
    complete(next_seq);
    fake_cuda_in_flight = fake_cuda_max_in_flight = fake_cuda_reuse_violations = 0;
    fake_cuda_write_violations = fake_cuda_pageable_copies = fake_cuda_syncs = 0;
    fake_cuda_log_len = 0;
    fake_cuda_copies = 0;
}

CUresult cuMemcpyHtoDAsync_v2(CUdeviceptr dst, const void *src, size_t n, void *stream)
{
    (void)stream;
    if (!current)
        return 201; /* CUDA_ERROR_INVALID_CONTEXT: the library must push one */
    int b = pinned_of(src);
    if (b < 0)
        fake_cuda_pageable_copies++;
    for (int i = 0; b >= 0 && i < queued; i++)
        if (queue[i].buffer == b)
            fake_cuda_reuse_violations++; /* its last copy has not completed */
    if (queued == MAX_QUEUE)
        complete(queue[0].seq); /* a real stream would stall here too */
    queue[queued++] = (copy){(void *)(size_t)dst, src, n, checksum(src, n), ++next_seq, b};
    if (++fake_cuda_in_flight > fake_cuda_max_in_flight)
        fake_cuda_max_in_flight = fake_cuda_in_flight;
    logcall('C', b);
    return 0;
}

/* What bench/bench_gpu.c calls for its baseline, so it runs against this
 * driver too (a check that it works end to end, not a measurement). */
CUresult cuCtxSetCurrent(CUcontext ctx)
{
    current = ctx;
    return 0;
}

CUresult cuMemAllocHost_v2(void **p, size_t n)
{
    return cuMemHostAlloc(p, n, 0);
}

CUresult cuMemcpyHtoD_v2(CUdeviceptr dst, const void *src, size_t n)
{
    CUresult r = cuMemcpyHtoDAsync_v2(dst, src, n, NULL);
    if (r == 0)
        complete(next_seq);
    return r;
}

CUresult cuCtxSynchronize(void)
{
    complete(next_seq);
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
    complete(next_seq);
    logcall('W', -1);
    return 0;
}

/* An event completes once every copy queued before its record has. */
#define MAX_EVENTS 64
static long event_at[MAX_EVENTS];
static char events[MAX_EVENTS];

CUresult cuEventCreate(void **e, unsigned flags)
{
    (void)flags;
    static int next;
    int i = next++ % MAX_EVENTS;
    event_at[i] = 0;
    *e = &events[i];
    return 0;
}

CUresult cuEventRecord(void *e, void *s)
{
    (void)s;
    int i = (int)((char *)e - events);
    event_at[i] = next_seq;
    logcall('R', i);
    return 0;
}

CUresult cuEventSynchronize(void *e)
{
    int i = (int)((char *)e - events);
    complete(event_at[i]);
    fake_cuda_syncs++;
    logcall('S', i);
    return 0;
}
