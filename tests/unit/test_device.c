/* test_device.c - device names, resolution and CUDA discovery. Discovery is
 * tested against a stand-in driver (fake_cuda.c) loaded through
 * TTSM_CUDA_DRIVER, so every driver answer is reproducible without a GPU. */
#include <dlfcn.h>
#include <pthread.h>

#include "devices/cuda.h"
#include "devices/device.h"
#include "testutil.h"

static void use_driver(const char *path, const char *mode)
{
    setenv("TTSM_CUDA_DRIVER", path, 1);
    setenv("FAKE_CUDA_MODE", mode, 1);
    ttsm__cuda_reset();
}

static void no_driver(void)
{
    use_driver("/nonexistent/libcuda.so.1", "two");
}

static void resolve_ok(const char *in, const char *want)
{
    char out[TTSM_DEVICE_NAME_MAX];
    ttsm_error err;
    tu_assert_ok(ttsm_device_resolve(in, out, sizeof out, &err), &err);
    if (strcmp(out, want) != 0)
        fail_msg("resolve(%s) = %s, want %s", in ? in : "NULL", out, want);
}

static void resolve_fails(const char *in, const char *have, const char *hint)
{
    char out[TTSM_DEVICE_NAME_MAX];
    ttsm_error err;
    ttsm_status st = ttsm_device_resolve(in, out, sizeof out, &err);
    tu_assert_error(st, &err, TTSM_ERR_DEVICE, have);
    assert_true(ttsm_status_is(st, TTSM_ERR_LOAD));
    if (hint && !strstr(err.hint, hint))
        fail_msg("resolve(%s): hint \"%s\" lacks \"%s\"", in, err.hint, hint);
}

static void without_cuda(void **state)
{
    (void)state;
    no_driver();
    assert_int_equal(ttsm_device_count(), 1);
    assert_non_null(strstr(ttsm_cuda_status(), "no CUDA driver"));
    resolve_ok("auto", "cpu");
    resolve_ok(NULL, "cpu");
    resolve_ok("cpu", "cpu");
    resolve_fails("cuda", "'cuda' does not exist (devices here: cpu)", "CUDA: no CUDA driver");
    resolve_fails("cuda:0", "'cuda:0' does not exist (devices here: cpu)", NULL);
    resolve_fails("mps", "'mps' is not supported by this build (devices here: cpu)", NULL);
    resolve_fails("xpu", "not supported by this build", NULL);
}

