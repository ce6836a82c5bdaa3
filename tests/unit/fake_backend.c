/* fake_backend.c - see fake_backend.h. Allocations are plain malloc blocks;
 * counters are atomics so the stress test can run it from many threads. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fake_backend.h"
#include "testutil.h"

static _Atomic uint64_t allocated[2], peak[2], free_mem[2] = {1ull << 40, 1ull << 40};
static _Atomic long fail_after, fail_upload_after, uploads;
static _Atomic size_t count = 2;

static size_t f_count(void *user)
{
    (void)user;
    return atomic_load(&count);
}

static ttsm_status gone(int index, ttsm_error *err)
{
    if ((size_t)index < atomic_load(&count))
        return TTSM_OK;
    if (err) {
        err->code = TTSM_ERR_DEVICE;
        snprintf(err->message, sizeof err->message, "fake:%d: device is gone", index);
    }
    return TTSM_ERR_DEVICE;
}

/* Counts down an injection counter: 1 when this call is the one to fail. */
static int injected(_Atomic long *counter)
{
    long f = atomic_load(counter);
    return f > 0 && atomic_fetch_sub(counter, 1) == 1;
}

static ttsm_status f_memory(void *user, int index, uint64_t *free_b, uint64_t *total,
                            ttsm_error *err)
{
    (void)user;
    if (gone(index, err) != TTSM_OK)
        return TTSM_ERR_DEVICE;
    *free_b = atomic_load(&free_mem[index]);
    *total = 1ull << 40;
    return TTSM_OK;
}

static ttsm_status f_alloc(void *user, int index, uint64_t n, void **out, ttsm_error *err)
{
    (void)user;
    if (gone(index, err) != TTSM_OK)
        return TTSM_ERR_DEVICE;
    if (injected(&fail_after)) {
        if (err) {
            err->code = TTSM_ERR_OUT_OF_MEMORY;
            strcpy(err->message, "fake: injected allocation failure");
        }
        return TTSM_ERR_OUT_OF_MEMORY;
    }
    void *p = aligned_alloc(256, (n + 255) / 256 * 256);
    if (!p)
        return TTSM_ERR_OUT_OF_MEMORY;
    uint64_t now = atomic_fetch_add(&allocated[index], n) + n;
    uint64_t pk = atomic_load(&peak[index]);
    while (now > pk && !atomic_compare_exchange_weak(&peak[index], &pk, now))
        ;
    *out = p;
    return TTSM_OK;
}

static void f_free(void *user, int index, void *p, uint64_t n)
{
    (void)user;
    atomic_fetch_sub(&allocated[index], n);
    free(p);
}

static ttsm_status f_upload(void *user, int index, void *dst, const void *src, uint64_t n,
                            ttsm_error *err)
{
    (void)user;
    if (gone(index, err) != TTSM_OK)
        return TTSM_ERR_DEVICE;
    if (injected(&fail_upload_after)) {
        if (err) {
            err->code = TTSM_ERR_DEVICE;
            strcpy(err->message, "fake: injected upload failure");
        }
        return TTSM_ERR_DEVICE;
    }
    memcpy(dst, src, n);
    atomic_fetch_add(&uploads, 1);
    return TTSM_OK;
}

static void do_register(void)
{
    ttsm_backend b = {TTSM_BACKEND_VERSION, "fake", 0,       NULL,     f_count,
                      f_memory,             f_alloc, f_free, f_upload, NULL};
    if (ttsm_register_backend(&b, NULL) != TTSM_OK)
        abort();
}

void fake_backend_register(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, do_register);
}

uint64_t fake_allocated(int index)
{
    return atomic_load(&allocated[index]);
}
uint64_t fake_peak(int index)
{
    return atomic_load(&peak[index]);
}
void fake_set_free(int index, uint64_t bytes)
{
    atomic_store(&free_mem[index], bytes);
}
void fake_fail_alloc_after(long n)
{
    atomic_store(&fail_after, n);
}
void fake_fail_upload_after(long n)
{
    atomic_store(&fail_upload_after, n);
}
void fake_set_count(size_t n)
{
    atomic_store(&count, n > 2 ? 2 : n);
}
long fake_upload_count(void)
{
    return atomic_load(&uploads);
}
void fake_reset_peaks(void)
{
    atomic_store(&peak[0], atomic_load(&allocated[0]));
    atomic_store(&peak[1], atomic_load(&allocated[1]));
}

int fake_dir_setup(void **state)
{
    fake_backend_register();
    return tu_dir_setup(state);
}
