/* test_config.c - ttsm_load_config defaults and validation, language
 * normalisation. */
#include <string.h>

#include "testutil.h"

static void defaults(void **state)
{
    (void)state;
    ttsm_load_config c = ttsm_load_config_default();
    assert_int_equal(c.struct_size, sizeof c);
    assert_null(c.engine);
    assert_string_equal(c.model_type, "tts");
    assert_string_equal(c.device, "auto");
    assert_null(c.model_name);
    assert_null(c.language);
    assert_null(c.model_path);
    assert_null(c.repo_id);
    assert_null(c.params);
    assert_int_equal(c.n_params, 0);
}

static void valid_config(void **state)
{
    (void)state;
    ttsm_error err;
    ttsm_param p[] = {{"model_version", "v2"}, {"use_fp16", "1"}};
    ttsm_load_config c = ttsm_load_config_default();
    c.engine = "chatterbox";
    c.language = "English";
    c.params = p;
    c.n_params = 2;
    tu_assert_ok(ttsm_load_config_validate(&c, &err), &err);
}

#define EXPECT_INVALID(cfg, ...)                                                    \
    do {                                                                            \
        ttsm_error e_;                                                              \
        tu_assert_error(ttsm_load_config_validate(&(cfg), &e_), &e_,                \
                        TTSM_ERR_INVALID_ARGUMENT, __VA_ARGS__);                    \
    } while (0)

static void missing_engine(void **state)
{
    (void)state;
    ttsm_load_config c = ttsm_load_config_default();
    EXPECT_INVALID(c, "engine is required");
}

static void struct_size(void **state)
{
    (void)state;
    ttsm_load_config c = ttsm_load_config_default();
    c.engine = "x";
    c.struct_size = 0;
    EXPECT_INVALID(c, "struct_size", "ttsm_load_config_default");
    c.struct_size = sizeof c + 8;
    EXPECT_INVALID(c, "struct_size", "newer");
}

static void empty_strings(void **state)
{
    (void)state;
    ttsm_load_config c = ttsm_load_config_default();
    c.engine = "";
    EXPECT_INVALID(c, "engine is an empty string");
    c.engine = "chatterbox";
    c.model_name = "";
    EXPECT_INVALID(c, "model_name is an empty string");
    c.model_name = NULL;
    c.device = "";
    EXPECT_INVALID(c, "device");
    c.device = NULL;
    c.language = "";
    EXPECT_INVALID(c, "language");
    c.language = NULL;
    c.model_path = "";
    EXPECT_INVALID(c, "model_path");
    c.model_path = NULL;
    c.repo_id = "";
    EXPECT_INVALID(c, "repo_id");
    c.repo_id = NULL;
    c.model_type = "";
    EXPECT_INVALID(c, "model_type");
}

static void control_characters(void **state)
{
    (void)state;
    ttsm_load_config c = ttsm_load_config_default();
    c.engine = "chatter\nbox";
    EXPECT_INVALID(c, "engine holds control character 0x0a at byte 7");
}

static void absurdly_long_values(void **state)
{
    (void)state;
    static char big[TTSM_CONFIG_VALUE_MAX + 2];
    memset(big, 'a', sizeof big - 1);
    ttsm_load_config c = ttsm_load_config_default();
    c.engine = "chatterbox";
    c.model_path = big;
    EXPECT_INVALID(c, "model_path is longer than 4096 bytes");
    c.model_path = NULL;
    big[TTSM_CONFIG_NAME_MAX + 1] = '\0';
    c.engine = big;
    EXPECT_INVALID(c, "engine is longer than 256 bytes");
    c.engine = "chatterbox";
    big[TTSM_CONFIG_NAME_MAX + 1] = 'a';
    ttsm_param p = {"k", big};
    c.params = &p;
    c.n_params = 1;
    EXPECT_INVALID(c, "params[0].value is longer");
}

static void params(void **state)
{
    (void)state;
    ttsm_load_config c = ttsm_load_config_default();
    c.engine = "vibevoice";
    c.n_params = 1;
    EXPECT_INVALID(c, "params is NULL but n_params is 1");
    ttsm_param dup[] = {{"attention_mode", "sdpa"}, {"b", "1"}, {"attention_mode", "eager"}};
    c.params = dup;
    c.n_params = 3;
    EXPECT_INVALID(c, "params[2].key \"attention_mode\" repeats params[0].key");
    ttsm_param nokey[] = {{NULL, "v"}};
    c.params = nokey;
    c.n_params = 1;
    EXPECT_INVALID(c, "params[0].key is NULL");
    ttsm_param emptykey[] = {{"", "v"}};
    c.params = emptykey;
    EXPECT_INVALID(c, "params[0].key is an empty string");
    ttsm_param badkey[] = {{"a=b", "v"}};
    c.params = badkey;
    EXPECT_INVALID(c, "params[0].key \"a=b\" may hold only");
    ttsm_param noval[] = {{"k", NULL}};
    c.params = noval;
    EXPECT_INVALID(c, "params[0].value (key \"k\") is NULL");
    ttsm_param many[TTSM_CONFIG_PARAMS_MAX + 1];
    c.params = many;
    c.n_params = TTSM_CONFIG_PARAMS_MAX + 1;
    EXPECT_INVALID(c, "129 params, the limit is 128");
}

static void languages(void **state)
{
    (void)state;
    char out[32];
    ttsm_error err;
    const char *same[] = {"English", "english", "EN", "en"};
    for (size_t i = 0; i < 4; i++) {
        tu_assert_ok(ttsm_language_normalize(same[i], out, sizeof out, &err), &err);
        assert_string_equal(out, "en");
    }
    tu_assert_ok(ttsm_language_normalize("German", out, sizeof out, &err), &err);
    assert_string_equal(out, "de");
    tu_assert_ok(ttsm_language_normalize("Klingon", out, sizeof out, &err), &err);
    assert_string_equal(out, "klingon");
    tu_assert_error(ttsm_language_normalize("Klingon", out, 4, &err), &err,
                    TTSM_ERR_INVALID_ARGUMENT, "too small");
    tu_assert_error(ttsm_language_normalize(NULL, out, 4, &err), &err, TTSM_ERR_INVALID_ARGUMENT,
                    "must be given");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(defaults),          cmocka_unit_test(valid_config),
        cmocka_unit_test(missing_engine),    cmocka_unit_test(struct_size),
        cmocka_unit_test(empty_strings),     cmocka_unit_test(control_characters),
        cmocka_unit_test(absurdly_long_values), cmocka_unit_test(params),
        cmocka_unit_test(languages),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
