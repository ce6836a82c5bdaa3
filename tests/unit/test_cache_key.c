/* test_cache_key.c - the cache key: the vectors of docs/cache-key.md, device
 * resolution inside the key, canonical paths, collisions the seed's
 * concatenated keys had, and allocation failure. */
#include <jansson.h>
#include <unistd.h>

#include "base/alloc.h"
#include "devices/cuda.h"
#include "devices/device.h"
#include "cache/canonical.h"
#include "cache/content.h"
#include "testutil.h"
#include <xxhash.h>

static void no_gpu(void)
{
    setenv("TTSM_CUDA_DRIVER", "/nonexistent/libcuda.so.1", 1);
    ttsm__cuda_reset();
}

static void key_of(const ttsm_load_config *c, char out[TTSM_KEY_HEX_SIZE])
{
    ttsm_error err;
    tu_assert_ok(ttsm_cache_key(c, out, &err), &err);
    assert_int_equal(strlen(out), 32);
    for (int i = 0; i < 32; i++)
        assert_non_null(strchr("0123456789abcdef", out[i]));
}

/* The vectors live in the spec itself, so the spec cannot drift. */
static void vectors_from_the_spec(void **state)
{
    (void)state;
    no_gpu();
    size_t len;
    unsigned char *doc = tu_read_file(TTSM_SOURCE_DIR "/docs/cache-key.md", &len);
    assert_non_null(doc);
    char *start = strstr((char *)doc, "```json\n");
    assert_non_null(start);
    start += 8;
    char *end = strstr(start, "\n```");
    assert_non_null(end);
    json_error_t je;
    json_t *vectors = json_loadb(start, (size_t)(end - start), 0, &je);
    if (!vectors)
        fail_msg("docs/cache-key.md vectors: %s at line %d", je.text, je.line);
    assert_true(json_array_size(vectors) >= 10);
    size_t i;
    json_t *v;
    json_array_foreach(vectors, i, v) {
        json_t *c = json_object_get(v, "config");
        ttsm_load_config cfg = ttsm_load_config_default();
        cfg.engine = json_string_value(json_object_get(c, "engine"));
        const char **fields[] = {&cfg.model_type, &cfg.model_name, &cfg.device, &cfg.language,
                                 &cfg.model_path, &cfg.repo_id};
        const char *names[] = {"model_type", "model_name", "device", "language", "model_path",
                               "repo_id"};
        for (int f = 0; f < 6; f++)
            if (json_object_get(c, names[f]))
                *fields[f] = json_string_value(json_object_get(c, names[f]));
        ttsm_param params[8];
        const char *k;
        json_t *pv;
        json_object_foreach(json_object_get(c, "params"), k, pv) {
            params[cfg.n_params].key = k;
            params[cfg.n_params++].value = json_string_value(pv);
        }
        cfg.params = params;
        char *canon;
        size_t clen;
        ttsm_error err;
        tu_assert_ok(ttsm_cache_key_canonical(&cfg, &canon, &clen, &err), &err);
        const char *want = json_string_value(json_object_get(v, "canonical"));
        if (strcmp(canon, want) != 0)
            fail_msg("vector %zu: canonical\n%s\nwant\n%s", i + 1, canon, want);
        assert_int_equal(clen, strlen(want));
        ttsm_free(canon);
        char key[TTSM_KEY_HEX_SIZE];
        key_of(&cfg, key);
        const char *wkey = json_string_value(json_object_get(v, "key"));
        if (strcmp(key, wkey) != 0)
            fail_msg("vector %zu: key %s, want %s", i + 1, key, wkey);
    }
    json_decref(vectors);
    free(doc);
}

/* The content vectors ("One set of bytes, one entry"): every config of a
 * vector canonicalises to its base, and the components under that base
 * give its content string and identity. */
