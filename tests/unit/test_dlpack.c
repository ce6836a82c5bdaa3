/* test_dlpack.c - DLPack export: every plain dtype's code and bits, shapes,
 * strides and the very data pointer; read-only flag policy; raw bytes and
 * same-width views for types DLPack (or a consumer) lacks; refusals; CUDA
 * through the stand-in driver; references held and dropped by deleters,
 * also across manager destruction and from many threads; allocation
 * failures; the component -> checkpoint accessor. */
#include <pthread.h>

#include "base/alloc.h"
#include "devices/cuda.h"
#include "devices/device.h"
#include "dlpack.h"
#include "fake_backend.h"
#include "mgr_util.h"

#define FIXTURES TTSM_SOURCE_DIR "/tests/fixtures"

static ttsm_manager *mk(void)
{
    ttsm_manager *m = NULL;
    ttsm_error err;
    tu_assert_ok(ttsm_manager_create(NULL, &m, &err), &err);
    return m;
}

static ttsm_model *load(ttsm_manager *mgr, const char *path, const char *device)
{
    ttsm_load_config c = mu_cfg("file", path, device);
    ttsm_model *m = NULL;
    ttsm_error err;
    tu_assert_ok(ttsm_load(mgr, &c, &m, &err), &err);
    return m;
}

/* References of the one cached entry, as the listing shows them. */
static size_t refs_of(ttsm_manager *mgr)
{
    ttsm_entry_info *v;
    size_t n;
    ttsm_error err;
    tu_assert_ok(ttsm_manager_list(mgr, &v, &n, &err), &err);
    assert_int_equal(n, 1);
    size_t r = v[0].refs;
    ttsm_free(v);
    return r;
}

static const struct {
    const char *name;
    uint8_t code, bits;
} expected_types[] = {
    {"t_BOOL", kDLBool, 8},
    {"t_U8", kDLUInt, 8},
    {"t_I8", kDLInt, 8},
    {"t_U16", kDLUInt, 16},
    {"t_I16", kDLInt, 16},
    {"t_F16", kDLFloat, 16},
    {"t_BF16", kDLBfloat, 16},
    {"t_U32", kDLUInt, 32},
    {"t_I32", kDLInt, 32},
    {"t_F32", kDLFloat, 32},
    {"t_U64", kDLUInt, 64},
    {"t_I64", kDLInt, 64},
    {"t_F64", kDLFloat, 64},
    {"t_F8_E5M2", kDLFloat8_e5m2, 8},
    {"t_F8_E4M3", kDLFloat8_e4m3fn, 8},
    {"t_F8_E8M0", kDLFloat8_e8m0fnu, 8},
    {"t_C64", kDLComplex, 64},
};

static size_t index_of(ttsm_model *m, const char *name)
{
    const ttsm_model_tensor *t = ttsm_model_find_tensor(m, 0, name);
    assert_non_null(t);
    return (size_t)(t - ttsm_model_get_tensor(m, 0, 0));
}

/* The published layout: offsets every consumer compiled against. */
static void test_abi_layout(void **state)
{
    (void)state;
    assert_int_equal(sizeof(DLDevice), 8);
    assert_int_equal(sizeof(DLDataType), 4);
    assert_int_equal(offsetof(DLTensor, device), sizeof(void *));
    assert_int_equal(offsetof(DLTensor, ndim), sizeof(void *) + 8);
    assert_int_equal(offsetof(DLTensor, dtype), sizeof(void *) + 12);
    assert_int_equal(offsetof(DLTensor, shape), sizeof(void *) + 16);
    assert_int_equal(offsetof(DLTensor, byte_offset), 3 * sizeof(void *) + 16);
    assert_int_equal(offsetof(DLManagedTensor, manager_ctx), sizeof(DLTensor));
    assert_int_equal(offsetof(DLManagedTensorVersioned, manager_ctx), 8);
    assert_int_equal(offsetof(DLManagedTensorVersioned, flags), 8 + 2 * sizeof(void *));
    assert_int_equal(offsetof(DLManagedTensorVersioned, dl_tensor), 16 + 2 * sizeof(void *));
    assert_int_equal(kDLCUDA, 2);
    assert_int_equal(kDLBool, 6);
    assert_int_equal(kDLFloat4_e2m1fn, 17);
}

