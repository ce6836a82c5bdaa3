/* test_cuda_ring.c - the CUDA upload's pinned staging ring, run against the
 * stand-in driver (tests/unit/fake_cuda.c), whose copies are asynchronous
 * and which records every call: a buffer is never filled or copied from
 * again while its copy is in flight, at most four copies are in flight and
 * more than one is (the file read of one chunk overlaps the copies of the
 * others), every byte arrives, from files (pread into the ring) and from
 * memory; and the checks themselves catch a ring that breaks the rules. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "devices/backend.h"
#include "devices/cuda.h"
#include "mgr_util.h"
#include "testutil.h"

struct fake_cuda_call {
    char op;
    int arg;
};

static void *dl;
static char *dir;

#define FAKE(type, name) (*(type *)sym(#name))

static void *sym(const char *name)
{
    void *p = dlsym(dl, name);
    if (!p)
        fail_msg("the stand-in driver has no %s", name);
    return p;
}

static void reset_checks(void)
{
    ((void (*)(void))sym("fake_cuda_reset_checks"))();
}

/* The ring's rules, read from the driver's counters and its call log. */
static void assert_ring_kept_its_rules(long min_copies)
{
    assert_int_equal(FAKE(long, fake_cuda_reuse_violations), 0);
    assert_int_equal(FAKE(long, fake_cuda_write_violations), 0);
    assert_int_equal(FAKE(long, fake_cuda_pageable_copies), 0);
    long max = FAKE(long, fake_cuda_max_in_flight);
    if (max < 2 || max > 4)
        fail_msg("%ld copies in flight at most; want 2..4 (overlap, within the ring)", max);
    assert_true(FAKE(long, fake_cuda_copies) >= min_copies);
    /* In the log: before buffer b is copied from again, the event recorded
     * after its previous copy was synchronised. */
    const struct fake_cuda_call *log = sym("fake_cuda_log");
    long n = FAKE(long, fake_cuda_log_len);
    assert_true(n <= 4096);
    int event_of[64], waited[64];
    for (int i = 0; i < 64; i++)
        event_of[i] = -1, waited[i] = 1;
    int last_buffer = -1;
    for (long i = 0; i < n; i++) {
        const struct fake_cuda_call *c = &log[i];
        if (c->op == 'C') {
            assert_true(c->arg >= 0 && c->arg < 64);
            if (!waited[c->arg])
                fail_msg("call %ld: buffer %d copied again before its event completed", i,
                         c->arg);
            waited[c->arg] = 0;
            last_buffer = c->arg;
        } else if (c->op == 'R' && last_buffer >= 0) {
            event_of[last_buffer] = c->arg;
            last_buffer = -1;
        } else if (c->op == 'S') {
            for (int b = 0; b < 64; b++)
                if (event_of[b] == c->arg)
                    waited[b] = 1;
        } else if (c->op == 'W') {
            for (int b = 0; b < 64; b++)
                waited[b] = 1;
        }
    }
}

/* A file of one F32 tensor of `n` elements, element i = i: a pattern in
 * which a chunk uploaded from the wrong place or too early shows. */
static void load_to_fake_gpu(ttsm_io_mode io)
{
    size_t n = (size_t)37 << 20 >> 2; /* 37 MiB: five chunks through a ring of four */
    char *p = mu_write_st(dir, "ring.safetensors", n, 0.0f);
    ttsm_manager_options o = ttsm_manager_options_default();
    o.io_mode = io;
    ttsm_manager *mgr;
    ttsm_error err;
    tu_assert_ok(ttsm_manager_create(&o, &mgr, &err), &err);
    reset_checks();
    ttsm_load_config c = mu_cfg("file", p, "cuda:0");
    ttsm_model *m;
    tu_assert_ok(ttsm_load(mgr, &c, &m, &err), &err);
    assert_string_equal(ttsm_model_device(m), "cuda:0");
    assert_ring_kept_its_rules(5);
    /* The fake's device memory is host memory: every element is in place. */
    const ttsm_model_tensor *t = ttsm_model_get_tensor(m, 0, 0);
    const float *d = t->data;
    for (size_t i = 0; i < n; i += 4093)
        if (d[i] != (float)i)
            fail_msg("element %zu is %g on the device, %g in the file", i, (double)d[i],
                     (double)i);
    assert_true(d[n - 1] == (float)(n - 1));
    ttsm_model_release(m);
    ttsm_manager_destroy(mgr);
    unlink(p);
    free(p);
}