static void content_vectors_from_the_spec(void **state)
{
    (void)state;
    no_gpu();
    size_t len;
    unsigned char *doc = tu_read_file(TTSM_SOURCE_DIR "/docs/cache-key.md", &len);
    assert_non_null(doc);
    char *start = strstr((char *)doc, "### Content vectors");
    assert_non_null(start);
    start = strstr(start, "```json\n");
    assert_non_null(start);
    start += 8;
    char *end = strstr(start, "\n```");
    assert_non_null(end);
    json_error_t je;
    json_t *vectors = json_loadb(start, (size_t)(end - start), 0, &je);
    if (!vectors)
        fail_msg("docs/cache-key.md content vectors: %s at line %d", je.text, je.line);
    assert_true(json_array_size(vectors) >= 4);
    size_t i, j;
    json_t *v, *c;
    json_array_foreach(vectors, i, v) {
        const char *base = json_string_value(json_object_get(v, "base"));
        json_array_foreach(json_object_get(v, "configs"), j, c) {
            ttsm_load_config cfg = ttsm_load_config_default();
            cfg.engine = json_string_value(json_object_get(c, "engine"));
            cfg.device = json_string_value(json_object_get(c, "device"));
            if (json_object_get(c, "repo_id"))
                cfg.repo_id = json_string_value(json_object_get(c, "repo_id"));
            ttsm_param params[8];
            const char *k;
            json_t *pv;
            json_object_foreach(json_object_get(c, "params"), k, pv) {
                params[cfg.n_params].key = k;
                params[cfg.n_params++].value = json_string_value(pv);
            }
            cfg.params = params;
            ttsm__canon canon;
            ttsm_error err;
            char got[TTSM_KEY_HEX_SIZE];
            tu_assert_ok(ttsm__canonicalize(&cfg, &canon, &err), &err);
            tu_assert_ok(ttsm__content_base(&canon.cfg, got, &err), &err);
            if (strcmp(got, base) != 0)
                fail_msg("content vector %zu, config %zu: base %s, want %s", i + 1, j + 1, got,
                         base);
        }
        json_t *comps = json_object_get(v, "components");
        size_t n = json_array_size(comps);
        const char *names[16], *kinds[16], *files[16];
        assert_true(n <= 16);
        json_array_foreach(comps, j, c) {
            names[j] = json_string_value(json_object_get(c, "name"));
            kinds[j] = json_string_value(json_object_get(c, "kind"));
            files[j] = json_string_value(json_object_get(c, "file"));
        }
        size_t slen;
        char *str = ttsm__content_string(base, n, names, kinds, files, &slen);
        assert_non_null(str);
        const char *want = json_string_value(json_object_get(v, "content"));
        if (strcmp(str, want) != 0)
            fail_msg("content vector %zu: string\n%s\nwant\n%s", i + 1, str, want);
        XXH128_canonical_t h;
        XXH128_canonicalFromHash(&h, XXH3_128bits(str, slen));
        char hex[33];
        for (int b = 0; b < 16; b++)
            snprintf(hex + 2 * b, 3, "%02x", h.digest[b]);
        assert_string_equal(hex, json_string_value(json_object_get(v, "id")));
        ttsm__free(str);
    }
    json_decref(vectors);
    free(doc);
}

static void auto_is_the_device_it_resolves_to(void **state)
{
    (void)state;
    char a[33], b[33], c[33], d[33];
    ttsm_load_config cfg = ttsm_load_config_default();
    cfg.engine = "chatterbox";
    no_gpu();
    key_of(&cfg, a);
    cfg.device = "cpu";
    key_of(&cfg, b);
    assert_string_equal(a, b);
    cfg.device = NULL;
    key_of(&cfg, c);
    assert_string_equal(a, c);

    setenv("TTSM_CUDA_DRIVER", FAKECUDA_PATH, 1);
    setenv("FAKE_CUDA_MODE", "two", 1);
    ttsm__cuda_reset();
    cfg.device = "auto";
    key_of(&cfg, a);
    cfg.device = "cuda";
    key_of(&cfg, b);
    cfg.device = "cuda:0";
    key_of(&cfg, c);
    cfg.device = "cuda:1";
    key_of(&cfg, d);
    assert_string_equal(a, b);
    assert_string_equal(a, c);
    assert_string_not_equal(a, d);
    cfg.device = "cpu";
    key_of(&cfg, d);
    assert_string_not_equal(a, d);
    no_gpu();
}

static void device_errors_name_the_model(void **state)
{
    (void)state;
    no_gpu();
    ttsm_load_config cfg = ttsm_load_config_default();
    cfg.engine = "chatterbox";
    cfg.model_name = "English";
    cfg.device = "cuda:0";
    char key[33];
    ttsm_error err;
    tu_assert_error(ttsm_cache_key(&cfg, key, &err), &err, TTSM_ERR_DEVICE,
                    "chatterbox/English: device not available: 'cuda:0' does not exist "
                    "(devices here: cpu)");
    cfg.device = "mps";
    tu_assert_error(ttsm_cache_key(&cfg, key, &err), &err, TTSM_ERR_DEVICE, "not supported");
}

