/* test_recovery.c - recovery is data: Higgs Audio's manifest says it can
 * corrupt (stale CUDA graphs), so the manager's generic invalidate path
 * rebuilds it - holders keep their reference, the next load is a fresh
 * entry - and src/cache/manager.c names no engine. Uses the committed sample store. */
#include "testutil.h"

static void higgs_is_rebuilt_after_invalidate(void **state)
{
    (void)state;
    const ttsm_engine_info *e = ttsm_engine_find("higgs_audio");
    assert_true(ttsm_engine_has(e, TTSM_CAP_CAN_CORRUPT));
    assert_string_equal(ttsm_engine_recovery(e), "invalidate");

    ttsm_manager_options o = ttsm_manager_options_default();
    o.models_dirs = TTSM_SOURCE_DIR "/examples/models";
    o.hf_cache = "/nonexistent";
    ttsm_manager *mgr;
    ttsm_error err;
    tu_assert_ok(ttsm_manager_create(&o, &mgr, &err), &err);
    ttsm_load_config c = ttsm_load_config_default();
    c.engine = "Higgs Audio 2";
    c.device = "cpu";
    ttsm_model *old, *fresh, *again;
    tu_assert_ok(ttsm_load(mgr, &c, &old, &err), &err);
    char key[TTSM_KEY_HEX_SIZE];
    strcpy(key, ttsm_model_key(old));
    const ttsm_model_tensor *t = ttsm_model_get_tensor(old, 0, 0);
    assert_non_null(t);

    tu_assert_ok(ttsm_invalidate(mgr, key, &err), &err);
    /* The holder's model still works... */
    assert_non_null(ttsm_model_get_tensor(old, 0, 0));
    assert_string_equal(ttsm_model_key(old), key);
    /* ...and the next load builds a new entry under the same key. */
    tu_assert_ok(ttsm_load(mgr, &c, &fresh, &err), &err);
    assert_ptr_not_equal(fresh, old);
    assert_string_equal(ttsm_model_key(fresh), key);
    tu_assert_ok(ttsm_load(mgr, &c, &again, &err), &err);
    assert_ptr_equal(again, fresh); /* and then it is cached again */
    ttsm_manager_stats s;
    ttsm_manager_get_stats(mgr, &s);
    assert_int_equal(s.loads, 2);
    assert_int_equal(s.hits, 1);
    assert_int_equal(s.invalidations, 1);
    assert_int_equal(s.orphans, 1); /* the old entry lives while held */
    ttsm_model_release(old);
    ttsm_manager_get_stats(mgr, &s);
    assert_int_equal(s.orphans, 0);
    ttsm_model_release(fresh);
    ttsm_model_release(again);
    ttsm_manager_destroy(mgr);
}

static void manager_names_no_engine(void **state)
{
    (void)state;
    size_t len;
    unsigned char *src = tu_read_file(TTSM_SOURCE_DIR "/src/cache/manager.c", &len);
    assert_non_null(src);
    for (size_t i = 0; i < ttsm_engine_count(); i++) {
        const char *name = ttsm_engine_name(ttsm_engine_get(i));
        char quoted[300];
        snprintf(quoted, sizeof quoted, "\"%s\"", name);
        if (strstr((const char *)src, quoted))
            fail_msg("src/cache/manager.c names engine %s", quoted);
    }
    free(src);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(higgs_is_rebuilt_after_invalidate),
        cmocka_unit_test(manager_names_no_engine),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
