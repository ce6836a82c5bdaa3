/* test_manager.c - the manager: hits and misses, single-flight, failures
 * reaching every waiter, admission and LRU eviction on a fake device, pin,
 * keep-alive with an injected clock, unload, invalidate with recovery,
 * cancel, the shared host mapping and the cpu fallback. */
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#include "base/alloc.h"
#include "fake_backend.h"
#include "mgr_util.h"


static ttsm_manager *mk(uint64_t fake_budget, ttsm_manager_options *o_in)
{
    ttsm_device_budget b[] = {{"fake:0", fake_budget}};
    ttsm_manager_options o = o_in ? *o_in : ttsm_manager_options_default();
    o.budgets = b;
    o.n_budgets = 1;
    ttsm_manager *m = NULL;
    ttsm_error err;
    tu_assert_ok(ttsm_manager_create(&o, &m, &err), &err);
    return m;
}

static const ttsm_device_stats *dev_stats(const ttsm_manager_stats *s, const char *name)
{
    for (size_t i = 0; i < s->n_devices; i++)
        if (strcmp(s->devices[i].device, name) == 0)
            return &s->devices[i];
    return NULL;
}

static void test_cpu_hit_and_tensors(void **state)
{
    (void)state;
    char *p = mu_write_st(tu_dir, "m1.safetensors", 8, 1.0f);
    ttsm_manager *mgr = mk(1 << 20, NULL);
    ttsm_load_config c = mu_cfg("file", p, "cpu");
    ttsm_model *a, *b;
    ttsm_error err;
    tu_assert_ok(ttsm_load(mgr, &c, &a, &err), &err);
    tu_assert_ok(ttsm_load(mgr, &c, &b, &err), &err);
    assert_ptr_equal(a, b);
    assert_string_equal(ttsm_model_device(a), "cpu");
    assert_string_equal(ttsm_model_engine(a), "file");
    char key[TTSM_KEY_HEX_SIZE];
    tu_assert_ok(ttsm_cache_key(&c, key, &err), &err);
    assert_string_equal(ttsm_model_key(a), key);
    assert_int_equal(ttsm_model_component_count(a), 1);
    assert_string_equal(ttsm_model_component_name(a, 0), "m1");
    assert_null(ttsm_model_component_name(a, 1));
    const ttsm_model_tensor *t = ttsm_model_find_tensor(a, 0, "w");
    assert_non_null(t);
    assert_ptr_equal(t, ttsm_model_get_tensor(a, 0, 0));
    assert_int_equal(t->nbytes, 32);
    assert_int_equal(t->shape[0], 8);
    assert_true(((float *)t->data)[7] == 8.0f);
    assert_int_equal(ttsm_model_bytes(a), 32);
    ttsm_manager_stats s;
    ttsm_manager_get_stats(mgr, &s);
    assert_int_equal(s.hits, 1);
    assert_int_equal(s.misses, 1);
    assert_int_equal(s.loads, 1);
    assert_int_equal(dev_stats(&s, "cpu")->in_use, 32);
    ttsm_model_release(a);
    ttsm_model_release(b);
    ttsm_manager_destroy(mgr);
    free(p);
}

static void test_fake_upload_and_shared_host(void **state)
{
    (void)state;
    char *p = mu_write_st(tu_dir, "m2.safetensors", 100, 5.0f);
    ttsm_manager *mgr = mk(1 << 20, NULL);
    ttsm_load_config c = mu_cfg("file", p, "cpu");
    ttsm_model *cpu, *f0, *f1, *again;
    ttsm_error err;
    long up0 = fake_upload_count();
    tu_assert_ok(ttsm_load(mgr, &c, &cpu, &err), &err);
    c.device = "fake";
    tu_assert_ok(ttsm_load(mgr, &c, &f0, &err), &err);
    c.device = "fake:1";
    tu_assert_ok(ttsm_load(mgr, &c, &f1, &err), &err);
    assert_string_equal(ttsm_model_device(f0), "fake:0");
    assert_string_equal(ttsm_model_device(f1), "fake:1");
    assert_int_equal(fake_upload_count() - up0, 2);
    const ttsm_model_tensor *tc = ttsm_model_get_tensor(cpu, 0, 0);
    const ttsm_model_tensor *tf = ttsm_model_get_tensor(f0, 0, 0);
    assert_ptr_not_equal(tc->data, tf->data);
    assert_memory_equal(tc->data, tf->data, 400);
    assert_int_equal(ttsm_model_bytes(f0), 512); /* 400 rounded up to 256 */
    assert_int_equal(fake_allocated(0), 512);
    ttsm_manager_stats s;
    ttsm_manager_get_stats(mgr, &s);
    assert_int_equal(s.checkpoint_opens, 1); /* one open for three devices */
    assert_int_equal(dev_stats(&s, "fake:0")->in_use, 512);
    c.device = "cpu"; /* back to cpu: a hit */
    tu_assert_ok(ttsm_load(mgr, &c, &again, &err), &err);
    assert_ptr_equal(again, cpu);
    ttsm_model_release(again);
    ttsm_model_release(cpu);
    ttsm_model_release(f0);
    ttsm_model_release(f1);
    ttsm_manager_destroy(mgr);
    assert_int_equal(fake_allocated(0), 0);
    assert_int_equal(fake_allocated(1), 0);
    free(p);
}