static void paths_are_canonical_and_absolute(void **state)
{
    (void)state;
    no_gpu();
    char *root = strdup(tu_mkdtemp());
    char *a = tu_path(root, "a"), *b = tu_path(root, "b");
    char *av1 = tu_path(a, "v1"), *bv1 = tu_path(b, "v1"), *link = tu_path(root, "link");
    assert_int_equal(mkdir(a, 0755), 0);
    assert_int_equal(mkdir(b, 0755), 0);
    assert_int_equal(mkdir(av1, 0755), 0);
    assert_int_equal(mkdir(bv1, 0755), 0);
    assert_int_equal(symlink(av1, link), 0);

    ttsm_load_config cfg = ttsm_load_config_default();
    cfg.engine = "f5tts";
    char k1[33], k2[33], k3[33], k4[33];
    cfg.model_path = av1;
    key_of(&cfg, k1);
    cfg.model_path = bv1;
    key_of(&cfg, k2);
    assert_string_not_equal(k1, k2); /* same basename, different folders */
    cfg.model_path = link;
    key_of(&cfg, k3);
    assert_string_equal(k1, k3); /* a symlink is its target */
    char *cwd = getcwd(NULL, 0);
    assert_non_null(cwd);
    assert_int_equal(chdir(a), 0);
    cfg.model_path = "v1/../v1/.";
    key_of(&cfg, k4);
    assert_int_equal(chdir(cwd), 0);
    free(cwd);
    assert_string_equal(k1, k4); /* relative and dotted paths resolve */

    char *missing = tu_path(root, "missing");
    cfg.model_path = missing;
    ttsm_error err;
    tu_assert_error(ttsm_cache_key(&cfg, k4, &err), &err, TTSM_ERR_NOT_FOUND, "f5tts",
                    "model path not usable", missing, "No such file");
    tu_rmtree(root);
    free(a), free(b), free(av1), free(bv1), free(link), free(missing), free(root);
}

static void no_collisions_where_the_seed_had_them(void **state)
{
    (void)state;
    no_gpu();
    char k1[33], k2[33];
    ttsm_load_config c1 = ttsm_load_config_default(), c2 = ttsm_load_config_default();
    c1.device = c2.device = "cpu";
    c1.engine = "a_b";
    c1.model_name = "c";
    c2.engine = "a";
    c2.model_name = "b_c";
    key_of(&c1, k1);
    key_of(&c2, k2);
    assert_string_not_equal(k1, k2);
    ttsm_param p1[] = {{"ab", "c"}}, p2[] = {{"a", "bc"}};
    c1.engine = c2.engine = "x";
    c1.model_name = c2.model_name = NULL;
    c1.params = p1;
    c2.params = p2;
    c1.n_params = c2.n_params = 1;
    key_of(&c1, k1);
    key_of(&c2, k2);
    assert_string_not_equal(k1, k2);
    /* A language is not a model name. */
    ttsm_load_config c3 = ttsm_load_config_default(), c4 = ttsm_load_config_default();
    c3.engine = c4.engine = "engine_without_manifest";
    c3.device = c4.device = "cpu";
    c3.model_name = "en";
    c4.language = "en";
    key_of(&c3, k1);
    key_of(&c4, k2);
    assert_string_not_equal(k1, k2);
    /* A repo is not a path with the same text. */
    c3.model_name = NULL;
    c3.repo_id = "org/name";
    c4.language = NULL;
    c4.repo_id = "org/name@v2";
    key_of(&c3, k1);
    key_of(&c4, k2);
    assert_string_not_equal(k1, k2);
}

static void bad_repo_ids(void **state)
{
    (void)state;
    no_gpu();
    const char *bad[] = {"noslash", "/name", "org/", "a/b/c", "org/name@", "org name/x",
                         "org/na\"me"};
    ttsm_load_config cfg = ttsm_load_config_default();
    cfg.engine = "vibevoice";
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cfg.repo_id = bad[i];
        char key[33];
        ttsm_error err;
        tu_assert_error(ttsm_cache_key(&cfg, key, &err), &err, TTSM_ERR_INVALID_ARGUMENT,
                        "repo_id", bad[i]);
    }
}

static void invalid_configs_and_arguments(void **state)
{
    (void)state;
    ttsm_load_config cfg = ttsm_load_config_default();
    char key[33];
    char *canon;
    ttsm_error err;
    tu_assert_error(ttsm_cache_key(&cfg, key, &err), &err, TTSM_ERR_INVALID_ARGUMENT,
                    "engine is required");
    cfg.engine = "x";
    tu_assert_error(ttsm_cache_key(&cfg, NULL, &err), &err, TTSM_ERR_INVALID_ARGUMENT, "NULL");
    tu_assert_error(ttsm_cache_key_canonical(&cfg, NULL, NULL, &err), &err,
                    TTSM_ERR_INVALID_ARGUMENT, "NULL");
    tu_assert_ok(ttsm_cache_key_canonical(&cfg, &canon, NULL, &err), &err);
    ttsm_free(canon);
}