static void test_every_plain_dtype(void **state)
{
    (void)state;
    ttsm_manager *mgr = mk();
    ttsm_model *m = load(mgr, FIXTURES "/safetensors/ok_all_dtypes.safetensors", "cpu");
    ttsm_error err;
    for (size_t k = 0; k < sizeof expected_types / sizeof expected_types[0]; k++) {
        size_t i = index_of(m, expected_types[k].name);
        const ttsm_model_tensor *t = ttsm_model_get_tensor(m, 0, i);
        DLManagedTensorVersioned *v;
        tu_assert_ok(ttsm_model_export_dlpack(m, 0, i, 0, &v, &err), &err);
        assert_int_equal(v->version.major, 1);
        assert_int_equal(v->version.minor, 1);
        assert_int_equal(v->flags, DLPACK_FLAG_BITMASK_READ_ONLY);
        assert_ptr_equal(v->dl_tensor.data, t->data);
        assert_int_equal(v->dl_tensor.byte_offset, 0);
        assert_int_equal(v->dl_tensor.device.device_type, kDLCPU);
        assert_int_equal(v->dl_tensor.device.device_id, 0);
        assert_int_equal(v->dl_tensor.ndim, 1);
        assert_int_equal(v->dl_tensor.shape[0], 1);
        assert_int_equal(v->dl_tensor.strides[0], 1);
        assert_ptr_not_equal(v->dl_tensor.shape, t->shape); /* a copy, ours to hand out */
        if (v->dl_tensor.dtype.code != expected_types[k].code ||
            v->dl_tensor.dtype.bits != expected_types[k].bits)
            fail_msg("%s: code %u bits %u, expected %u %u", expected_types[k].name,
                     v->dl_tensor.dtype.code, v->dl_tensor.dtype.bits, expected_types[k].code,
                     expected_types[k].bits);
        assert_int_equal(v->dl_tensor.dtype.lanes, 1);
        assert_int_equal(refs_of(mgr), 2);
        v->deleter(v);
        assert_int_equal(refs_of(mgr), 1);

        DLManagedTensor *l;
        tu_assert_ok(ttsm_model_export_dlpack_legacy(m, 0, i, TTSM_DLPACK_WRITABLE, &l, &err),
                     &err);
        assert_ptr_equal(l->dl_tensor.data, t->data);
        assert_int_equal(l->dl_tensor.dtype.code, expected_types[k].code);
        assert_int_equal(l->dl_tensor.dtype.bits, expected_types[k].bits);
        assert_int_equal(l->dl_tensor.ndim, 1);
        assert_non_null(l->manager_ctx);
        l->deleter(l);

        /* Same width as unsigned integers, for consumers without the type. */
        tu_assert_ok(
            ttsm_model_export_dlpack(m, 0, i, TTSM_DLPACK_BITS | TTSM_DLPACK_WRITABLE, &v, &err),
            &err);
        assert_int_equal(v->flags, 0);
        assert_int_equal(v->dl_tensor.dtype.code, kDLUInt);
        assert_int_equal(v->dl_tensor.dtype.bits, expected_types[k].bits);
        assert_ptr_equal(v->dl_tensor.data, t->data);
        v->deleter(v);
    }
    assert_int_equal(refs_of(mgr), 1);
    ttsm_model_release(m);
    assert_int_equal(refs_of(mgr), 0);
    ttsm_manager_destroy(mgr);
}

/* Sub-byte and block-quantised types: refused by name element-wise,
 * exported as their raw bytes on request. */
