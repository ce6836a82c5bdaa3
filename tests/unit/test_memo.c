/* test_memo.c - the manager's hit memo: a config seen before skips
 * canonicalisation on a hit, and never outlives what made it right - a
 * manifest override or a new engine changes the answer at once. */
#include <unistd.h>

#include "testutil.h"

static ttsm_manager *mk(void)
{
    ttsm_manager_options o = ttsm_manager_options_default();
    o.models_dirs = TTSM_SOURCE_DIR "/examples/models";
    o.hf_cache = "/nonexistent";
    ttsm_manager *m;
    ttsm_error err;
    tu_assert_ok(ttsm_manager_create(&o, &m, &err), &err);
    return m;
}

static ttsm_load_config cfg(const char *engine)
{
    ttsm_load_config c = ttsm_load_config_default();
    c.engine = engine;
    c.device = "cpu";
    return c;
}

static void hits_through_the_memo_match_the_full_path(void **state)
{
    (void)state;
    ttsm_manager *mgr = mk();
    ttsm_load_config c = cfg("chatterbox");
    ttsm_model *a, *b, *d;
    ttsm_error err;
    tu_assert_ok(ttsm_load(mgr, &c, &a, &err), &err);
    tu_assert_ok(ttsm_load(mgr, &c, &b, &err), &err); /* memo */
    assert_ptr_equal(a, b);
    ttsm_load_config e = cfg("ChatterBox"); /* another spelling: full path, same entry */
    e.language = "en";
    tu_assert_ok(ttsm_load(mgr, &e, &d, &err), &err);
    assert_ptr_equal(a, d);
    ttsm_manager_stats s;
    ttsm_manager_get_stats(mgr, &s);
    assert_int_equal(s.loads, 1);
    assert_int_equal(s.hits, 2);
    ttsm_model_release(a);
    ttsm_model_release(b);
    ttsm_model_release(d);
    /* A released, unreferenced entry is still a memo hit. */
    tu_assert_ok(ttsm_load(mgr, &c, &a, &err), &err);
    ttsm_manager_get_stats(mgr, &s);
    assert_int_equal(s.hits, 3);
    ttsm_model_release(a);
    /* After an unload the memo's key finds nothing: a real load follows. */
    char key[TTSM_KEY_HEX_SIZE];
    tu_assert_ok(ttsm_cache_key(&c, key, &err), &err);
    tu_assert_ok(ttsm_unload(mgr, key, &err), &err);
    tu_assert_ok(ttsm_load(mgr, &c, &a, &err), &err);
    ttsm_manager_get_stats(mgr, &s);
    assert_int_equal(s.loads, 2);
    ttsm_model_release(a);
    ttsm_manager_destroy(mgr);
}

static void an_override_changes_the_answer_at_once(void **state)
{
    (void)state;
    ttsm_manager *mgr = mk();
    ttsm_load_config c = cfg("chatterbox");
    ttsm_model *a, *b;
    ttsm_error err;
    tu_assert_ok(ttsm_load(mgr, &c, &a, &err), &err);
    assert_string_equal(ttsm_model_name(a), "English");
    ttsm_model_release(a);
    /* The same manifest with another default model, from a folder. */
    const ttsm_engine_info *e = ttsm_engine_find("chatterbox");
    const char *json = ttsm_engine_manifest(e);
    char *text = strdup(json);
    char *at = strstr(text, "\"default_model\":\"English\"");
    assert_non_null(at);
    memcpy(at, "\"default_model\":\"German\" ", 25);
    char *dir = strdup(tu_mkdtemp());
    free(tu_write_file(dir, "chatterbox.json", text, strlen(text)));
    tu_assert_ok(ttsm_engines_load_dir(dir, &err), &err);
    tu_assert_ok(ttsm_load(mgr, &c, &b, &err), &err);
    assert_string_equal(ttsm_model_name(b), "German"); /* not the memo's English */
    ttsm_model_release(b);
    ttsm_manager_destroy(mgr);
    tu_rmtree(dir);
    free(dir);
    free(text);
}

static void configs_with_a_path_are_not_memoised(void **state)
{
    (void)state;
    ttsm_manager *mgr = mk();
    char *dir = strdup(tu_mkdtemp());
    static const char st_file[] = "\x10\0\0\0\0\0\0\0{}              ";
    char *p1 = tu_path(dir, "v1"), *p2 = tu_path(dir, "v2"), *link = tu_path(dir, "current");
    assert_int_equal(mkdir(p1, 0755), 0);
    assert_int_equal(mkdir(p2, 0755), 0);
    free(tu_write_file(p1, "a.safetensors", st_file, sizeof st_file - 1));
    free(tu_write_file(p2, "b.safetensors", st_file, sizeof st_file - 1));
    assert_int_equal(symlink(p1, link), 0);
    ttsm_load_config c = cfg("file");
    c.model_path = link;
    ttsm_model *a, *b;
    ttsm_error err;
    tu_assert_ok(ttsm_load(mgr, &c, &a, &err), &err);
    assert_string_equal(ttsm_model_component_name(a, 0), "a");
    ttsm_model_release(a);
    /* The link now names another folder: the next load must see it. */
    assert_int_equal(unlink(link), 0);
    assert_int_equal(symlink(p2, link), 0);
    tu_assert_ok(ttsm_load(mgr, &c, &b, &err), &err);
    assert_string_equal(ttsm_model_component_name(b, 0), "b");
    ttsm_model_release(b);
    ttsm_manager_destroy(mgr);
    tu_rmtree(dir);
    free(p1), free(p2), free(link), free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(hits_through_the_memo_match_the_full_path),
        cmocka_unit_test(configs_with_a_path_are_not_memoised),
        cmocka_unit_test(an_override_changes_the_answer_at_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
