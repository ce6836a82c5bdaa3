/* test_load_dtype.c - the `dtype` load param: element conversions at their
 * edges (rounding ties, overflow, subnormals, NaN), tensors converted at
 * materialisation on cpu and on a device with its own memory, the bytes
 * charged, the cache key, manifest params mapped onto it, bad values, and
 * every allocation of a converting load failing in turn. (Bit-exactness
 * against torch's Tensor.to() over millions of values is
 * tests/python/test_engines.py.) */
#include <math.h>

#include "base/alloc.h"
#include "base/convert.h"
#include "fake_backend.h"
#include "mgr_util.h"


static uint16_t to16(uint32_t bits, ttsm_dtype to)
{
    unsigned char in[4] = {(unsigned char)bits, (unsigned char)(bits >> 8),
                           (unsigned char)(bits >> 16), (unsigned char)(bits >> 24)};
    unsigned char out[2];
    ttsm__convert(out, to, in, TTSM_DTYPE_F32, 1);
    return (uint16_t)(out[0] | out[1] << 8);
}

static uint32_t to32(uint16_t bits, ttsm_dtype from)
{
    unsigned char in[2] = {(unsigned char)bits, (unsigned char)(bits >> 8)};
    unsigned char out[4];
    ttsm__convert(out, TTSM_DTYPE_F32, in, from, 1);
    return (uint32_t)out[0] | (uint32_t)out[1] << 8 | (uint32_t)out[2] << 16 |
           (uint32_t)out[3] << 24;
}

static void test_conversions(void **state)
{
    (void)state;
    static const struct {
        uint32_t f32;
        uint16_t f16, bf16;
    } v[] = {
        {0x3f800000u, 0x3c00, 0x3f80}, /* 1 */
        {0x80000000u, 0x8000, 0x8000}, /* -0 */
        {0x477fe000u, 0x7bff, 0x4780}, /* 65504, the largest float16 */
        {0x477ff000u, 0x7c00, 0x4780}, /* 65520: a tie, to even, is infinity */
        {0x477fefffu, 0x7bff, 0x4780}, /* just below: stays finite */
        {0x33000000u, 0x0000, 0x3300}, /* 2^-25: a tie between 0 and 2^-24, to even */
        {0x33000001u, 0x0001, 0x3300}, /* just above: the smallest subnormal */
        {0x387fc000u, 0x03ff, 0x3880}, /* the largest float16 subnormal */
        {0x3f808000u, 0x3c04, 0x3f80}, /* bfloat16 tie, kept even */
        {0x3f818000u, 0x3c0c, 0x3f82}, /* bfloat16 tie, rounded up to even */
        {0x7f800000u, 0x7c00, 0x7f80}, /* inf */
        {0x7f7fffffu, 0x7c00, 0x7f80}, /* FLT_MAX: overflows both */
        {0x7fc00000u, 0x7e00, 0x7fc0}, /* NaN */
        {0xff800001u, 0xfe00, 0x7fc0}, /* a signalling NaN, negative */
        {0x00000001u, 0x0000, 0x0000}, /* a float32 subnormal */
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        if (to16(v[i].f32, TTSM_DTYPE_F16) != v[i].f16 ||
            to16(v[i].f32, TTSM_DTYPE_BF16) != v[i].bf16)
            fail_msg("0x%08x: f16 0x%04x (want 0x%04x), bf16 0x%04x (want 0x%04x)", v[i].f32,
                     to16(v[i].f32, TTSM_DTYPE_F16), v[i].f16, to16(v[i].f32, TTSM_DTYPE_BF16),
                     v[i].bf16);
    }
    assert_int_equal(to32(0x0001, TTSM_DTYPE_F16), 0x33800000u); /* 2^-24 */
    assert_int_equal(to32(0x7bff, TTSM_DTYPE_F16), 0x477fe000u);
    assert_int_equal(to32(0x7c01, TTSM_DTYPE_F16), 0x7fc02000u); /* quieted */
    assert_int_equal(to32(0x7f81, TTSM_DTYPE_BF16), 0x7f810000u); /* as it is */
    /* float64 rounds through float32, as torch does. */
    double d = 1.0 + 0x1p-11 + 0x1p-40; /* just above a float16 tie: rounds up directly */
    unsigned char in[8], out[2];
    memcpy(in, &d, 8);
    ttsm__convert(out, TTSM_DTYPE_F16, in, TTSM_DTYPE_F64, 1);
    assert_int_equal(out[0] | out[1] << 8, 0x3c00); /* via float32: a tie, kept even */
    assert_int_equal(ttsm__load_dtype("float16"), TTSM_DTYPE_F16);
    assert_int_equal(ttsm__load_dtype("half"), TTSM_DTYPE_INVALID);
    assert_true(ttsm__converts(TTSM_DTYPE_F64, TTSM_DTYPE_BF16));
    assert_false(ttsm__converts(TTSM_DTYPE_F16, TTSM_DTYPE_F16));
    assert_false(ttsm__converts(TTSM_DTYPE_I32, TTSM_DTYPE_F16));
}