static void test_refusals_and_raw_bytes(void **state)
{
    (void)state;
    ttsm_manager *mgr = mk();
    ttsm_model *m = load(mgr, FIXTURES "/safetensors/ok_subbyte_flat.safetensors", "cpu");
    ttsm_error err;
    DLManagedTensorVersioned *v;
    DLManagedTensor *l;
    tu_assert_error(ttsm_model_export_dlpack(m, 0, 0, 0, &v, &err), &err, TTSM_ERR_INVALID_ARGUMENT,
                    "cannot export", "'f4'", "sub-byte dtype F4", "2 elements in 1 bytes");
    assert_non_null(strstr(err.hint, "TTSM_DLPACK_BYTES"));
    tu_assert_error(ttsm_model_export_dlpack_legacy(m, 0, 1, TTSM_DLPACK_BITS, &l, &err), &err,
                    TTSM_ERR_INVALID_ARGUMENT, "F6_E2M3");
    for (size_t i = 0; i < 3; i++) {
        const ttsm_model_tensor *t = ttsm_model_get_tensor(m, 0, i);
        tu_assert_ok(ttsm_model_export_dlpack(m, 0, i, TTSM_DLPACK_BYTES, &v, &err), &err);
        assert_int_equal(v->dl_tensor.ndim, 1);
        assert_int_equal(v->dl_tensor.shape[0], (int64_t)t->nbytes);
        assert_int_equal(v->dl_tensor.strides[0], 1);
        assert_int_equal(v->dl_tensor.dtype.code, kDLUInt);
        assert_int_equal(v->dl_tensor.dtype.bits, 8);
        assert_ptr_equal(v->dl_tensor.data, t->data);
        v->deleter(v);
    }
    assert_int_equal(refs_of(mgr), 1);
    ttsm_model_release(m);
    ttsm_manager_destroy(mgr);

    mgr = mk();
    m = load(mgr, FIXTURES "/gguf/valid_quant_align256.gguf", "cpu");
    int refused = 0;
    for (size_t i = 0; i < ttsm_model_tensor_count(m, 0); i++) {
        const ttsm_model_tensor *t = ttsm_model_get_tensor(m, 0, i);
        uint32_t be, bb;
        assert_int_equal(ttsm_dtype_block(t->dtype, &be, &bb), 0);
        ttsm_status st = ttsm_model_export_dlpack(m, 0, i, 0, &v, &err);
        if (be > 1) {
            char want[64];
            snprintf(want, sizeof want, "block-quantised dtype %s", ttsm_dtype_name(t->dtype));
            tu_assert_error(st, &err, TTSM_ERR_INVALID_ARGUMENT, want, t->name);
            refused++;
            tu_assert_ok(ttsm_model_export_dlpack(m, 0, i, TTSM_DLPACK_BYTES, &v, &err), &err);
            assert_int_equal(v->dl_tensor.shape[0], (int64_t)t->nbytes);
        } else {
            tu_assert_ok(st, &err);
        }
        assert_ptr_equal(v->dl_tensor.data, t->data);
        v->deleter(v);
    }
    assert_int_equal(refused, 9);
    assert_int_equal(refs_of(mgr), 1);
    ttsm_model_release(m);
    ttsm_manager_destroy(mgr);

    /* Complex double has no 128-bit unsigned twin. */
    mgr = mk();
    m = load(mgr, FIXTURES "/torch/dtypes.pt", "cpu");
    int found = 0;
    for (size_t i = 0; i < ttsm_model_tensor_count(m, 0); i++) {
        if (ttsm_model_get_tensor(m, 0, i)->dtype != TTSM_DTYPE_C128)
            continue;
        found = 1;
        tu_assert_error(ttsm_model_export_dlpack(m, 0, i, TTSM_DLPACK_BITS, &v, &err), &err,
                        TTSM_ERR_INVALID_ARGUMENT, "dtype C128", "128 bits");
        tu_assert_ok(ttsm_model_export_dlpack(m, 0, i, 0, &v, &err), &err);
        assert_int_equal(v->dl_tensor.dtype.code, kDLComplex);
        assert_int_equal(v->dl_tensor.dtype.bits, 128);
        v->deleter(v);
    }
    assert_true(found);
    ttsm_model_release(m);
    ttsm_manager_destroy(mgr);
}

