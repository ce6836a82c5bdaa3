/* test_engine_build.c - engine objects in the one cache: a build hook run
 * once per load after the tensors are on their device (single flight,
 * failures reaching every waiter), attached to a manifest engine or part of
 * a code engine; inner references that keep an entry's memory but never its
 * place in the cache; engine data dropped outside the manager lock on
 * evict, unload, invalidate and destroy; admission on an estimate and the
 * charge afterwards; on_evict, ttsm_manager_free and the keep-alive timer;
 * and the manifest fields behind them. */
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#include "dlpack.h"
#include "fake_backend.h"
#include "mgr_util.h"

static char *dir, *root;

/* ---- an engine object: holds an inner export of its own first tensor --- */

typedef struct engine_obj {
    ttsm_model *weights;     /* an inner reference (ttsm_model_retain_inner) */
    DLManagedTensor *weight; /* on cpu: exported with TTSM_DLPACK_INNER */
    ttsm_manager *mgr;
} engine_obj;

static atomic_int builds, destroys, fail_build, self_load, keep_weight;
static atomic_int build_sleep_us = 20000;
static atomic_ullong charge_bytes, seen_estimate;
static ttsm_model *kept_weights; /* a reference someone kept after the object died */
static ttsm_manager *current_mgr;

/* Stress mode: a destroyed object's inner reference is dropped later, on
 * another thread, as a torch deleter would. */
static atomic_int graveyard_on;
static pthread_mutex_t grave_lock = PTHREAD_MUTEX_INITIALIZER;
static ttsm_model *grave[4096];
static size_t n_grave;

static void obj_destroy(void *p)
{
    engine_obj *o = p;
    if (atomic_load(&graveyard_on)) {
        pthread_mutex_lock(&grave_lock);
        if (n_grave < sizeof grave / sizeof grave[0]) {
            grave[n_grave++] = o->weights;
            o->weights = NULL;
        }
        pthread_mutex_unlock(&grave_lock);
        if (o->weights)
            ttsm_model_release_inner(o->weights);
        free(o);
        atomic_fetch_add(&destroys, 1);
        return;
    }
    /* Engine data is dropped with no manager lock held: calls work here. */
    ttsm_manager_stats s;
    ttsm_manager_get_stats(o->mgr, &s);
    if (o->weight)
        o->weight->deleter(o->weight);
    if (atomic_load(&keep_weight))
        kept_weights = o->weights;
    else
        ttsm_model_release_inner(o->weights);
    free(o);
    atomic_fetch_add(&destroys, 1);
}

static ttsm_status build(const ttsm_load_config *cfg, const ttsm_factory_ctx *ctx,
                         ttsm_model *model, ttsm_error *err)
{
    atomic_fetch_add(&builds, 1);
    atomic_store(&seen_estimate, ttsm_factory_ctx_estimate(ctx));
    usleep((useconds_t)atomic_load(&build_sleep_us)); /* for every other thread to wait on it */
    if (atomic_load(&self_load)) {
        ttsm_model *again = NULL;
        ttsm_status st = ttsm_load(current_mgr, cfg, &again, err);
        if (st == TTSM_OK) {
            ttsm_model_release(again);
            snprintf(err->message, sizeof err->message, "loading itself succeeded");
            return err->code = TTSM_ERR_LOAD;
        }
        return st;
    }
    engine_obj *o = calloc(1, sizeof *o);
    o->mgr = current_mgr;
    ttsm_status st = TTSM_OK;
    if (strcmp(ttsm_model_device(model), "cpu") == 0 &&
        (st = ttsm_model_export_dlpack_legacy(model, 0, 0, TTSM_DLPACK_INNER, &o->weight, err)) !=
            TTSM_OK) {
        free(o);
        return st;
    }
    ttsm_model_retain_inner(model);
    o->weights = model;
    ttsm_model_set_engine_data(model, o, obj_destroy);
    if (atomic_load(&charge_bytes) &&
        (st = ttsm_factory_ctx_charge(ctx, atomic_load(&charge_bytes), err)) != TTSM_OK)
        return st;
    if (atomic_load(&fail_build)) {
        snprintf(err->message, sizeof err->message, "tiny: build failed on purpose");
        err->hint[0] = '\0';
        err->n_attempts = 0;
        return err->code = TTSM_ERR_ENGINE;
    }
    return TTSM_OK;
}