/* ---- engines for the concurrency tests ---------------------------------- */

static atomic_int slow_calls, flaky_calls, recover_calls, saw_recovering;
static char *slow_path;

static ttsm_status slow_factory(const ttsm_load_config *cfg, const ttsm_factory_ctx *ctx,
                                ttsm_model **out, ttsm_error *err)
{
    (void)cfg;
    atomic_fetch_add(&slow_calls, 1);
    usleep(50000);
    ttsm_model *m;
    ttsm_status st = ttsm_model_create(ctx, &m, err);
    if (st == TTSM_OK)
        st = ttsm_model_add_checkpoint(m, "main", slow_path, err);
    if (st == TTSM_OK)
        *out = m;
    return st;
}

static ttsm_status flaky_factory(const ttsm_load_config *cfg, const ttsm_factory_ctx *ctx,
                                 ttsm_model **out, ttsm_error *err)
{
    (void)cfg;
    int n = atomic_fetch_add(&flaky_calls, 1);
    usleep(50000);
    ttsm_model *m;
    ttsm_status st = ttsm_model_create(ctx, &m, err);
    if (st == TTSM_OK)
        st = ttsm_model_add_checkpoint(m, "main", slow_path, err);
    if (st == TTSM_OK && n == 0) { /* fail after opening: the open must be undone */
        ttsm_error_clear(err);
        if (err)
            strcpy(err->message, "flaky: first call fails");
        return TTSM_ERR_ENGINE;
    }
    if (st == TTSM_OK)
        *out = m;
    return st;
}

static ttsm_status recover_hook(void *user, const ttsm_load_config *cfg, ttsm_error *err)
{
    (void)user;
    (void)cfg;
    (void)err;
    atomic_fetch_add(&recover_calls, 1);
    return TTSM_OK;
}

static ttsm_status corrupt_factory(const ttsm_load_config *cfg, const ttsm_factory_ctx *ctx,
                                   ttsm_model **out, ttsm_error *err)
{
    if (ttsm_factory_ctx_recovering(ctx))
        atomic_fetch_add(&saw_recovering, 1);
    assert_ptr_equal(ttsm_factory_ctx_user(ctx), &recover_calls);
    ttsm_model *m;
    ttsm_status st = ttsm_model_create(ctx, &m, err);
    if (st == TTSM_OK)
        st = ttsm_model_add_checkpoint(m, "main", cfg->model_path, err);
    if (st == TTSM_OK) {
        ttsm_model_set_engine_data(m, malloc(16), free);
        *out = m;
    }
    return st;
}

static void register_engines(void)
{
    static int done;
    if (done)
        return;
    done = 1;
    ttsm_error err;
    ttsm_engine_caps caps = ttsm_engine_caps_default();
    tu_assert_ok(ttsm_register_engine("slow", slow_factory, NULL, &err), &err);
    tu_assert_ok(ttsm_register_engine("flaky", flaky_factory, NULL, &err), &err);
    caps.can_corrupt = 1;
    caps.recover = recover_hook;
    caps.user = &recover_calls;
    tu_assert_ok(ttsm_register_engine("corrupt", corrupt_factory, &caps, &err), &err);
    caps = ttsm_engine_caps_default();
    caps.devices = "cpu";
    tu_assert_ok(ttsm_register_engine("cpuonly", corrupt_factory, &caps, &err), &err);
    ttsm_status st = ttsm_register_engine("slow", slow_factory, NULL, &err);
    tu_assert_error(st, &err, TTSM_ERR_INVALID_ARGUMENT, "already registered");
    st = ttsm_register_engine("file", slow_factory, NULL, &err);
    tu_assert_error(st, &err, TTSM_ERR_INVALID_ARGUMENT, "already registered");
}