static void test_shapes_scalars_and_empty(void **state)
{
    (void)state;
    ttsm_manager *mgr = mk();
    ttsm_error err;
    ttsm_model *m = load(mgr, FIXTURES "/safetensors/ok_zero_size_tensors.safetensors", "cpu");
    DLManagedTensorVersioned *v;
    for (size_t i = 0; i < ttsm_model_tensor_count(m, 0); i++) {
        const ttsm_model_tensor *t = ttsm_model_get_tensor(m, 0, i);
        tu_assert_ok(ttsm_model_export_dlpack(m, 0, i, 0, &v, &err), &err);
        assert_int_equal(v->dl_tensor.ndim, (int32_t)t->rank);
        for (uint32_t d = 0; d < t->rank; d++) {
            assert_int_equal(v->dl_tensor.shape[d], t->shape[d]);
            assert_int_equal(v->dl_tensor.strides[d], t->strides[d]);
        }
        /* Never NULL, not even for empty tensors: PyTorch 1.13 would never
         * call the deleter of a NULL-data tensor (test_dlpack.py checks). */
        assert_non_null(v->dl_tensor.data);
        if (t->data)
            assert_ptr_equal(v->dl_tensor.data, t->data);
        v->deleter(v);
    }
    ttsm_model_release(m);
    m = load(mgr, FIXTURES "/safetensors/ok_scalar.safetensors", "cpu");
    tu_assert_ok(ttsm_model_export_dlpack(m, 0, 0, 0, &v, &err), &err);
    assert_int_equal(v->dl_tensor.ndim, 0);
    assert_int_equal(v->dl_tensor.dtype.code, kDLInt);
    assert_int_equal(v->dl_tensor.dtype.bits, 64);
    assert_ptr_equal(v->dl_tensor.data, ttsm_model_get_tensor(m, 0, 0)->data);
    v->deleter(v);
    ttsm_model_release(m);
    /* A strided view: the file's strides, and the span with its gaps as bytes. */
    m = load(mgr, FIXTURES "/torch/views.pt", "cpu");
    int strided = 0;
    for (size_t i = 0; i < ttsm_model_tensor_count(m, 0); i++) {
        const ttsm_model_tensor *t = ttsm_model_get_tensor(m, 0, i);
        tu_assert_ok(ttsm_model_export_dlpack(m, 0, i, 0, &v, &err), &err);
        int64_t dense = 1;
        for (uint32_t d = t->rank; d-- > 0;) {
            assert_int_equal(v->dl_tensor.strides[d], t->strides[d]);
            if (t->shape[d] > 1 && t->strides[d] != dense)
                strided = 1;
            dense *= t->shape[d];
        }
        v->deleter(v);
    }
    assert_true(strided);
    ttsm_model_release(m);
    ttsm_manager_destroy(mgr);
}

static ttsm_status json_factory(const ttsm_load_config *cfg, const ttsm_factory_ctx *ctx,
                                ttsm_model **out, ttsm_error *err)
{
    ttsm_model *m;
    ttsm_status st = ttsm_model_create(ctx, &m, err);
    if (st == TTSM_OK)
        st = ttsm_model_add_checkpoint(m, "weights", cfg->model_path, err);
    if (st == TTSM_OK)
        st = ttsm_model_add_file(m, "config", FIXTURES "/torch/expected.json", TTSM_FILE_JSON, err);
    if (st == TTSM_OK)
        *out = m;
    return st;
}

static void test_invalid_arguments_and_checkpoint(void **state)
{
    (void)state;
    ttsm_error err;
    DLManagedTensorVersioned *v = (DLManagedTensorVersioned *)&err;
    tu_assert_error(ttsm_model_export_dlpack(NULL, 0, 0, 0, &v, &err), &err,
                    TTSM_ERR_INVALID_ARGUMENT, "model and out");
    assert_ptr_equal(v, (DLManagedTensorVersioned *)&err); /* untouched on failure */
    tu_assert_ok(ttsm_register_engine("dlpack_json", json_factory, NULL, &err), &err);
    ttsm_manager *mgr = mk();
    ttsm_model *m;
    ttsm_load_config c =
        mu_cfg("dlpack_json", FIXTURES "/safetensors/ok_metadata_strings.safetensors", "cpu");
    tu_assert_ok(ttsm_load(mgr, &c, &m, &err), &err);
    tu_assert_error(ttsm_model_export_dlpack(m, 0, 0, 0, NULL, &err), &err,
                    TTSM_ERR_INVALID_ARGUMENT, "model and out");
    tu_assert_error(ttsm_model_export_dlpack(m, 2, 0, 0, &v, &err), &err, TTSM_ERR_INVALID_ARGUMENT,
                    "component 2 does not exist", "has 2");
    tu_assert_error(ttsm_model_export_dlpack(m, 1, 0, 0, &v, &err), &err, TTSM_ERR_INVALID_ARGUMENT,
                    "'config' is a json file");
    tu_assert_error(ttsm_model_export_dlpack(m, 0, 1, 0, &v, &err), &err, TTSM_ERR_INVALID_ARGUMENT,
                    "'weights' has 1 tensors", "index 1");
    tu_assert_error(
        ttsm_model_export_dlpack(m, 0, 0, TTSM_DLPACK_BITS | TTSM_DLPACK_BYTES, &v, &err), &err,
        TTSM_ERR_INVALID_ARGUMENT, "not both");
    tu_assert_error(ttsm_model_export_dlpack(m, 0, 0, 16u, &v, &err), &err,
                    TTSM_ERR_INVALID_ARGUMENT, "flags 0x10");
    assert_int_equal(refs_of(mgr), 1);

    const ttsm_checkpoint *ck = ttsm_model_component_checkpoint(m, 0);
    assert_non_null(ck);
    assert_int_equal(ttsm_checkpoint_format(ck), TTSM_FORMAT_SAFETENSORS);
    const ttsm_metadata_entry *e = ttsm_checkpoint_metadata_find(ck, "format");
    assert_non_null(e);
    assert_string_equal(e->json, "\"pt\"");
    assert_null(ttsm_model_component_checkpoint(m, 1)); /* json */
    assert_null(ttsm_model_component_checkpoint(m, 2));
    assert_null(ttsm_model_component_checkpoint(NULL, 0));
    ttsm_model_release(m);
    ttsm_manager_destroy(mgr);
}