/* A code engine: the file at model_path, then the build hook. */
static ttsm_status code_factory(const ttsm_load_config *cfg, const ttsm_factory_ctx *ctx,
                                ttsm_model **out, ttsm_error *err)
{
    ttsm_model *m;
    ttsm_status st = ttsm_model_create(ctx, &m, err);
    if (st == TTSM_OK)
        st = ttsm_model_add_checkpoint(m, "w", cfg->model_path, err);
    if (st == TTSM_OK)
        *out = m;
    return st;
}

static const char tiny_manifest[] =
    "{\"schema\": 1, \"name\": \"tiny_attach\", \"runtime\": \"pytorch\","
    " \"model_types\": [\"tts\"], \"devices\": [\"cpu\"], \"folder\": \"Tiny\","
    " \"default_model\": \"a\", \"engine_memory\": {\"extra_bytes\": 512},"
    " \"capabilities\": {\"supports_voice_conversion\": false, \"has_fallback\": false,"
    "  \"can_corrupt\": false, \"requires_special_init\": false,"
    "  \"language_selects_model\": false, \"single_instance\": false, \"recovery\": \"none\"},"
    " \"models\": [{\"name\": \"a\", \"components\": [{\"name\": \"w\", \"kind\": \"tensors\","
    "   \"files\": [\"w.safetensors\"]}]},"
    "  {\"name\": \"b\", \"components\": [{\"name\": \"w\", \"kind\": \"tensors\","
    "   \"files\": [\"w.safetensors\"]}]}]}";

static void register_once(void)
{
    static int done;
    if (done)
        return;
    done = 1;
    ttsm_error err;
    ttsm_engine_caps caps = ttsm_engine_caps_default();
    caps.build = build;
    tu_assert_ok(ttsm_register_engine("tiny_code", code_factory, &caps, &err), &err);
    caps.extra_bytes = 1024;
    tu_assert_ok(ttsm_register_engine("tiny_est", code_factory, &caps, &err), &err);
    tu_assert_ok(ttsm_engines_add_manifest(tiny_manifest, sizeof tiny_manifest - 1,
                                           "test:tiny_attach", &err),
                 &err);
    caps = ttsm_engine_caps_default();
    caps.build = build;
    tu_assert_ok(ttsm_register_engine("tiny_attach", NULL, &caps, &err), &err);
}

static int setup(void **state)
{
    (void)state;
    fake_backend_register();
    dir = strdup(tu_mkdtemp());
    root = tu_path(dir, "root");
    char *tts = tu_path(root, "TTS"), *tiny = tu_path(tts, "Tiny");
    char *a = tu_path(tiny, "a"), *b = tu_path(tiny, "b");
    const char *dirs[] = {root, tts, tiny, a, b};
    for (size_t i = 0; i < 5; i++)
        mkdir(dirs[i], 0755);
    free(mu_write_st(a, "w.safetensors", 64, 1.0f));  /* 256 bytes */
    free(mu_write_st(b, "w.safetensors", 64, 100.0f));
    free(tts);
    free(tiny);
    free(a);
    free(b);
    register_once();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tu_rmtree(dir);
    free(dir);
    free(root);
    return 0;
}

static void reset(void)
{
    atomic_store(&builds, 0);
    atomic_store(&destroys, 0);
    atomic_store(&fail_build, 0);
    atomic_store(&self_load, 0);
    atomic_store(&keep_weight, 0);
    atomic_store(&charge_bytes, 0);
    kept_weights = NULL;
}

/* on_evict records (outside the lock: it reads the stats). */
static char reasons[16][32];
static atomic_int n_reasons;
static void on_evict(void *user, const ttsm_entry_info *e, const char *why)
{
    ttsm_manager_stats s;
    ttsm_manager_get_stats(current_mgr, &s);
    (void)user;
    (void)e;
    int i = atomic_fetch_add(&n_reasons, 1);
    if (i < 16)
        snprintf(reasons[i], sizeof reasons[i], "%s", why);
}

static ttsm_manager *mk(const char *dev, uint64_t budget, ttsm_manager_options *o_in)
{
    ttsm_device_budget b[] = {{dev, budget}};
    ttsm_manager_options o = o_in ? *o_in : ttsm_manager_options_default();
    o.budgets = b;
    o.n_budgets = 1;
    o.models_dirs = root;
    ttsm_manager *m = NULL;
    ttsm_error err;
    tu_assert_ok(ttsm_manager_create(&o, &m, &err), &err);
    current_mgr = m;
    return m;
}