static void files_upload_through_the_ring(void **state)
{
    (void)state;
    load_to_fake_gpu(TTSM_IO_MMAP);
    load_to_fake_gpu(TTSM_IO_READ);
}

static void memory_uploads_through_the_ring(void **state)
{
    (void)state;
    ttsm_backend b;
    int index;
    assert_int_equal(ttsm__backend_lookup("cuda:1", &b, &index), 0);
    assert_true(ttsm__cuda_is_backend(&b));
    uint64_t n = (uint64_t)50 << 20;
    unsigned char *src = malloc(n);
    for (uint64_t i = 0; i < n; i++)
        src[i] = (unsigned char)(i * 2654435761u >> 13);
    ttsm_error err;
    void *dst;
    reset_checks();
    tu_assert_ok(b.alloc(b.user, index, n, &dst, &err), &err);
    tu_assert_ok(b.upload(b.user, index, dst, src, n, &err), &err);
    tu_assert_ok(b.sync(b.user, index, &err), &err);
    assert_ring_kept_its_rules(7);
    assert_memory_equal(dst, src, n);
    b.free(b.user, index, dst, n);
    free(src);
}

/* The checks are not vacuous: a ring that copies from a buffer whose copy
 * is still in flight, or refills it, is caught. */
static void the_checks_catch_a_broken_ring(void **state)
{
    (void)state;
    typedef int (*host_alloc_fn)(void **, size_t, unsigned);
    typedef int (*copy_fn)(unsigned long long, const void *, size_t, void *);
    typedef int (*ctx_push_fn)(void *);
    typedef int (*sync_fn)(void *);
    host_alloc_fn host_alloc = (host_alloc_fn)sym("cuMemHostAlloc");
    copy_fn copy = (copy_fn)sym("cuMemcpyHtoDAsync_v2");
    ctx_push_fn push = (ctx_push_fn)sym("cuCtxPushCurrent_v2");
    sync_fn stream_sync = (sync_fn)sym("cuStreamSynchronize");
    static char ctx;
    unsigned char *stage;
    assert_int_equal(host_alloc((void **)&stage, 1 << 20, 0), 0);
    unsigned char *dev = malloc(1 << 20);
    memset(stage, 1, 1 << 20);
    reset_checks();
    push(&ctx);
    assert_int_equal(copy((unsigned long long)(size_t)dev, stage, 1 << 20, NULL), 0);
    assert_int_equal(copy((unsigned long long)(size_t)dev, stage, 1 << 20, NULL), 0);
    assert_int_equal(FAKE(long, fake_cuda_reuse_violations), 1);
    memset(stage, 2, 1 << 20); /* refilled while both copies are queued */
    stream_sync(NULL);
    assert_int_equal(FAKE(long, fake_cuda_write_violations), 2);
    assert_int_equal(FAKE(long, fake_cuda_max_in_flight), 2);
    assert_int_equal(dev[0], 2); /* the copy ran late: the bytes were the new ones */
    reset_checks();
    free(dev);
    ((int (*)(void *))sym("cuMemFreeHost"))(stage);
}

int main(void)
{
    setenv("TTSM_CUDA_DRIVER", FAKECUDA_PATH, 1);
    setenv("FAKE_CUDA_MODE", "two", 1);
    ttsm__cuda_reset();
    dir = strdup(tu_mkdtemp());
    if (ttsm__cuda_device_count() != 2) {
        fprintf(stderr, "the stand-in driver was not found: %s\n", ttsm_cuda_status());
        return 1;
    }
    dl = dlopen(FAKECUDA_PATH, RTLD_NOW | RTLD_NOLOAD);
    if (!dl) {
        fprintf(stderr, "cannot reach the stand-in driver: %s\n", dlerror());
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(files_upload_through_the_ring),
        cmocka_unit_test(memory_uploads_through_the_ring),
        cmocka_unit_test(the_checks_catch_a_broken_ring),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    dlclose(dl);
    ttsm__cuda_reset();
    tu_rmtree(dir);
    free(dir);
    return rc;
}