typedef struct {
    ttsm_manager *mgr;
    const char *engine;
    ttsm_model *model;
    ttsm_status st;
    ttsm_error err;
} job;

static void *run_job(void *arg)
{
    job *j = arg;
    ttsm_load_config c = mu_cfg(j->engine, slow_path, "fake:0");
    j->st = ttsm_load(j->mgr, &c, &j->model, &j->err);
    return NULL;
}

static void test_single_flight_16(void **state)
{
    (void)state;
    register_engines();
    slow_path = mu_write_st(tu_dir, "slow.safetensors", 64, 0.0f);
    ttsm_manager *mgr = mk(1 << 20, NULL);
    atomic_store(&slow_calls, 0);
    job jobs[16];
    pthread_t th[16];
    for (int i = 0; i < 16; i++) {
        jobs[i] = (job){mgr, "slow", NULL, TTSM_OK, {0}};
        pthread_create(&th[i], NULL, run_job, &jobs[i]);
    }
    for (int i = 0; i < 16; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(atomic_load(&slow_calls), 1);
    for (int i = 0; i < 16; i++) {
        tu_assert_ok(jobs[i].st, &jobs[i].err);
        assert_ptr_equal(jobs[i].model, jobs[0].model);
    }
    ttsm_manager_stats s;
    ttsm_manager_get_stats(mgr, &s);
    assert_int_equal(s.misses, 1);
    assert_int_equal(s.hits, 15);
    assert_int_equal(s.loads, 1);
    for (int i = 0; i < 16; i++)
        ttsm_model_release(jobs[i].model);
    ttsm_manager_destroy(mgr);
    free(slow_path);
}

static void test_failure_reaches_all_waiters(void **state)
{
    (void)state;
    register_engines();
    slow_path = mu_write_st(tu_dir, "flaky.safetensors", 64, 0.0f);
    ttsm_manager *mgr = mk(1 << 20, NULL);
    atomic_store(&flaky_calls, 0);
    job jobs[8];
    pthread_t th[8];
    for (int i = 0; i < 8; i++) {
        jobs[i] = (job){mgr, "flaky", NULL, TTSM_OK, {0}};
        pthread_create(&th[i], NULL, run_job, &jobs[i]);
    }
    for (int i = 0; i < 8; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(atomic_load(&flaky_calls), 1);
    for (int i = 0; i < 8; i++)
        tu_assert_error(jobs[i].st, &jobs[i].err, TTSM_ERR_ENGINE, "flaky: first call fails");
    ttsm_manager_stats s;
    ttsm_manager_get_stats(mgr, &s);
    assert_int_equal(s.failures, 1);
    assert_int_equal(s.entries, 0);
    assert_int_equal(dev_stats(&s, "fake:0")->reserved, 0);
    assert_int_equal(fake_allocated(0), 0);
    job retry = {mgr, "flaky", NULL, TTSM_OK, {0}};
    run_job(&retry);
    tu_assert_ok(retry.st, &retry.err);
    assert_int_equal(atomic_load(&flaky_calls), 2);
    ttsm_model_release(retry.model);
    ttsm_manager_destroy(mgr);
    free(slow_path);
}

/* ---- admission and eviction ---------------------------------------------- */

static char *paths[5];

static ttsm_model *load_n(ttsm_manager *mgr, int i, ttsm_status want, ttsm_error *err)
{
    ttsm_load_config c = mu_cfg("file", paths[i], "fake:0");
    ttsm_model *m = NULL;
    ttsm_status st = ttsm_load(mgr, &c, &m, err);
    if (st != want)
        fail_msg("load %d: %s: %s", i, ttsm_status_name(st), err->message);
    return m;
}

static void key_of(int i, char key[TTSM_KEY_HEX_SIZE])
{
    ttsm_load_config c = mu_cfg("file", paths[i], "fake:0");
    ttsm_error err;
    tu_assert_ok(ttsm_cache_key(&c, key, &err), &err);
}

static void make_paths(void)
{
    for (int i = 0; i < 5; i++) {
        char name[32];
        snprintf(name, sizeof name, "e%d.safetensors", i);
        free(paths[i]);
        paths[i] = mu_write_st(tu_dir, name, 256, (float)i); /* 1024 bytes each */
    }
}

static int cached(ttsm_manager *mgr, int i)
{
    char key[TTSM_KEY_HEX_SIZE];
    key_of(i, key);
    ttsm_entry_info *v;
    size_t n;
    ttsm_error err;
    tu_assert_ok(ttsm_manager_list(mgr, &v, &n, &err), &err);
    int found = 0;
    for (size_t k = 0; k < n; k++)
        found |= strcmp(v[k].key, key) == 0;
    ttsm_free(v);
    return found;
}

static void test_eviction_lru_and_pin(void **state)
{
    (void)state;
    make_paths();
    ttsm_manager *mgr = mk(3 * 1024, NULL);
    ttsm_error err;
    for (int i = 0; i < 3; i++)
        ttsm_model_release(load_n(mgr, i, TTSM_OK, &err));
    ttsm_model_release(load_n(mgr, 0, TTSM_OK, &err)); /* 0 is now most recent */
    ttsm_model_release(load_n(mgr, 3, TTSM_OK, &err)); /* evicts 1, the LRU */
    assert_true(cached(mgr, 0) && !cached(mgr, 1) && cached(mgr, 2) && cached(mgr, 3));
    char k2[TTSM_KEY_HEX_SIZE];
    key_of(2, k2);
    tu_assert_ok(ttsm_pin(mgr, k2, &err), &err); /* 2 is LRU now, but pinned */
    ttsm_model_release(load_n(mgr, 4, TTSM_OK, &err));
    assert_true(!cached(mgr, 0) && cached(mgr, 2) && cached(mgr, 3) && cached(mgr, 4));
    ttsm_manager_stats s;
    ttsm_manager_get_stats(mgr, &s);
    assert_int_equal(s.evictions, 2);
    const ttsm_device_stats *d = dev_stats(&s, "fake:0");
    assert_int_equal(d->in_use, 3072);
    assert_int_equal(d->peak, 3072);
    assert_int_equal(fake_peak(0) <= 3072, 1);
    tu_assert_ok(ttsm_unpin(mgr, k2, &err), &err);
    ttsm_manager_destroy(mgr);
    assert_int_equal(fake_allocated(0), 0);
}

static void test_over_budget_message(void **state)
{
    (void)state;
    make_paths();
    ttsm_manager *mgr = mk(2 * 1024, NULL);
    ttsm_error err;
    ttsm_model *a = load_n(mgr, 0, TTSM_OK, &err);
    ttsm_model *b = load_n(mgr, 1, TTSM_OK, &err);
    char k0[TTSM_KEY_HEX_SIZE];
    key_of(0, k0);
    load_n(mgr, 2, TTSM_ERR_OUT_OF_MEMORY, &err);
    char *msg = tu_fmt("fake:0: over budget: file/%s needs 1024 bytes; budget 2048, in use 2048, "
                       "reserved 0; held by: %.8s file/%s 1024 B referenced",
                       paths[2], k0, paths[0]);
    tu_assert_error(TTSM_ERR_OUT_OF_MEMORY, &err, TTSM_ERR_OUT_OF_MEMORY, msg);
    free(msg);
    assert_true(ttsm_status_is(err.code, TTSM_ERR_DEVICE));
    assert_non_null(strstr(err.hint, "raise its budget"));
    ttsm_manager_stats s;
    ttsm_manager_get_stats(mgr, &s);
    assert_int_equal(s.failures, 1);
    assert_int_equal(dev_stats(&s, "fake:0")->reserved, 0);
    ttsm_model_release(a);
    ttsm_model_release(b);
    ttsm_manager_destroy(mgr);
}

static void test_cpu_fallback(void **state)
{
    (void)state;
    make_paths();
    ttsm_manager_options o = ttsm_manager_options_default();
    o.allow_cpu_fallback = 1;
    ttsm_manager *mgr = mk(1024, &o);
    ttsm_error err;
    ttsm_model *a = load_n(mgr, 0, TTSM_OK, &err);
    ttsm_model *b = load_n(mgr, 1, TTSM_OK, &err);
    assert_string_equal(ttsm_model_device(a), "fake:0");
    assert_string_equal(ttsm_model_device(b), "cpu");
    ttsm_model_release(a);
    ttsm_model_release(b);
    ttsm_manager_destroy(mgr);
}

static void test_device_free_memory_limits_budget(void **state)
{
    (void)state;
    make_paths();
    ttsm_manager_options o = ttsm_manager_options_default();
    o.device_reserve_bytes = 4096;
    fake_set_free(0, 4096 + 1500); /* room for one 1024-byte model */
    ttsm_manager *mgr = mk(1 << 20, &o);
    ttsm_error err;
    ttsm_model *a = load_n(mgr, 0, TTSM_OK, &err);
    fake_set_free(0, 4096 + 1500 - 1024); /* what the device reports after it */
    load_n(mgr, 1, TTSM_ERR_OUT_OF_MEMORY, &err);
    tu_assert_error(err.code, &err, TTSM_ERR_OUT_OF_MEMORY, "budget 1500");
    ttsm_model_release(a);
    ttsm_manager_destroy(mgr);
    fake_set_free(0, 1ull << 40);
}

static uint64_t fake_now;
static uint64_t test_clock(void *user)
{
    (void)user;
    return fake_now;
}

static void test_keep_alive(void **state)
{
    (void)state;
    make_paths();
    ttsm_manager_options o = ttsm_manager_options_default();
    o.keep_alive_ms = 1000;
    o.clock = test_clock;
    fake_now = 5000000000ull;
    ttsm_manager *mgr = mk(1 << 20, &o);
    ttsm_error err;
    ttsm_model *a = load_n(mgr, 0, TTSM_OK, &err);
    fake_now += 3000000000ull; /* referenced: never expires */
    assert_int_equal(ttsm_manager_sweep(mgr), 0);
    ttsm_model_release(a);
    fake_now += 500000000ull;
    assert_int_equal(ttsm_manager_sweep(mgr), 0);
    ttsm_entry_info *v;
    size_t n;
    tu_assert_ok(ttsm_manager_list(mgr, &v, &n, &err), &err);
    assert_int_equal(n, 1);
    assert_true(v[0].idle_seconds > 0.49 && v[0].idle_seconds < 0.51);
    assert_int_equal(v[0].refs, 0);
    ttsm_free(v);
    fake_now += 600000000ull;
    assert_int_equal(ttsm_manager_sweep(mgr), 1);
    assert_false(cached(mgr, 0));
    ttsm_manager_destroy(mgr);
}

static void test_unload_and_invalidate(void **state)
{
    (void)state;
    register_engines();
    make_paths();
    ttsm_manager *mgr = mk(1 << 20, NULL);
    ttsm_error err;
    ttsm_load_config c = mu_cfg("corrupt", paths[0], "fake:0");
    char key[TTSM_KEY_HEX_SIZE];
    tu_assert_ok(ttsm_cache_key(&c, key, &err), &err);
    ttsm_model *m, *m2;
    tu_assert_ok(ttsm_load(mgr, &c, &m, &err), &err);
    ttsm_status st = ttsm_unload(mgr, key, &err);
    tu_assert_error(st, &err, TTSM_ERR_INVALID_ARGUMENT, "has 1 references");
    atomic_store(&recover_calls, 0);
    atomic_store(&saw_recovering, 0);
    tu_assert_ok(ttsm_invalidate(mgr, key, &err), &err);
    ttsm_manager_stats s;
    ttsm_manager_get_stats(mgr, &s);
    assert_int_equal(s.entries, 0);
    assert_int_equal(s.orphans, 1);
    assert_int_equal(dev_stats(&s, "fake:0")->in_use, 1024); /* still held */
    assert_true(((float *)ttsm_model_get_tensor(m, 0, 0)->data)[3] == 3.0f);
    st = ttsm_unload(mgr, key, &err);
    tu_assert_error(st, &err, TTSM_ERR_NOT_FOUND, key);
    tu_assert_ok(ttsm_load(mgr, &c, &m2, &err), &err);
    assert_ptr_not_equal(m, m2);
    assert_int_equal(atomic_load(&recover_calls), 1);
    assert_int_equal(atomic_load(&saw_recovering), 1);
    ttsm_model_release(m);
    ttsm_manager_get_stats(mgr, &s);
    assert_int_equal(s.orphans, 0);
    assert_int_equal(dev_stats(&s, "fake:0")->in_use, 1024);
    ttsm_model_release(m2);
    tu_assert_ok(ttsm_unload(mgr, key, &err), &err); /* now unreferenced */
    ttsm_manager_get_stats(mgr, &s);
    assert_int_equal(s.unloads, 1);
    assert_int_equal(dev_stats(&s, "fake:0")->in_use, 0);
    tu_assert_ok(ttsm_load(mgr, &c, &m2, &err), &err); /* no recovery owed now */
    assert_int_equal(atomic_load(&recover_calls), 1);
    ttsm_model_release(m2);
    c.engine = "cpuonly";
    st = ttsm_load(mgr, &c, &m2, &err);
    tu_assert_error(st, &err, TTSM_ERR_DEVICE, "runs on cpu, not on fake:0");
    c.engine = "nosuch";
    st = ttsm_load(mgr, &c, &m2, &err);
    tu_assert_error(st, &err, TTSM_ERR_NOT_FOUND, "engines: file");
    ttsm_manager_destroy(mgr);
}

static int cancel_at;
static int cancel_progress(void *user, const char *key, uint64_t done, uint64_t total)
{
    (void)key;
    (void)total;
    (*(int *)user)++;
    return cancel_at && done >= (uint64_t)cancel_at;
}

static void test_cancel_and_alloc_failure(void **state)
{
    (void)state;
    char *d2 = tu_path(tu_dir, "two");
    mkdir(d2, 0700);
    char *a = mu_write_st(d2, "b.safetensors", 256, 0), *b = mu_write_st(d2, "a.safetensors", 256, 0);
    int calls = 0;
    ttsm_manager_options o = ttsm_manager_options_default();
    o.progress = cancel_progress;
    o.progress_user = &calls;
    ttsm_manager *mgr = mk(1 << 20, &o);
    ttsm_load_config c = mu_cfg("file", d2, "fake:0");
    ttsm_model *m;
    ttsm_error err;
    cancel_at = 1024;
    ttsm_status st = ttsm_load(mgr, &c, &m, &err);
    tu_assert_error(st, &err, TTSM_ERR_CANCELLED, "stopped the load");
    assert_int_equal(calls, 1);
    ttsm_manager_stats s;
    ttsm_manager_get_stats(mgr, &s);
    assert_int_equal(s.entries, 0);
    assert_int_equal(dev_stats(&s, "fake:0")->reserved, 0);
    assert_int_equal(dev_stats(&s, "fake:0")->in_use, 0);
    assert_int_equal(fake_allocated(0), 0);
    fake_fail_alloc_after(2); /* the second component's allocation fails */
    cancel_at = 0;
    st = ttsm_load(mgr, &c, &m, &err);
    tu_assert_error(st, &err, TTSM_ERR_OUT_OF_MEMORY, "injected");
    assert_int_equal(fake_allocated(0), 0);
    fake_fail_alloc_after(0);
    tu_assert_ok(ttsm_load(mgr, &c, &m, &err), &err);
    assert_int_equal(ttsm_model_component_count(m), 2);
    assert_string_equal(ttsm_model_component_name(m, 0), "a"); /* sorted */
    assert_string_equal(ttsm_model_component_name(m, 1), "b");
    ttsm_manager_destroy(mgr); /* with a reference out: the model stays valid */
    assert_true(((float *)ttsm_model_get_tensor(m, 1, 0)->data)[255] == 255.0f);
    ttsm_model_release(m);
    assert_int_equal(fake_allocated(0), 0);
    free(a);
    free(b);
    free(d2);
}

static int log_lines;
static void count_log(void *user, int level, const char *msg)
{
    (void)user;
    (void)level;
    log_lines += msg[0] != '\0';
}

static void test_log_and_file_errors(void **state)
{
    (void)state;
    ttsm_manager_options o = ttsm_manager_options_default();
    o.log = count_log;
    ttsm_manager *mgr = mk(1 << 20, &o);
    char *bad = tu_write_file(tu_dir, "bad.safetensors", "\x02\0\0\0\0\0\0\0{}xx", 12);
    ttsm_load_config c = mu_cfg("file", bad, "cpu");
    ttsm_model *m;
    ttsm_error err;
    ttsm_status st = ttsm_load(mgr, &c, &m, &err);
    assert_true(ttsm_status_is(st, TTSM_ERR_LOAD));
    assert_int_not_equal(st, TTSM_OK);
    assert_true(log_lines >= 1);
    c.model_path = NULL;
    st = ttsm_load(mgr, &c, &m, &err);
    tu_assert_error(st, &err, TTSM_ERR_INVALID_ARGUMENT, "model_path");
    ttsm_manager_stats s;
    ttsm_manager_get_stats(mgr, &s);
    assert_int_equal(s.entries, 0);
    ttsm_manager_destroy(mgr);
    free(bad);
}

static char *last_loaded;
static void keep_loaded_line(void *user, int level, const char *msg)
{
    (void)user;
    (void)level;
    if (strncmp(msg, "loaded ", 7) == 0) {
        free(last_loaded);
        last_loaded = strdup(msg);
    }
}

/* A log line naming a file deep in the tree arrives whole, not cut at a
 * fixed length (the path here is over 600 bytes). */
static void test_log_line_with_a_deep_path_is_whole(void **state)
{
    (void)state;
    char *deep = strdup(tu_dir);
    for (int i = 0; i < 12; i++) {
        char *next = tu_fmt("%s/%s%02d", deep,
                            "a-folder-name-of-fifty-bytes-in-a-deep-checkout-", i);
        free(deep);
        deep = next;
        assert_int_equal(mkdir(deep, 0755), 0);
    }
    char *p = mu_write_st(deep, "deep.safetensors", 8, 1.0f);
    assert_true(strlen(p) > 600);
    ttsm_manager_options o = ttsm_manager_options_default();
    o.log = keep_loaded_line;
    ttsm_manager *mgr = mk(1 << 20, &o);
    ttsm_load_config c = mu_cfg("file", p, "cpu");
    ttsm_model *m;
    ttsm_error err;
    tu_assert_ok(ttsm_load(mgr, &c, &m, &err), &err);
    assert_non_null(last_loaded);
    if (!strstr(last_loaded, p) || !strstr(last_loaded, " on cpu: 32 bytes"))
        fail_msg("log line cut: %s", last_loaded);
    ttsm_model_release(m);
    ttsm_manager_destroy(mgr);
    free(last_loaded);
    last_loaded = NULL;
    free(p);
    free(deep);
}

/* Every allocation of a load fails in turn: each gives OK or
 * TTSM_ERR_OUT_OF_MEMORY, and nothing leaks (ASan) or stays booked. */
static void test_allocation_torture(void **state)
{
    (void)state;
    make_paths();
    const char *devices[] = {"cpu", "fake:0"};
    for (int d = 0; d < 2; d++) {
        int ok = 0;
        for (long n = 1; n < 400 && !ok; n++) {
            ttsm_manager *mgr;
            ttsm_error err;
            tu_assert_ok(ttsm_manager_create(NULL, &mgr, &err), &err);
            ttsm_load_config c = mu_cfg("file", paths[0], devices[d]);
            ttsm_model *m;
            ttsm__alloc_fail_after(n);
            ttsm_status st = ttsm_load(mgr, &c, &m, &err);
            ttsm__alloc_fail_after(0);
            if (st == TTSM_OK) {
                ok = 1;
                ttsm_model_release(m);
            } else if (st != TTSM_ERR_OUT_OF_MEMORY) {
                fail_msg("allocation %ld on %s: %s: %s", n, devices[d], ttsm_status_name(st),
                         err.message);
            }
            ttsm_manager_stats s;
            ttsm_manager_get_stats(mgr, &s);
            assert_int_equal(s.entries, (size_t)ok);
            for (size_t i = 0; i < s.n_devices; i++)
                assert_int_equal(s.devices[i].reserved, 0);
            ttsm_manager_destroy(mgr);
        }
        assert_true(ok);
    }
    assert_int_equal(fake_allocated(0), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cpu_hit_and_tensors),
        cmocka_unit_test(test_fake_upload_and_shared_host),
        cmocka_unit_test(test_single_flight_16),
        cmocka_unit_test(test_failure_reaches_all_waiters),
        cmocka_unit_test(test_eviction_lru_and_pin),
        cmocka_unit_test(test_over_budget_message),
        cmocka_unit_test(test_cpu_fallback),
        cmocka_unit_test(test_device_free_memory_limits_budget),
        cmocka_unit_test(test_keep_alive),
        cmocka_unit_test(test_unload_and_invalidate),
        cmocka_unit_test(test_cancel_and_alloc_failure),
        cmocka_unit_test(test_log_and_file_errors),
        cmocka_unit_test(test_log_line_with_a_deep_path_is_whole),
        cmocka_unit_test(test_allocation_torture),
    };
    int rc = cmocka_run_group_tests(tests, fake_dir_setup, tu_dir_teardown);
    for (int i = 0; i < 5; i++)
        free(paths[i]);
    return rc;
}