static const ttsm_device_stats *dev_stats(const ttsm_manager_stats *s, const char *name)
{
    for (size_t i = 0; i < s->n_devices; i++)
        if (strcmp(s->devices[i].device, name) == 0)
            return &s->devices[i];
    return NULL;
}

static ttsm_load_config attach_cfg(const char *model)
{
    ttsm_load_config c = ttsm_load_config_default();
    c.engine = "tiny_attach";
    c.model_name = model;
    c.device = "cpu";
    return c;
}

typedef struct job {
    ttsm_manager *mgr;
    ttsm_load_config cfg;
    ttsm_model *model;
    ttsm_status st;
    ttsm_error err;
} job;

static void *run_job(void *arg)
{
    job *j = arg;
    j->st = ttsm_load(j->mgr, &j->cfg, &j->model, &j->err);
    return NULL;
}

/* ---- tests ---------------------------------------------------------------- */

static void test_attach_single_flight_and_inner(void **state)
{
    (void)state;
    reset();
    ttsm_manager *mgr = mk("cpu", 1 << 20, NULL);
    job jobs[8];
    pthread_t th[8];
    for (int i = 0; i < 8; i++) {
        jobs[i] = (job){mgr, attach_cfg("a"), NULL, TTSM_OK, {0}};
        pthread_create(&th[i], NULL, run_job, &jobs[i]);
    }
    for (int i = 0; i < 8; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(atomic_load(&builds), 1);
    void *obj = ttsm_model_engine_data(jobs[0].model);
    assert_non_null(obj);
    for (int i = 0; i < 8; i++) {
        tu_assert_ok(jobs[i].st, &jobs[i].err);
        assert_ptr_equal(ttsm_model_engine_data(jobs[i].model), obj); /* one object, shared */
    }
    ttsm_manager_stats s;
    ttsm_manager_get_stats(mgr, &s);
    assert_int_equal(s.loads, 1);
    assert_int_equal(s.hits, 7);
    /* The estimate from the manifest was reserved for the build. */
    assert_int_equal(atomic_load(&seen_estimate), 512);
    /* Charged what it holds: the weights (nothing charged beyond). */
    assert_int_equal(ttsm_model_bytes(jobs[0].model), 256);
    for (int i = 0; i < 8; i++)
        ttsm_model_release(jobs[i].model);
    /* The object's inner export does not pin the entry: unload works, and
     * drops the object, whose export was the last thing holding the memory. */
    char key[TTSM_KEY_HEX_SIZE];
    ttsm_error err;
    ttsm_load_config c = attach_cfg("a");
    tu_assert_ok(ttsm_cache_key(&c, key, &err), &err);
    tu_assert_ok(ttsm_unload(mgr, key, &err), &err);
    assert_int_equal(atomic_load(&destroys), 1);
    ttsm_manager_get_stats(mgr, &s);
    assert_int_equal(s.entries, 0);
    assert_int_equal(s.orphans, 0);
    assert_int_equal(dev_stats(&s, "cpu")->in_use, 0);
    ttsm_manager_destroy(mgr);
}

static void test_caller_pins_object_does_not(void **state)
{
    (void)state;
    reset();
    /* Room for one model and its estimate (256 + 512), not two. */
    ttsm_manager *mgr = mk("cpu", 1000, NULL);
    ttsm_load_config ca = attach_cfg("a"), cb = attach_cfg("b");
    ttsm_model *a, *b;
    ttsm_error err;
    tu_assert_ok(ttsm_load(mgr, &ca, &a, &err), &err);
    /* A caller's handle holds it: b cannot evict it. */
    tu_assert_error(ttsm_load(mgr, &cb, &b, &err), &err, TTSM_ERR_OUT_OF_MEMORY,
                    "needs 768 bytes", "referenced");
    /* A tensor taken outside the factory holds it too. */
    DLManagedTensor *outside;
    tu_assert_ok(ttsm_model_export_dlpack_legacy(a, 0, 0, 0, &outside, &err), &err);
    ttsm_model_release(a);
    tu_assert_error(ttsm_load(mgr, &cb, &b, &err), &err, TTSM_ERR_OUT_OF_MEMORY, "referenced");
    outside->deleter(outside);
    assert_int_equal(atomic_load(&destroys), 0);
    /* Only its own object holds it now: b evicts it (budget), and its
     * object is dropped before b's bytes are counted. */
    tu_assert_ok(ttsm_load(mgr, &cb, &b, &err), &err);
    assert_int_equal(atomic_load(&destroys), 1);
    ttsm_manager_stats s;
    ttsm_manager_get_stats(mgr, &s);
    assert_int_equal(s.evictions, 1);
    assert_true(dev_stats(&s, "cpu")->peak <= 1000);
    assert_int_equal(dev_stats(&s, "cpu")->in_use, 256);
    ttsm_model_release(b);
    ttsm_manager_destroy(mgr); /* drops b's object too */
    assert_int_equal(atomic_load(&destroys), 2);
}

static void test_object_kept_alive_keeps_memory(void **state)
{
    (void)state;
    reset();
    atomic_store(&keep_weight, 1);
    ttsm_manager *mgr = mk("fake:0", 4096, NULL);
    char *p = mu_write_st(dir, "k.safetensors", 256, 0.0f); /* 1024 bytes */
    ttsm_load_config c = mu_cfg("tiny_code", p, "fake:0");
    ttsm_model *m;
    ttsm_error err;
    tu_assert_ok(ttsm_load(mgr, &c, &m, &err), &err);
    assert_int_equal(fake_allocated(0), 1024);
    ttsm_model_release(m);
    char key[TTSM_KEY_HEX_SIZE];
    tu_assert_ok(ttsm_cache_key(&c, key, &err), &err);
    tu_assert_ok(ttsm_unload(mgr, key, &err), &err);
    /* The object is gone, but a weight of it outlives it: the memory stays,
     * and stays counted, as an orphan. */
    assert_int_equal(atomic_load(&destroys), 1);
    assert_non_null(kept_weights);
    ttsm_manager_stats s;
    ttsm_manager_get_stats(mgr, &s);
    assert_int_equal(s.entries, 0);
    assert_int_equal(s.orphans, 1);
    assert_int_equal(dev_stats(&s, "fake:0")->in_use, 1024);
    assert_int_equal(fake_allocated(0), 1024);
    ttsm_model_release_inner(kept_weights);
    ttsm_manager_get_stats(mgr, &s);
    assert_int_equal(s.orphans, 0);
    assert_int_equal(dev_stats(&s, "fake:0")->in_use, 0);
    assert_int_equal(fake_allocated(0), 0);
    ttsm_manager_destroy(mgr);
    free(p);
}

static void test_estimate_and_charge(void **state)
{
    (void)state;
    reset();
    /* Budget 3000 on fake:0: a 1024-byte model with an estimate of 1024
     * (tiny_est) needs 2048 before its build. */
    ttsm_manager_options o = ttsm_manager_options_default();
    o.on_evict = on_evict;
    atomic_store(&n_reasons, 0);
    ttsm_manager *mgr = mk("fake:0", 3000, &o);
    char *p1 = mu_write_st(dir, "c1.safetensors", 256, 0.0f);
    char *p2 = mu_write_st(dir, "c2.safetensors", 256, 1.0f);
    ttsm_load_config c1 = mu_cfg("tiny_code", p1, "fake:0");
    ttsm_load_config c2 = mu_cfg("tiny_est", p2, "fake:0");
    ttsm_model *a, *b;
    ttsm_error err;
    atomic_store(&charge_bytes, 512);
    tu_assert_ok(ttsm_load(mgr, &c1, &a, &err), &err);
    assert_int_equal(atomic_load(&seen_estimate), 0);
    /* Charged more than its (zero) estimate, and it fits: weights + 512. */
    assert_int_equal(ttsm_model_bytes(a), 1024 + 512);
    ttsm_model_release(a);
    /* The next one's admission (1024 + 1024 estimate) evicts the first
     * before anything of it is allocated: the fake device never holds
     * both (no spike). */
    fake_reset_peaks();
    atomic_store(&charge_bytes, 300);
    tu_assert_ok(ttsm_load(mgr, &c2, &b, &err), &err);
    assert_int_equal(atomic_load(&seen_estimate), 1024);
    assert_int_equal(ttsm_model_bytes(b), 1024 + 300);
    assert_int_equal(fake_peak(0), 1024);
    ttsm_manager_stats s;
    ttsm_manager_get_stats(mgr, &s);
    assert_int_equal(dev_stats(&s, "fake:0")->in_use, 1324);
    assert_int_equal(dev_stats(&s, "fake:0")->reserved, 0);
    assert_true(dev_stats(&s, "fake:0")->peak <= 3000);
    assert_int_equal(atomic_load(&n_reasons), 1);
    assert_string_equal(reasons[0], "budget");
    /* Charging beyond what can fit fails the load; its object is dropped. */
    atomic_store(&charge_bytes, 5000);
    atomic_store(&destroys, 0);
    ttsm_model *x;
    tu_assert_error(ttsm_load(mgr, &c1, &x, &err), &err, TTSM_ERR_OUT_OF_MEMORY,
                    "holds 5000 bytes beyond its weights");
    assert_int_equal(atomic_load(&destroys), 1);
    ttsm_manager_get_stats(mgr, &s);
    assert_int_equal(s.entries, 1);
    assert_int_equal(dev_stats(&s, "fake:0")->in_use, 1324);
    assert_int_equal(fake_allocated(0), 1024);
    ttsm_model_release(b);
    ttsm_manager_destroy(mgr);
    assert_int_equal(fake_allocated(0), 0);
    free(p1);
    free(p2);
}

static void test_build_failure_reaches_waiters(void **state)
{
    (void)state;
    reset();
    atomic_store(&fail_build, 1);
    ttsm_manager *mgr = mk("fake:0", 1 << 20, NULL);
    char *p = mu_write_st(dir, "f.safetensors", 64, 0.0f);
    job jobs[8];
    pthread_t th[8];
    for (int i = 0; i < 8; i++) {
        jobs[i] = (job){mgr, mu_cfg("tiny_code", p, "fake:0"), NULL, TTSM_OK, {0}};
        pthread_create(&th[i], NULL, run_job, &jobs[i]);
    }
    for (int i = 0; i < 8; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(atomic_load(&builds), 1);
    for (int i = 0; i < 8; i++)
        tu_assert_error(jobs[i].st, &jobs[i].err, TTSM_ERR_ENGINE, "build failed on purpose");
    /* The object the failed build made was dropped, with its memory. */
    assert_int_equal(atomic_load(&destroys), 1);
    ttsm_manager_stats s;
    ttsm_manager_get_stats(mgr, &s);
    assert_int_equal(s.entries, 0);
    assert_int_equal(s.failures, 1);
    assert_int_equal(dev_stats(&s, "fake:0")->in_use, 0);
    assert_int_equal(fake_allocated(0), 0);
    /* Loading itself from the build hook is an error, not a hang. */
    atomic_store(&fail_build, 0);
    atomic_store(&self_load, 1);
    ttsm_load_config c = mu_cfg("tiny_code", p, "fake:0");
    ttsm_model *m;
    ttsm_error err;
    tu_assert_error(ttsm_load(mgr, &c, &m, &err), &err, TTSM_ERR_ENGINE, "load of itself",
                    "from inside its own factory");
    atomic_store(&self_load, 0);
    tu_assert_ok(ttsm_load(mgr, &c, &m, &err), &err);
    ttsm_model_release(m);
    ttsm_manager_destroy(mgr);
    assert_int_equal(fake_allocated(0), 0);
    free(p);
}

static void test_invalidate_and_destroy_drop_objects(void **state)
{
    (void)state;
    reset();
    ttsm_manager_options o = ttsm_manager_options_default();
    o.on_evict = on_evict;
    atomic_store(&n_reasons, 0);
    ttsm_manager *mgr = mk("cpu", 1 << 20, &o);
    ttsm_load_config c = attach_cfg("a");
    ttsm_model *m;
    ttsm_error err;
    tu_assert_ok(ttsm_load(mgr, &c, &m, &err), &err);
    tu_assert_ok(ttsm_invalidate(mgr, ttsm_model_key(m), &err), &err);
    /* A holder keeps the object until it lets go. */
    assert_int_equal(atomic_load(&destroys), 0);
    assert_non_null(ttsm_model_engine_data(m));
    assert_int_equal(atomic_load(&n_reasons), 1);
    assert_string_equal(reasons[0], "invalidate");
    ttsm_model_release(m);
    assert_int_equal(atomic_load(&destroys), 1);
    ttsm_manager_stats s;
    ttsm_manager_get_stats(mgr, &s);
    assert_int_equal(s.orphans, 0);
    /* The next load rebuilds it (recovering); destroy drops that one. */
    tu_assert_ok(ttsm_load(mgr, &c, &m, &err), &err);
    assert_int_equal(atomic_load(&builds), 2);
    ttsm_model_release(m);
    ttsm_manager_destroy(mgr);
    assert_int_equal(atomic_load(&destroys), 2);
}

static void test_free_and_timer(void **state)
{
    (void)state;
    reset();
    ttsm_manager_options o = ttsm_manager_options_default();
    o.on_evict = on_evict;
    atomic_store(&n_reasons, 0);
    ttsm_manager *mgr = mk("fake:0", 4096, &o);
    char *p[3];
    ttsm_error err;
    ttsm_model *held = NULL;
    for (int i = 0; i < 3; i++) {
        char name[32];
        snprintf(name, sizeof name, "fr%d.safetensors", i);
        p[i] = mu_write_st(dir, name, 256, (float)i);
        ttsm_load_config c = mu_cfg("tiny_code", p[i], "fake:0");
        ttsm_model *m;
        tu_assert_ok(ttsm_load(mgr, &c, &m, &err), &err);
        if (i < 2)
            ttsm_model_release(m);
        else
            held = m; /* the third stays referenced */
    }
    uint64_t avail = 0;
    tu_assert_ok(ttsm_manager_free(mgr, "fake:0", 1500, &avail, &err), &err);
    /* 4096 - 3072 = 1024 free: one idle entry (the oldest) goes. */
    assert_int_equal(avail, 2048);
    assert_int_equal(atomic_load(&destroys), 1);
    assert_int_equal(fake_allocated(0), 2048);
    tu_assert_ok(ttsm_manager_free(mgr, "fake:0", 4096, &avail, &err), &err);
    assert_int_equal(avail, 3072); /* the referenced one stays */
    assert_int_equal(atomic_load(&n_reasons), 2);
    assert_string_equal(reasons[0], "free");
    tu_assert_error(ttsm_manager_free(mgr, "nope:0", 1, &avail, &err), &err, TTSM_ERR_DEVICE,
                    "nope:0");
    tu_assert_ok(ttsm_manager_free(mgr, "cpu", 1, &avail, &err), &err);
    assert_true(avail == UINT64_MAX); /* no budget on cpu here */
    ttsm_manager_destroy(mgr); /* the referenced model becomes an orphan */
    ttsm_model_release(held);  /* ... freed with the manager now */
    assert_int_equal(fake_allocated(0), 0);
    for (int i = 0; i < 3; i++)
        free(p[i]);

    /* The timer evicts an idle entry when its keep-alive ends, with no
     * call made meanwhile; destroy stops it. */
    reset();
    o = ttsm_manager_options_default();
    o.keep_alive_ms = 50;
    o.keep_alive_timer = 1;
    o.on_evict = on_evict;
    atomic_store(&n_reasons, 0);
    mgr = mk("cpu", 1 << 20, &o);
    ttsm_load_config c = attach_cfg("a");
    ttsm_model *m;
    tu_assert_ok(ttsm_load(mgr, &c, &m, &err), &err);
    usleep(120000);
    assert_int_equal(atomic_load(&destroys), 0); /* referenced: never expires */
    ttsm_model_release(m);
    for (int i = 0; i < 500 && atomic_load(&destroys) == 0; i++)
        usleep(10000);
    assert_int_equal(atomic_load(&destroys), 1);
    assert_string_equal(reasons[0], "keep-alive");
    ttsm_manager_stats s;
    ttsm_manager_get_stats(mgr, &s);
    assert_int_equal(s.entries, 0);
    assert_int_equal(s.evictions, 1);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    ttsm_manager_destroy(mgr);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    /* It waits for no keep-alive period: the timer wakes to stop. */
    assert_true(t1.tv_sec - t0.tv_sec < 5);
}

static void test_attach_errors_and_manifest_fields(void **state)
{
    (void)state;
    ttsm_error err;
    ttsm_engine_caps caps = ttsm_engine_caps_default();
    caps.build = build;
    tu_assert_error(ttsm_register_engine("tiny_attach", NULL, &caps, &err), &err,
                    TTSM_ERR_INVALID_ARGUMENT, "attached to this engine already");
    tu_assert_error(ttsm_register_engine("tiny_code", NULL, &caps, &err), &err,
                    TTSM_ERR_INVALID_ARGUMENT, "no engine from a manifest");
    tu_assert_error(ttsm_register_engine("tiny_attach", NULL, NULL, &err), &err,
                    TTSM_ERR_INVALID_ARGUMENT, "a factory");
    caps.extra_ratio = -1;
    tu_assert_error(ttsm_register_engine("x_neg", code_factory, &caps, &err), &err,
                    TTSM_ERR_INVALID_ARGUMENT, "extra_ratio");

    /* engine_memory and a param's dtype, validated strictly. */
    static const struct {
        const char *field, *why;
    } bad[] = {
        {"\"engine_memory\": {\"extra_bytes\": -1}", "extra_bytes must be an integer >= 0"},
        {"\"engine_memory\": {\"ratio\": \"x\"}", "ratio must be a number"},
        {"\"engine_memory\": {\"bytes\": 1}", "engine_memory.bytes: unknown field"},
        {"\"engine_memory\": {}", "must be an object"},
        {"\"params\": {\"dtype\": {\"default\": \"float16\"}}", "cannot be declared"},
        {"\"params\": {\"fp\": {\"default\": \"no\", \"values\": [\"yes\", \"no\"],"
         " \"dtype\": {\"maybe\": \"float16\"}}}",
         "params.fp.dtype: \"maybe\" is not one of the param's values"},
        {"\"params\": {\"fp\": {\"default\": \"no\", \"dtype\": {\"yes\": \"float8\"}}}",
         "yes: must be \"float16\", \"bfloat16\" or \"float32\""},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char text[2048];
        snprintf(text, sizeof text,
                 "{\"schema\": 1, \"name\": \"tiny_bad\", \"runtime\": \"pytorch\","
                 " \"model_types\": [\"tts\"], \"devices\": [\"cpu\"], \"folder\": \"Tiny\","
                 " \"default_model\": \"a\", %s,"
                 " \"capabilities\": {\"supports_voice_conversion\": false, \"has_fallback\":"
                 " false, \"can_corrupt\": false, \"requires_special_init\": false,"
                 " \"language_selects_model\": false, \"single_instance\": false,"
                 " \"recovery\": \"none\"},"
                 " \"models\": [{\"name\": \"a\", \"components\": [{\"name\": \"w\", \"kind\":"
                 " \"tensors\", \"files\": [\"w.safetensors\"]}]}]}",
                 bad[i].field);
        tu_assert_error(ttsm_engines_add_manifest(text, strlen(text), "test:bad", &err), &err,
                        TTSM_ERR_FORMAT, "test:bad: invalid manifest", bad[i].why);
    }
    assert_null(ttsm_engine_find("tiny_bad"));
}

/* ---- stress: every path at once, under ThreadSanitizer in CI ------------ */

#define STRESS_CFGS 8
static char *stress_paths[STRESS_CFGS];
static atomic_int stress_stop;

/* cmocka's failures must not be raised off the main thread: kept for it. */
static char stress_why[512];
static atomic_int stress_failed;
#define STRESS_FAIL(...)                                                                  \
    do {                                                                                  \
        if (!atomic_exchange(&stress_failed, 1))                                          \
            snprintf(stress_why, sizeof stress_why, __VA_ARGS__);                         \
    } while (0)

typedef struct stress_job {
    ttsm_manager *mgr;
    unsigned seed;
    long ops, oom;
} stress_job;

static void *stress_worker(void *arg)
{
    stress_job *j = arg;
    ttsm_model *held[2] = {NULL, NULL};
    for (long n = 0; n < 3000; n++) {
        j->seed = j->seed * 1103515245u + 12345u;
        unsigned r = j->seed >> 8;
        int c = (int)(r % STRESS_CFGS);
        ttsm_load_config cfg = mu_cfg(c & 1 ? "tiny_est" : "tiny_code", stress_paths[c], "fake:0");
        ttsm_error err;
        switch ((r >> 4) % 8) {
        case 0: case 1: case 2: case 3: {
            int slot = (int)((r >> 8) & 1);
            ttsm_model_release(held[slot]);
            held[slot] = NULL;
            ttsm_status st = ttsm_load(j->mgr, &cfg, &held[slot], &err);
            if (st == TTSM_ERR_OUT_OF_MEMORY)
                j->oom++;
            else if (st != TTSM_OK)
                STRESS_FAIL("stress load: %.400s", err.message);
            break;
        }
        case 4:
            ttsm_model_release(held[0]);
            held[0] = NULL;
            break;
        case 5: {
            char key[TTSM_KEY_HEX_SIZE];
            if (ttsm_cache_key(&cfg, key, &err) == TTSM_OK)
                ttsm_invalidate(j->mgr, key, NULL);
            break;
        }
        case 6: {
            char key[TTSM_KEY_HEX_SIZE];
            if (ttsm_cache_key(&cfg, key, &err) == TTSM_OK)
                ttsm_unload(j->mgr, key, NULL);
            break;
        }
        default:
            ttsm_manager_free(j->mgr, "fake:0", 1024, NULL, NULL);
            break;
        }
        ttsm_manager_stats s;
        ttsm_manager_get_stats(j->mgr, &s);
        const ttsm_device_stats *d = dev_stats(&s, "fake:0");
        if (d && d->in_use + d->reserved > 16384)
            STRESS_FAIL("in use %llu + reserved %llu over the budget",
                        (unsigned long long)d->in_use, (unsigned long long)d->reserved);
        if (fake_allocated(0) > 16384)
            STRESS_FAIL("%llu bytes allocated on the device",
                        (unsigned long long)fake_allocated(0));
        j->ops++;
    }
    ttsm_model_release(held[0]);
    ttsm_model_release(held[1]);
    return NULL;
}

static void *stress_deleter(void *arg)
{
    (void)arg;
    while (!atomic_load(&stress_stop)) {
        ttsm_model *m = NULL;
        pthread_mutex_lock(&grave_lock);
        if (n_grave)
            m = grave[--n_grave];
        pthread_mutex_unlock(&grave_lock);
        if (m)
            ttsm_model_release_inner(m);
        else
            usleep(100);
    }
    return NULL;
}

static void test_stress(void **state)
{
    (void)state;
    reset();
    atomic_store(&graveyard_on, 1);
    atomic_store(&build_sleep_us, 0);
    atomic_store(&charge_bytes, 200);
    ttsm_manager_options o = ttsm_manager_options_default();
    o.on_evict = on_evict;
    o.keep_alive_ms = 2;
    o.keep_alive_timer = 1;
    ttsm_manager *mgr = mk("fake:0", 16384, &o);
    for (int i = 0; i < STRESS_CFGS; i++) {
        char name[32];
        snprintf(name, sizeof name, "st%d.safetensors", i);
        stress_paths[i] = mu_write_st(dir, name, 256 + 64 * (size_t)i, (float)i);
    }
    atomic_store(&stress_stop, 0);
    pthread_t del, th[6];
    stress_job jobs[6];
    pthread_create(&del, NULL, stress_deleter, NULL);
    for (int i = 0; i < 6; i++) {
        jobs[i] = (stress_job){mgr, (unsigned)(i * 7919 + 1), 0, 0};
        pthread_create(&th[i], NULL, stress_worker, &jobs[i]);
    }
    long ops = 0;
    for (int i = 0; i < 6; i++) {
        pthread_join(th[i], NULL);
        ops += jobs[i].ops;
    }
    /* From now on objects let go of their weights at once; what the
     * deleter has not dropped yet is dropped here. Then, once the timer is
     * done with what it may be reaping, nothing may be left anywhere. */
    atomic_store(&graveyard_on, 0);
    atomic_store(&stress_stop, 1);
    pthread_join(del, NULL);
    pthread_mutex_lock(&grave_lock);
    while (n_grave)
        ttsm_model_release_inner(grave[--n_grave]);
    pthread_mutex_unlock(&grave_lock);
    if (atomic_load(&stress_failed))
        fail_msg("%s", stress_why);
    assert_int_equal(ops, 6 * 3000);
    ttsm_entry_info *v;
    size_t n;
    ttsm_error err;
    tu_assert_ok(ttsm_manager_list(mgr, &v, &n, &err), &err);
    for (size_t i = 0; i < n; i++)
        ttsm_unload(mgr, v[i].key, NULL);
    ttsm_free(v);
    ttsm_manager_stats s;
    for (int i = 0; i < 1000; i++) {
        ttsm_manager_get_stats(mgr, &s);
        if (!s.orphans && !s.entries)
            break;
        usleep(1000);
    }
    assert_int_equal(s.entries, 0);
    assert_int_equal(s.orphans, 0);
    assert_int_equal(dev_stats(&s, "fake:0")->in_use, 0);
    assert_true(dev_stats(&s, "fake:0")->peak <= 16384);
    assert_int_equal(s.misses, s.loads + s.failures);
    assert_int_equal(fake_allocated(0), 0);
    assert_true(s.evictions > 0);
    ttsm_manager_destroy(mgr);
    atomic_store(&build_sleep_us, 20000);
    for (int i = 0; i < STRESS_CFGS; i++)
        free(stress_paths[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_attach_single_flight_and_inner),
        cmocka_unit_test(test_caller_pins_object_does_not),
        cmocka_unit_test(test_object_kept_alive_keeps_memory),
        cmocka_unit_test(test_estimate_and_charge),
        cmocka_unit_test(test_build_failure_reaches_waiters),
        cmocka_unit_test(test_invalidate_and_destroy_drop_objects),
        cmocka_unit_test(test_free_and_timer),
        cmocka_unit_test(test_attach_errors_and_manifest_fields),
        cmocka_unit_test(test_stress),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