/* A manager destroyed while exports are alive: the entry is an orphan,
 * the tensor stays readable, and the last deleter frees model and manager
 * (ASan/LSan runs of this test find any leak or use after free). */
static void test_exports_outlive_manager(void **state)
{
    (void)state;
    char *p = mu_write_st(tu_mkdtemp(), "w.safetensors", 1024, 7.0f);
    ttsm_manager *mgr = mk();
    ttsm_model *m = load(mgr, p, "cpu");
    ttsm_error err;
    DLManagedTensorVersioned *v;
    DLManagedTensor *l;
    tu_assert_ok(ttsm_model_export_dlpack(m, 0, 0, 0, &v, &err), &err);
    tu_assert_ok(ttsm_model_export_dlpack_legacy(m, 0, 0, 0, &l, &err), &err);
    ttsm_model_release(m);
    assert_int_equal(refs_of(mgr), 2);
    ttsm_manager_destroy(mgr);
    float x;
    memcpy(&x, (const char *)v->dl_tensor.data + 4 * 1023, 4);
    assert_true(x == 1030.0f);
    v->deleter(v);
    memcpy(&x, l->dl_tensor.data, 4);
    assert_true(x == 7.0f);
    l->deleter(l); /* the last reference: model and manager go */

    /* The same with the entry invalidated first: an orphan of a live manager. */
    mgr = mk();
    m = load(mgr, p, "cpu");
    tu_assert_ok(ttsm_model_export_dlpack_legacy(m, 0, 0, 0, &l, &err), &err);
    ttsm_model_release(m);
    tu_assert_ok(ttsm_invalidate(mgr, ttsm_model_key(m), &err), &err);
    ttsm_manager_stats s;
    ttsm_manager_get_stats(mgr, &s);
    assert_int_equal(s.orphans, 1);
    assert_int_equal(s.devices[0].in_use, 4096);
    l->deleter(l);
    ttsm_manager_get_stats(mgr, &s);
    assert_int_equal(s.orphans, 0);
    assert_int_equal(s.devices[0].in_use, 0);
    ttsm_manager_destroy(mgr);
    free(p);
}

typedef struct {
    ttsm_model *m;
    int rounds;
} worker_arg;

static void *export_worker(void *arg)
{
    worker_arg *w = arg;
    ttsm_error err;
    for (int i = 0; i < w->rounds; i++) {
        DLManagedTensorVersioned *v;
        DLManagedTensor *l;
        if (ttsm_model_export_dlpack(w->m, 0, 0, 0, &v, &err) != TTSM_OK ||
            ttsm_model_export_dlpack_legacy(w->m, 0, 0, 0, &l, &err) != TTSM_OK)
            return (void *)1;
        l->deleter(l);
        v->deleter(v);
    }
    return NULL;
}