/* tu_dir/name: tensors "w" (F32, n elements i + 0.5) and "ids" (I32, 3). */
static char *write_two(const char *name, size_t n)
{
    char hdr[512];
    int hl = snprintf(hdr, sizeof hdr,
                      "{\"w\":{\"dtype\":\"F32\",\"shape\":[%zu],\"data_offsets\":[0,%zu]},"
                      "\"ids\":{\"dtype\":\"I32\",\"shape\":[3],\"data_offsets\":[%zu,%zu]}}",
                      n, n * 4, n * 4, n * 4 + 12);
    while (hl % 8)
        hdr[hl++] = ' ';
    size_t total = 8 + (size_t)hl + n * 4 + 12;
    unsigned char *buf = calloc(1, total);
    uint64_t len = (uint64_t)hl;
    for (int i = 0; i < 8; i++)
        buf[i] = (unsigned char)(len >> (8 * i));
    memcpy(buf + 8, hdr, (size_t)hl);
    for (size_t i = 0; i < n; i++) {
        float f = (float)i + 0.5f;
        memcpy(buf + 8 + hl + 4 * i, &f, 4);
    }
    int32_t ids[3] = {7, -1, 1 << 30};
    memcpy(buf + 8 + hl + 4 * n, ids, 12);
    char *p = tu_write_file(tu_dir, name, buf, total);
    free(buf);
    return p;
}

static float f16_value(uint16_t h)
{
    uint32_t b = to32(h, TTSM_DTYPE_F16);
    float f;
    memcpy(&f, &b, 4);
    return f;
}

static void check_loaded(ttsm_model *m, size_t n)
{
    assert_int_equal(ttsm_model_dtype(m), TTSM_DTYPE_F16);
    const ttsm_model_tensor *w = ttsm_model_find_tensor(m, 0, "w");
    const ttsm_model_tensor *ids = ttsm_model_find_tensor(m, 0, "ids");
    assert_int_equal(w->dtype, TTSM_DTYPE_F16);
    assert_int_equal(w->nbytes, n * 2);
    assert_int_equal(ids->dtype, TTSM_DTYPE_I32); /* integers stay as stored */
    for (size_t i = 0; i < n; i++) {
        uint16_t h;
        memcpy(&h, (const unsigned char *)w->data + 2 * i, 2);
        assert_true(f16_value(h) == (float)i + 0.5f);
    }
    int32_t got[3];
    memcpy(got, ids->data, 12);
    assert_int_equal(got[2], 1 << 30);
}

static void test_load_converts_and_charges(void **state)
{
    (void)state;
    char *p = write_two("two.safetensors", 100);
    ttsm_device_budget b[] = {{"fake:0", 1 << 20}};
    ttsm_manager_options o = ttsm_manager_options_default();
    o.budgets = b;
    o.n_budgets = 1;
    ttsm_manager *mgr;
    ttsm_error err;
    tu_assert_ok(ttsm_manager_create(&o, &mgr, &err), &err);
    ttsm_param half[] = {{"dtype", "float16"}};
    ttsm_load_config plain = mu_cfg("file", p, "cpu"), conv = plain;
    conv.params = half;
    conv.n_params = 1;
    ttsm_model *a, *h;
    tu_assert_ok(ttsm_load(mgr, &plain, &a, &err), &err);
    tu_assert_ok(ttsm_load(mgr, &conv, &h, &err), &err);
    assert_ptr_not_equal(a, h); /* another key: other bytes */
    assert_int_equal(ttsm_model_dtype(a), TTSM_DTYPE_INVALID);
    assert_int_equal(ttsm_model_bytes(a), 412);
    assert_int_equal(ttsm_model_bytes(h), 212); /* 100 halves + 3 int32 */
    check_loaded(h, 100);
    /* The original mapping is untouched: the float32 entry still reads floats. */
    assert_true(((const float *)ttsm_model_find_tensor(a, 0, "w")->data)[99] == 99.5f);
    char *canon;
    tu_assert_ok(ttsm_cache_key_canonical(&conv, &canon, NULL, &err), &err);
    assert_non_null(strstr(canon, "param:15:5:dtype=float16\n"));
    ttsm_free(canon);
    /* On a device with its own memory: converted on the host, uploaded. */
    ttsm_load_config dev = conv;
    dev.device = "fake:0";
    ttsm_model *d;
    tu_assert_ok(ttsm_load(mgr, &dev, &d, &err), &err);
    check_loaded(d, 100);
    assert_int_equal(ttsm_model_bytes(d), 256 + 256); /* each storage 256-aligned */
    assert_int_equal(fake_allocated(0), 512);
    ttsm_model_release(a);
    ttsm_model_release(h);
    ttsm_model_release(d);
    /* Bad values, and a param that means nothing to an engine. */
    ttsm_param bad[] = {{"dtype", "float8"}};
    conv.params = bad;
    ttsm_model *x;
    tu_assert_error(ttsm_load(mgr, &conv, &x, &err), &err, TTSM_ERR_INVALID_ARGUMENT,
                    "dtype=float8 is not an allowed value (float16, bfloat16, float32)");
    ttsm_manager_destroy(mgr);
    assert_int_equal(fake_allocated(0), 0);
    free(p);
}

