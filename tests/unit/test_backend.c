/* test_backend.c - the backend registry (validation, names that mean the
 * same to ttsm_device_resolve, ttsm_cache_key and the listing) and the cuda
 * backend's upload path through the stand-in driver (tests/unit/fake_cuda.c). */
#include <dlfcn.h>

#include "devices/cuda.h"
#include "devices/device.h"
#include "fake_backend.h"
#include "mgr_util.h"

static size_t one(void *user)
{
    (void)user;
    return 1;
}

static void test_register_validation(void **state)
{
    (void)state;
    ttsm_error err;
    ttsm_backend b = {TTSM_BACKEND_VERSION, "bad name", 1, NULL, one, NULL, NULL, NULL, NULL, NULL};
    tu_assert_error(ttsm_register_backend(&b, &err), &err, TTSM_ERR_INVALID_ARGUMENT, "bad name");
    b.name = "cuda";
    tu_assert_error(ttsm_register_backend(&b, &err), &err, TTSM_ERR_INVALID_ARGUMENT, "reserved");
    b.name = "Upper";
    tu_assert_error(ttsm_register_backend(&b, &err), &err, TTSM_ERR_INVALID_ARGUMENT, "Upper");
    b.name = "gpu2";
    b.version = 99;
    tu_assert_error(ttsm_register_backend(&b, &err), &err, TTSM_ERR_INVALID_ARGUMENT, "version");
    b.version = TTSM_BACKEND_VERSION;
    b.host_visible = 0; /* then alloc/free/upload are required */
    tu_assert_error(ttsm_register_backend(&b, &err), &err, TTSM_ERR_INVALID_ARGUMENT,
                    "alloc/free/upload");
    b.host_visible = 1;
    tu_assert_ok(ttsm_register_backend(&b, &err), &err);
    tu_assert_error(ttsm_register_backend(&b, &err), &err, TTSM_ERR_INVALID_ARGUMENT,
                    "already registered");
}

static void test_names(void **state)
{
    (void)state;
    fake_backend_register();
    char out[TTSM_DEVICE_NAME_MAX];
    ttsm_error err;
    tu_assert_ok(ttsm_device_resolve("fake", out, sizeof out, &err), &err);
    assert_string_equal(out, "fake:0");
    tu_assert_ok(ttsm_device_resolve("fake:1", out, sizeof out, &err), &err);
    assert_string_equal(out, "fake:1");
    tu_assert_error(ttsm_device_resolve("fake:2", out, sizeof out, &err), &err, TTSM_ERR_DEVICE,
                    "'fake:2' does not exist (2 fake devices)");
    tu_assert_error(ttsm_device_resolve("fake:01", out, sizeof out, &err), &err,
                    TTSM_ERR_DEVICE, "not a device name");
    /* listed in errors and in the device listing */
    tu_assert_error(ttsm_device_resolve("tpu", out, sizeof out, &err), &err, TTSM_ERR_DEVICE,
                    "fake:0, fake:1");
    int seen = 0;
    for (size_t i = 0; i < ttsm_device_count(); i++) {
        ttsm_device_info d;
        tu_assert_ok(ttsm_device_get(i, &d, &err), &err);
        seen += strcmp(d.name, "fake:1") == 0;
    }
    assert_int_equal(seen, 1);
    /* one key for "fake" and "fake:0" */
    char *dir = strdup(tu_mkdtemp());
    char *p = mu_write_st(dir, "k.safetensors", 4, 0);
    ttsm_load_config a = mu_cfg("file", p, "fake"), b = mu_cfg("file", p, "fake:0");
    char ka[TTSM_KEY_HEX_SIZE], kb[TTSM_KEY_HEX_SIZE];
    tu_assert_ok(ttsm_cache_key(&a, ka, &err), &err);
    tu_assert_ok(ttsm_cache_key(&b, kb, &err), &err);
    assert_string_equal(ka, kb);
    b.device = "fake:1";
    tu_assert_ok(ttsm_cache_key(&b, kb, &err), &err);
    assert_string_not_equal(ka, kb);
    free(p);
    tu_rmtree(dir);
    free(dir);
}

static void test_cuda_upload_through_stand_in_driver(void **state)
{
    (void)state;
    setenv("TTSM_CUDA_DRIVER", FAKECUDA_PATH, 1);
    setenv("FAKE_CUDA_MODE", "two", 1);
    ttsm__cuda_reset();
    char *dir = strdup(tu_mkdtemp());
    /* 20 MiB: more than one 16 MiB staging buffer */
    char *p = mu_write_st(dir, "big.safetensors", 5u << 20, 1.0f);
    ttsm_manager *mgr;
    ttsm_error err;
    ttsm_device_budget bud[] = {{"cuda:1", 64u << 20}};
    ttsm_manager_options o = ttsm_manager_options_default();
    o.budgets = bud;
    o.n_budgets = 1;
    tu_assert_ok(ttsm_manager_create(&o, &mgr, &err), &err);
    ttsm_load_config c = mu_cfg("file", p, "cuda:1");
    ttsm_model *m, *h;
    tu_assert_ok(ttsm_load(mgr, &c, &m, &err), &err);
    c.device = "cpu";
    tu_assert_ok(ttsm_load(mgr, &c, &h, &err), &err);
    assert_string_equal(ttsm_model_device(m), "cuda:1");
    const ttsm_model_tensor *td = ttsm_model_get_tensor(m, 0, 0), *th = ttsm_model_get_tensor(h, 0, 0);
    assert_ptr_not_equal(td->data, th->data);
    assert_memory_equal(td->data, th->data, td->nbytes); /* the fake's device memory is host memory */
    void *dl = dlopen(FAKECUDA_PATH, RTLD_NOW | RTLD_NOLOAD);
    assert_non_null(dl);
    long *copies = dlsym(dl, "fake_cuda_copies"), *pinned = dlsym(dl, "fake_cuda_host_allocs");
    assert_int_equal(*copies, 3); /* 20 MiB in 8 MiB chunks */
    assert_int_equal(*pinned, 4); /* the staging ring */
    ttsm_manager_stats s;
    ttsm_manager_get_stats(mgr, &s);
    assert_int_equal(s.checkpoint_opens, 1);
    ttsm_model_release(m);
    ttsm_model_release(h);
    /* Over the configured budget: the message names the CUDA device. */
    c.device = "cuda:0";
    ttsm_manager_destroy(mgr);
    bud[0].device = "cuda:0";
    bud[0].bytes = 1u << 20;
    tu_assert_ok(ttsm_manager_create(&o, &mgr, &err), &err);
    tu_assert_error(ttsm_load(mgr, &c, &m, &err), &err, TTSM_ERR_OUT_OF_MEMORY,
                    "cuda:0: over budget", "budget 1048576");
    ttsm_manager_destroy(mgr);
    /* A driver allocation failure is an out-of-memory error, nothing kept. */
    setenv("FAKE_CUDA_MODE", "allocfail", 1);
    tu_assert_ok(ttsm_manager_create(NULL, &mgr, &err), &err);
    tu_assert_error(ttsm_load(mgr, &c, &m, &err), &err, TTSM_ERR_OUT_OF_MEMORY, "cuMemAlloc");
    ttsm_manager_get_stats(mgr, &s);
    assert_int_equal(s.entries, 0);
    assert_int_equal(s.devices[0].reserved, 0);
    ttsm_manager_destroy(mgr);
    dlclose(dl);
    ttsm__cuda_reset();
    unsetenv("TTSM_CUDA_DRIVER");
    free(p);
    tu_rmtree(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_register_validation),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_cuda_upload_through_stand_in_driver),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