/* Deleters run on whatever thread the consumer frees on. */
static void test_threads(void **state)
{
    (void)state;
    char *p = mu_write_st(tu_mkdtemp(), "t.safetensors", 16, 0.0f);
    ttsm_manager *mgr = mk();
    ttsm_model *m = load(mgr, p, "cpu");
    pthread_t th[8];
    worker_arg w = {m, 2000};
    for (int i = 0; i < 8; i++)
        assert_int_equal(pthread_create(&th[i], NULL, export_worker, &w), 0);
    for (int i = 0; i < 8; i++) {
        void *rc;
        pthread_join(th[i], &rc);
        assert_null(rc);
    }
    assert_int_equal(refs_of(mgr), 1);
    ttsm_model_release(m);
    ttsm_manager_destroy(mgr);
    free(p);
}

/* Every allocation of an export fails in turn: an error, no reference kept. */
static void test_allocation_failure(void **state)
{
    (void)state;
    ttsm_manager *mgr = mk();
    ttsm_model *m = load(mgr, FIXTURES "/safetensors/ok_all_dtypes.safetensors", "cpu");
    ttsm_error err;
    DLManagedTensorVersioned *v;
    DLManagedTensor *l;
    ttsm__alloc_fail_after(1);
    ttsm_status st = ttsm_model_export_dlpack(m, 0, 0, 0, &v, &err);
    ttsm_status st2 = ttsm_model_export_dlpack_legacy(m, 0, 0, 0, &l, &err);
    ttsm__alloc_fail_after(0);
    assert_int_equal(st, TTSM_ERR_OUT_OF_MEMORY);
    tu_assert_error(st2, &err, TTSM_ERR_OUT_OF_MEMORY, "DLPack export of 't_BOOL'");
    assert_int_equal(refs_of(mgr), 1);
    ttsm_model_release(m);
    ttsm_manager_destroy(mgr);
}

/* Devices: a kind DLPack has no code for is refused; CUDA (through the
 * stand-in driver, whose device memory is host memory) is kDLCUDA with the
 * device index and the device pointer. */
static void test_devices(void **state)
{
    (void)state;
    fake_backend_register();
    char *p = mu_write_st(tu_mkdtemp(), "d.safetensors", 64, 3.0f);
    ttsm_manager *mgr = mk();
    ttsm_model *m = load(mgr, p, "fake:1");
    ttsm_error err;
    DLManagedTensorVersioned *v;
    tu_assert_error(ttsm_model_export_dlpack(m, 0, 0, 0, &v, &err), &err, TTSM_ERR_DEVICE,
                    "device fake:1 has no DLPack device type");
    assert_int_equal(refs_of(mgr), 1);
    ttsm_model_release(m);
    ttsm_manager_destroy(mgr);

    setenv("TTSM_CUDA_DRIVER", FAKECUDA_PATH, 1);
    setenv("FAKE_CUDA_MODE", "two", 1);
    ttsm__cuda_reset();
    mgr = mk();
    m = load(mgr, p, "cuda:1");
    const ttsm_model_tensor *t = ttsm_model_get_tensor(m, 0, 0);
    DLManagedTensor *l;
    tu_assert_ok(ttsm_model_export_dlpack(m, 0, 0, 0, &v, &err), &err);
    tu_assert_ok(ttsm_model_export_dlpack_legacy(m, 0, 0, 0, &l, &err), &err);
    ttsm_model_release(m);
    ttsm_manager_destroy(mgr);
    assert_int_equal(v->dl_tensor.device.device_type, kDLCUDA);
    assert_int_equal(v->dl_tensor.device.device_id, 1);
    assert_int_equal(l->dl_tensor.device.device_type, kDLCUDA);
    assert_ptr_equal(v->dl_tensor.data, t->data);
    float x;
    memcpy(&x, (const char *)l->dl_tensor.data + 4 * 63, 4); /* the fake's memory is host memory */
    assert_true(x == 66.0f);
    v->deleter(v);
    l->deleter(l); /* frees the device block through the driver */
    ttsm__cuda_reset();
    unsetenv("TTSM_CUDA_DRIVER");
    free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_abi_layout),
        cmocka_unit_test(test_every_plain_dtype),
        cmocka_unit_test(test_refusals_and_raw_bytes),
        cmocka_unit_test(test_shapes_scalars_and_empty),
        cmocka_unit_test(test_invalid_arguments_and_checkpoint),
        cmocka_unit_test(test_exports_outlive_manager),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_allocation_failure),
        cmocka_unit_test(test_devices),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