static void allocation_failures(void **state)
{
    (void)state;
    no_gpu();
    ttsm_param p[] = {{"attention_mode", "sdpa"}, {"use_x", "1"}, {"quantize_llm_4bit", "true"}};
    ttsm_load_config cfg = ttsm_load_config_default();
    cfg.engine = "vibevoice";
    cfg.repo_id = "microsoft/VibeVoice-1.5B";
    cfg.n_params = 2;
    p[1] = p[2];
    cfg.params = p;
    char want[33], key[33];
    key_of(&cfg, want);
    int failures = 0;
    for (long n = 1; n < 1000; n++) {
        ttsm_error err;
        ttsm__alloc_fail_after(n);
        ttsm_status st = ttsm_cache_key(&cfg, key, &err);
        ttsm__alloc_fail_after(0);
        if (st == TTSM_OK) {
            assert_string_equal(key, want);
            break;
        }
        tu_assert_error(st, &err, TTSM_ERR_OUT_OF_MEMORY, "out of memory");
        failures++;
    }
    assert_true(failures > 3);
}

static void the_registry_shapes_the_key(void **state)
{
    (void)state;
    no_gpu();
    char a[33], b[33];
    ttsm_load_config c = ttsm_load_config_default();
    c.device = "cpu";
    /* 23-language ChatterBox: one model for every language. */
    c.engine = "chatterbox_official_23lang";
    c.language = "en";
    key_of(&c, a);
    c.language = "French";
    key_of(&c, b);
    assert_string_equal(a, b);
    /* F5-TTS: the language picks the fine-tune. */
    c.engine = "f5tts";
    c.language = "de";
    key_of(&c, a);
    c.language = "es";
    key_of(&c, b);
    assert_string_not_equal(a, b);
    /* The same model named three ways. */
    c.engine = "chatterbox";
    c.language = NULL;
    key_of(&c, a);
    c.engine = "ChatterBox";
    c.model_name = "English";
    key_of(&c, b);
    assert_string_equal(a, b);
    c.model_name = NULL;
    c.language = "english";
    key_of(&c, b);
    assert_string_equal(a, b);
}

static void registry_errors(void **state)
{
    (void)state;
    no_gpu();
    char k[33];
    ttsm_error err;
    ttsm_load_config c = ttsm_load_config_default();
    c.device = "cpu";
    c.engine = "chatterbox";
    c.language = "Klingon";
    tu_assert_error(ttsm_cache_key(&c, k, &err), &err, TTSM_ERR_NOT_FOUND,
                    "chatterbox: language not found: \"Klingon\" is not a language of this "
                    "engine (en, de");
    c.language = NULL;
    c.model_name = "Swahili";
    tu_assert_error(ttsm_cache_key(&c, k, &err), &err, TTSM_ERR_NOT_FOUND,
                    "no model \"Swahili\" (models: English, German");
    c.model_name = NULL;
    c.model_type = "hubert";
    tu_assert_error(ttsm_cache_key(&c, k, &err), &err, TTSM_ERR_NOT_FOUND,
                    "model type not found: hubert (tts, vc)");
    c.model_type = "tts";
    ttsm_param p = {"model_version", "v3"};
    c.params = &p;
    c.n_params = 1;
    tu_assert_error(ttsm_cache_key(&c, k, &err), &err, TTSM_ERR_INVALID_ARGUMENT,
                    "unknown param: \"model_version\" (params of this engine: none)");
    c.engine = "chatterbox_official_23lang";
    tu_assert_error(ttsm_cache_key(&c, k, &err), &err, TTSM_ERR_INVALID_ARGUMENT,
                    "model_version=v3 is not an allowed value (v1, v2)");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(vectors_from_the_spec),
        cmocka_unit_test(content_vectors_from_the_spec),
        cmocka_unit_test(auto_is_the_device_it_resolves_to),
        cmocka_unit_test(device_errors_name_the_model),
        cmocka_unit_test(paths_are_canonical_and_absolute),
        cmocka_unit_test(no_collisions_where_the_seed_had_them),
        cmocka_unit_test(bad_repo_ids),
        cmocka_unit_test(invalid_configs_and_arguments),
        cmocka_unit_test(allocation_failures),
        cmocka_unit_test(the_registry_shapes_the_key),
        cmocka_unit_test(registry_errors),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    ttsm__cuda_reset();
    return rc;
}