static void test_manifest_mapping(void **state)
{
    (void)state;
    ttsm_error err;
    char *canon;
    ttsm_param fp16[] = {{"use_fp16", "true"}};
    ttsm_load_config c = ttsm_load_config_default();
    c.engine = "index_tts";
    c.device = "cpu";
    c.params = fp16;
    c.n_params = 1;
    tu_assert_ok(ttsm_cache_key_canonical(&c, &canon, NULL, &err), &err);
    assert_non_null(strstr(canon, "dtype=float16"));
    assert_non_null(strstr(canon, "use_fp16=true"));
    ttsm_free(canon);
    c.n_params = 0; /* the default, false, maps to nothing */
    tu_assert_ok(ttsm_cache_key_canonical(&c, &canon, NULL, &err), &err);
    assert_null(strstr(canon, "dtype="));
    ttsm_free(canon);
    ttsm_param both[] = {{"use_fp16", "true"}, {"dtype", "bfloat16"}};
    c.params = both;
    c.n_params = 2;
    tu_assert_error(ttsm_cache_key_canonical(&c, &canon, NULL, &err), &err,
                    TTSM_ERR_INVALID_ARGUMENT,
                    "dtype=bfloat16 contradicts use_fp16=true, which means dtype=float16");
    both[1].value = "float16"; /* agreeing is fine */
    tu_assert_ok(ttsm_cache_key_canonical(&c, &canon, NULL, &err), &err);
    ttsm_free(canon);
    /* Any manifest engine takes dtype, undeclared. */
    ttsm_param bf[] = {{"dtype", "bfloat16"}};
    c.engine = "chatterbox";
    c.params = bf;
    c.n_params = 1;
    tu_assert_ok(ttsm_cache_key_canonical(&c, &canon, NULL, &err), &err);
    assert_non_null(strstr(canon, "param:16:5:dtype=bfloat16\n"));
    ttsm_free(canon);
}

static void test_allocation_torture(void **state)
{
    (void)state;
    char *p = write_two("torture.safetensors", 16);
    ttsm_param half[] = {{"dtype", "bfloat16"}};
    const char *devices[] = {"cpu", "fake:0"};
    for (int d = 0; d < 2; d++) {
        int ok = 0;
        for (long n = 1; n < 400 && !ok; n++) {
            ttsm_manager *mgr;
            ttsm_error err;
            tu_assert_ok(ttsm_manager_create(NULL, &mgr, &err), &err);
            ttsm_load_config c = mu_cfg("file", p, devices[d]);
            c.params = half;
            c.n_params = 1;
            ttsm_model *m;
            ttsm__alloc_fail_after(n);
            ttsm_status st = ttsm_load(mgr, &c, &m, &err);
            ttsm__alloc_fail_after(0);
            if (st == TTSM_OK) {
                ok = 1;
                assert_int_equal(ttsm_model_find_tensor(m, 0, "w")->dtype, TTSM_DTYPE_BF16);
                ttsm_model_release(m);
            } else if (st != TTSM_ERR_OUT_OF_MEMORY) {
                fail_msg("allocation %ld on %s: %s: %s", n, devices[d], ttsm_status_name(st),
                         err.message);
            }
            ttsm_manager_stats s;
            ttsm_manager_get_stats(mgr, &s);
            assert_int_equal(s.entries, (size_t)ok);
            ttsm_manager_destroy(mgr);
        }
        assert_true(ok);
    }
    assert_int_equal(fake_allocated(0), 0);
    free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conversions),
        cmocka_unit_test(test_load_converts_and_charges),
        cmocka_unit_test(test_manifest_mapping),
        cmocka_unit_test(test_allocation_torture),
    };
    return cmocka_run_group_tests(tests, fake_dir_setup, tu_dir_teardown);
}
