/* test_memo.c - the manager's hit memo: a config seen before skips
 * canonicalisation on a hit, and never outlives what made it right - a
 * manifest override or a new engine changes the answer at once, and for a
 * model_path any move of a link, file or folder it resolves through. */
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

/* dir/name: a safetensors file of one U8 tensor "w" holding `v`. */
static char *write_u8(const char *dir, const char *name, unsigned char v)
{
    static const char h[] = "{\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}";
    unsigned char b[128] = {0};
    size_t hl = sizeof h - 1, pad = (8 - (8 + hl) % 8) % 8;
    b[0] = (unsigned char)(hl + pad);
    memcpy(b + 8, h, hl);
    memset(b + 8 + hl, ' ', pad);
    b[8 + hl + pad] = v;
    return tu_write_file(dir, name, b, 8 + hl + pad + 1);
}

/* Whether the entry of `m` is pinned, from the listing. */
static int listed_pinned(ttsm_manager *mgr, const ttsm_model *m)
{
    ttsm_entry_info *v;
    size_t n;
    ttsm_error err;
    tu_assert_ok(ttsm_manager_list(mgr, &v, &n, &err), &err);
    int pinned = -1;
    for (size_t i = 0; i < n; i++)
        if (strcmp(v[i].key, ttsm_model_key(m)) == 0)
            pinned = v[i].pinned;
    ttsm_free(v);
    assert_true(pinned >= 0);
    return pinned;
}

/* A load of c must give what the full resolution names: the entry that
 * the key ttsm_cache_key computes now names (its own key, or one of its
 * aliases when the files are those of an entry loaded under another path:
 * docs/cache-key.md), holding the tensor value `want`. */
static void expect_load(ttsm_manager *mgr, const ttsm_load_config *c, unsigned char want)
{
    ttsm_model *m;
    ttsm_error err;
    char key[TTSM_KEY_HEX_SIZE];
    tu_assert_ok(ttsm_load(mgr, c, &m, &err), &err);
    tu_assert_ok(ttsm_cache_key(c, key, &err), &err);
    if (strcmp(ttsm_model_key(m), key) != 0) {
        assert_false(listed_pinned(mgr, m));
        tu_assert_ok(ttsm_pin(mgr, key, &err), &err); /* the key names this entry */
        assert_true(listed_pinned(mgr, m));
        tu_assert_ok(ttsm_unpin(mgr, key, &err), &err);
    }
    assert_int_equal(*(const unsigned char *)ttsm_model_get_tensor(m, 0, 0)->data, want);
    ttsm_model_release(m);
}

/* An absolute model_path is memoised, and trusted only while nothing its
 * resolution went through has changed: a retargeted link (the path's own,
 * or a folder's on the way), a file or folder renamed over, are all
 * noticed by the next load, which gets what the full resolution gives. */
static void a_memoised_path_notices_moved_links_and_replaced_files(void **state)
{
    (void)state;
    ttsm_manager *mgr = mk();
    char *dir = strdup(tu_mkdtemp());
    char *p1 = tu_path(dir, "v1"), *p2 = tu_path(dir, "v2"), *link = tu_path(dir, "current");
    assert_int_equal(mkdir(p1, 0755), 0);
    assert_int_equal(mkdir(p2, 0755), 0);
    free(write_u8(p1, "a.safetensors", 'a'));
    free(write_u8(p2, "b.safetensors", 'b'));
    assert_int_equal(symlink(p1, link), 0);
    ttsm_load_config c = cfg("file");
    c.model_path = link;
    ttsm_manager_stats s;
    expect_load(mgr, &c, 'a');
    expect_load(mgr, &c, 'a'); /* a hit, through the memo */
    ttsm_manager_get_stats(mgr, &s);
    assert_int_equal(s.hits, 1);
    /* The path's own link retargeted. */
    assert_int_equal(unlink(link), 0);
    assert_int_equal(symlink(p2, link), 0);
    expect_load(mgr, &c, 'b');

    /* A link to a file, replaced by another link renamed over it. */
    char *flink = tu_path(dir, "model.safetensors"), *tmp = tu_path(dir, "tmp.link");
    char *fa = tu_path(p1, "a.safetensors"), *fb = tu_path(p2, "b.safetensors");
    assert_int_equal(symlink(fa, flink), 0);
    c.model_path = flink;
    expect_load(mgr, &c, 'a');
    expect_load(mgr, &c, 'a');
    assert_int_equal(symlink(fb, tmp), 0);
    assert_int_equal(rename(tmp, flink), 0);
    expect_load(mgr, &c, 'b');

    /* A folder on the way: "current" is a link again, the file under it. */
    char *via = tu_path(link, "b.safetensors");
    c.model_path = via;
    expect_load(mgr, &c, 'b');
    assert_int_equal(unlink(link), 0);
    assert_int_equal(symlink(p1, link), 0); /* current -> v1 now, which has no b */
    char *b1 = tu_path(p1, "b.safetensors");
    free(write_u8(p1, "b.safetensors", 'B'));
    expect_load(mgr, &c, 'B'); /* v1's b, another key */

    /* A folder on the way renamed over by another: the path now resolves
     * through different entries. */
    char *real = tu_path(p2, "b.safetensors"), *v3 = tu_path(dir, "v3");
    c.model_path = real;
    expect_load(mgr, &c, 'b');
    assert_int_equal(mkdir(v3, 0755), 0);
    char *f3 = tu_path(v3, "b.safetensors");
    free(write_u8(v3, "b.safetensors", '3'));
    char *old = tu_path(dir, "old");
    assert_int_equal(rename(p2, old), 0);
    assert_int_equal(rename(v3, p2), 0);
    expect_load(mgr, &c, 'b'); /* the same path and key: the cached entry (docs/reliability.md) */
    ttsm_error err;
    char key[TTSM_KEY_HEX_SIZE];
    tu_assert_ok(ttsm_cache_key(&c, key, &err), &err);
    tu_assert_ok(ttsm_unload(mgr, key, &err), &err);
    expect_load(mgr, &c, '3'); /* once it is gone: the folder now there */
    free(old);

    /* A relative path is resolved every time (its meaning moves with the
     * working directory), and gives the same entry as the absolute one. */
    char cwd[4096];
    assert_non_null(getcwd(cwd, sizeof cwd));
    assert_int_equal(chdir(p2), 0);
    c.model_path = "b.safetensors";
    expect_load(mgr, &c, '3');
    assert_int_equal(chdir(cwd), 0);

    ttsm_manager_destroy(mgr);
    tu_rmtree(dir);
    free(p1), free(p2), free(link), free(dir), free(flink), free(tmp), free(fa), free(fb);
    free(via), free(b1), free(real), free(v3), free(f3);
}