static void garbage_names(void **state)
{
    (void)state;
    no_driver();
    const char *bad[] = {"cuda:", "cuda:-1", "cuda:999999999999", "cuda:01", "cuda:+1",
                         "cuda:0x1", "cuda:1 ", " cpu", "", "cuda0", "cudaa", "cpu:0",
                         "metal", "cuda:65536"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        resolve_fails(bad[i], "is not a device name (devices here: cpu)", NULL);
    resolve_fails("CPU", "'CPU' is not a device name", "did you mean 'cpu'?");
    resolve_fails("Cuda:0", "'Cuda:0' is not a device name", "did you mean 'cuda:0'?");
    resolve_fails("AUTO", "is not a device name", "did you mean 'auto'?");
    resolve_fails("gpu", "'gpu' is not a device name", "did you mean 'cuda'");
    resolve_fails("cuda:", "", "cuda:N");
    /* A long name is shortened in the message, not overflowing it. */
    char big[2000];
    memset(big, 'q', sizeof big - 1);
    big[sizeof big - 1] = 0;
    resolve_fails(big, "...' is not a device name", NULL);
}

static void small_buffer(void **state)
{
    (void)state;
    char out[8];
    ttsm_error err;
    tu_assert_error(ttsm_device_resolve("cpu", out, sizeof out, &err), &err,
                    TTSM_ERR_INVALID_ARGUMENT, "must hold");
}

static void cpu_memory(void **state)
{
    (void)state;
    no_driver();
    ttsm_device_info d;
    ttsm_error err;
    tu_assert_ok(ttsm_device_get(0, &d, &err), &err);
    assert_string_equal(d.name, "cpu");
    assert_true(d.total_bytes > (64u << 20));
    assert_true(d.free_bytes > 0);
    assert_true(d.free_bytes <= d.total_bytes);
    tu_assert_error(ttsm_device_get(1, &d, &err), &err, TTSM_ERR_INVALID_ARGUMENT,
                    "index 1, but there are 1 devices");
    tu_assert_error(ttsm_device_get(0, NULL, &err), &err, TTSM_ERR_INVALID_ARGUMENT, "NULL");
}

static void fake_driver_two_devices(void **state)
{
    (void)state;
    use_driver(FAKECUDA_PATH, "two");
    assert_int_equal(ttsm_device_count(), 3);
    assert_string_equal(ttsm_cuda_status(), "");
    resolve_ok("auto", "cuda:0");
    resolve_ok("cuda", "cuda:0");
    resolve_ok("cuda:0", "cuda:0");
    resolve_ok("cuda:1", "cuda:1");
    resolve_ok("cpu", "cpu");
    resolve_fails("cuda:2", "'cuda:2' does not exist (devices here: cpu, cuda:0, cuda:1)", NULL);
    ttsm_device_info d;
    ttsm_error err;
    tu_assert_ok(ttsm_device_get(2, &d, &err), &err);
    assert_string_equal(d.name, "cuda:1");
    assert_string_equal(d.description, "Fake GPU 1");
    assert_int_equal(d.total_bytes, 16ull << 30);
    assert_int_equal(d.free_bytes, (16ull << 30) - (1ull << 30));
    tu_assert_ok(ttsm_device_get(1, &d, &err), &err);
    assert_int_equal(d.total_bytes, 8ull << 30);
}

static void fake_driver_failures(void **state)
{
    (void)state;
    use_driver(FAKECUDA_PATH, "nodev");
    assert_int_equal(ttsm_device_count(), 1);
    assert_non_null(strstr(ttsm_cuda_status(), "cuInit failed: no CUDA-capable device"));
    resolve_ok("auto", "cpu");
    resolve_fails("cuda", "devices here: cpu", "cuInit failed");

    use_driver(FAKECUDA_PATH, "zero");
    assert_int_equal(ttsm_device_count(), 1);
    assert_non_null(strstr(ttsm_cuda_status(), "reports no devices"));

    use_driver(FAKECUDA_PATH, "countfail");
    assert_int_equal(ttsm_device_count(), 1);
    assert_non_null(strstr(ttsm_cuda_status(), "cuDeviceGetCount failed"));

    use_driver(FAKECUDA_PATH, "memfail");
    assert_int_equal(ttsm_device_count(), 3);
    ttsm_device_info d;
    ttsm_error err;
    tu_assert_error(ttsm_device_get(1, &d, &err), &err, TTSM_ERR_DEVICE,
                    "cuda:0: driver failure: cuMemGetInfo: out of memory");

    /* A library that is not a CUDA driver at all. */
    use_driver("libz.so.1", "two");
    assert_int_equal(ttsm_device_count(), 1);
    assert_non_null(strstr(ttsm_cuda_status(), "lacks cuInit"));
}

static void *count_devices(void *arg)
{
    (void)arg;
    for (int i = 0; i < 100; i++)
        if (ttsm_device_count() != 3)
            return (void *)1;
    return NULL;
}

static void discovery_runs_once_across_threads(void **state)
{
    (void)state;
    use_driver(FAKECUDA_PATH, "two");
    pthread_t t[8];
    for (int i = 0; i < 8; i++)
        pthread_create(&t[i], NULL, count_devices, NULL);
    int bad = 0;
    for (int i = 0; i < 8; i++) {
        void *r;
        pthread_join(t[i], &r);
        bad |= r != NULL;
    }
    assert_false(bad);
    void *h = dlopen(FAKECUDA_PATH, RTLD_NOW | RTLD_NOLOAD);
    assert_non_null(h);
    int *calls = dlsym(h, "fake_cuda_init_calls");
    assert_non_null(calls);
    assert_int_equal(*calls, 1);
    dlclose(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(without_cuda),
        cmocka_unit_test(garbage_names),
        cmocka_unit_test(small_buffer),
        cmocka_unit_test(cpu_memory),
        cmocka_unit_test(fake_driver_two_devices),
        cmocka_unit_test(fake_driver_failures),
        cmocka_unit_test(discovery_runs_once_across_threads),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    ttsm__cuda_reset();
    return rc;
}