/* A file replaced by rename while its entry is cached: the memo is dropped
 * and the full path runs, which (docs/reliability.md) serves the cached
 * entry; once that entry is gone, the next load opens the new file. */
static void a_replaced_file_is_what_the_full_path_gives(void **state)
{
    (void)state;
    ttsm_manager *mgr = mk();
    char *dir = strdup(tu_mkdtemp());
    char *p = write_u8(dir, "w.safetensors", 1);
    ttsm_load_config c = cfg("file");
    c.model_path = p;
    expect_load(mgr, &c, 1);
    expect_load(mgr, &c, 1);
    char *tmp = write_u8(dir, "new.tmp", 2);
    assert_int_equal(rename(tmp, p), 0);
    expect_load(mgr, &c, 1);
    char key[TTSM_KEY_HEX_SIZE];
    ttsm_error err;
    tu_assert_ok(ttsm_cache_key(&c, key, &err), &err);
    tu_assert_ok(ttsm_unload(mgr, key, &err), &err);
    expect_load(mgr, &c, 2);
    expect_load(mgr, &c, 2);
    ttsm_manager_destroy(mgr);
    tu_rmtree(dir);
    free(p), free(tmp), free(dir);
}

/* The content identity names a file by its location, the link's own name
 * not followed: a link retargeted since an entry was built names other
 * bytes, and the load must not join that entry (it used to: the full path
 * gave the old file's tensors). A relative path, so no memo is involved. */
static void a_retargeted_link_does_not_join_its_old_target(void **state)
{
    (void)state;
    ttsm_manager *mgr = mk();
    char *dir = strdup(tu_mkdtemp());
    char *fa = write_u8(dir, "a.safetensors", 'a'), *fb = write_u8(dir, "b.safetensors", 'b');
    char *link = tu_path(dir, "model.safetensors"), *tmp = tu_path(dir, "tmp.link");
    assert_int_equal(symlink(fa, link), 0);
    char cwd[4096];
    assert_non_null(getcwd(cwd, sizeof cwd));
    assert_int_equal(chdir(dir), 0);
    ttsm_load_config c = cfg("file");
    c.model_path = "model.safetensors";
    expect_load(mgr, &c, 'a');
    assert_int_equal(symlink(fb, tmp), 0);
    assert_int_equal(rename(tmp, link), 0);
    ttsm_load_report rep;
    ttsm_load_report_init(&rep);
    ttsm_model *m;
    ttsm_error err;
    tu_assert_ok(ttsm_load_with_report(mgr, &c, &m, &rep, &err), &err);
    assert_false(rep.shared);
    assert_int_equal(*(const unsigned char *)ttsm_model_get_tensor(m, 0, 0)->data, 'b');
    ttsm_model_release(m);
    /* The same file again under its own name is still one entry. */
    c.model_path = "b.safetensors";
    ttsm_load_report_init(&rep);
    tu_assert_ok(ttsm_load_with_report(mgr, &c, &m, &rep, &err), &err);
    assert_int_equal(*(const unsigned char *)ttsm_model_get_tensor(m, 0, 0)->data, 'b');
    ttsm_model_release(m);
    assert_int_equal(chdir(cwd), 0);
    ttsm_manager_destroy(mgr);
    tu_rmtree(dir);
    free(dir), free(fa), free(fb), free(link), free(tmp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(hits_through_the_memo_match_the_full_path),
        cmocka_unit_test(a_memoised_path_notices_moved_links_and_replaced_files),
        cmocka_unit_test(a_replaced_file_is_what_the_full_path_gives),
        cmocka_unit_test(an_override_changes_the_answer_at_once),
        cmocka_unit_test(a_retargeted_link_does_not_join_its_old_target),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
