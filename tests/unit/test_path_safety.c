/* test_path_safety.c - paths that try to leave their folder, one test per route
 * not covered elsewhere: hub index shards and refs that are symlinks, unsafe
 * revisions and repo ids, every manifest path field, model names used as folders,
 * config model names, and symlinks in caller folders (policy). The full route
 * list, with the tests elsewhere, is in docs/reliability.md. */
#include <unistd.h>

#include "mgr_util.h"

#define COMMIT "0123456789abcdef0123456789abcdef01234567"

static char *root, *hub, *outside, *engines, *nowhere;

/* A manifest engine "pathsafe" with one model "m" from repo org/name:
 * component "w", the file `file` (a sharded index or a checkpoint). */
static void write_engine(const char *file)
{
    char text[2048];
    snprintf(text, sizeof text,
             "{\"schema\": 1, \"name\": \"pathsafe\", \"runtime\": \"pytorch\", "
             "\"model_types\": [\"tts\"], \"capabilities\": {\"supports_voice_conversion\": false, "
             "\"has_fallback\": false, \"can_corrupt\": false, \"requires_special_init\": false, "
             "\"language_selects_model\": false, \"single_instance\": false, \"recovery\": \"none\"}, "
             "\"devices\": [\"cpu\"], \"folder\": \"pathsafe\", \"default_model\": \"m\", "
             "\"models\": [{\"name\": \"m\", \"repos\": [{\"id\": \"org/name\"}], "
             "\"components\": [{\"name\": \"w\", \"kind\": \"tensors\", \"files\": [\"%s\"]}]}]}",
             file);
    free(tu_write_file(engines, "pathsafe.json", text, strlen(text)));
    ttsm_error err;
    tu_assert_ok(ttsm_engines_load_dir(engines, &err), &err);
}

static int setup(void **state)
{
    (void)state;
    root = strdup(tu_mkdtemp());
    hub = tu_path(root, "hub");
    outside = tu_path(root, "outside");
    engines = tu_path(root, "engines");
    nowhere = tu_path(root, "nowhere");
    mkdir(hub, 0755);
    mkdir(outside, 0755);
    mkdir(engines, 0755);
    /* hub/models--org--name: refs/main -> snapshots/<commit>/<files> ->
     * relative symlinks into blobs/, as huggingface_hub writes them */
    return tu_system("set -e; R='%s/models--org--name'; mkdir -p \"$R/refs\" \"$R/blobs\" "
                     "\"$R/snapshots/%s\"; printf %s > \"$R/refs/main\"",
                     hub, COMMIT, COMMIT) == 0
               ? 0
               : -1;
}

static int teardown(void **state)
{
    (void)state;
    tu_rmtree(root);
    free(root);
    free(hub);
    free(outside);
    free(engines);
    free(nowhere);
    return 0;
}

static char *snap_path(const char *name)
{
    return tu_fmt("%s/models--org--name/snapshots/" COMMIT "/%s", hub, name);
}

/* A blob in the repo and the snapshot entry `name` linking to it. */
static void add_blob(const char *name, const char *blob_from)
{
    assert_int_equal(tu_system("set -e; R='%s/models--org--name'; cp '%s' \"$R/blobs/%s.blob\"; "
                               "ln -sfn \"../../blobs/%s.blob\" \"$R/snapshots/" COMMIT "/%s\"",
                               hub, blob_from, name, name, name),
                     0);
}

static ttsm_status load_pathsafe(const char *repo_id, ttsm_error *err)
{
    ttsm_manager_options o = ttsm_manager_options_default();
    o.models_dirs = nowhere;
    o.hf_cache = hub;
    ttsm_manager *mgr;
    tu_assert_ok(ttsm_manager_create(&o, &mgr, err), err);
    ttsm_load_config c = ttsm_load_config_default();
    c.engine = "pathsafe";
    c.device = "cpu";
    c.repo_id = repo_id;
    ttsm_model *m = NULL;
    ttsm_status st = ttsm_load(mgr, &c, &m, err);
    ttsm_model_release(m);
    ttsm_manager_destroy(mgr);
    return st;
}

/* ---- the hub cache -------------------------------------------------------- */

/* The index is a proper blob of the repo, but a shard links out of it: to
 * /etc/passwd, and to a valid checkpoint elsewhere (which would load). */
static void test_hub_index_shard_leaves_repo(void **state)
{
    (void)state;
    const char *idx = TTSM_SOURCE_DIR "/tests/fixtures/safetensors/index/ok.safetensors.index.json";
    const char *sa = TTSM_SOURCE_DIR "/tests/fixtures/safetensors/index/shard-a.safetensors";
    const char *sb = TTSM_SOURCE_DIR "/tests/fixtures/safetensors/index/shard-b.safetensors";
    write_engine("model.safetensors.index.json");
    add_blob("model.safetensors.index.json", idx);
    add_blob("shard-a.safetensors", sa);
    add_blob("shard-b.safetensors", sb);
    ttsm_error err;
    tu_assert_ok(load_pathsafe(NULL, &err), &err); /* all inside: loads */

    char *shard = snap_path("shard-b.safetensors");
    char *copy = tu_path(outside, "shard-b.safetensors");
    assert_int_equal(tu_system("cp '%s' '%s'", sb, copy), 0);
    const char *targets[] = {"/etc/passwd", copy};
    for (int i = 0; i < 2; i++) {
        unlink(shard);
        assert_int_equal(symlink(targets[i], shard), 0);
        ttsm_status st = load_pathsafe(NULL, &err);
        tu_assert_error(st, &err, TTSM_ERR_FORMAT, shard, "unsafe hub cache entry",
                        "outside its repo folder");
        /* resolution says the same without loading */
        ttsm_load_config c = ttsm_load_config_default();
        c.engine = "pathsafe";
        char *report = NULL;
        st = ttsm_resolve(&c, nowhere, hub, &report, &err);
        tu_assert_error(st, &err, TTSM_ERR_FORMAT, shard, "unsafe hub cache entry");
        assert_null(report);
    }
    /* a dangling shard link is a missing shard, reported by the reader */
    unlink(shard);
    assert_int_equal(symlink("../../blobs/gone.blob", shard), 0);
    ttsm_status st = load_pathsafe(NULL, &err);
    tu_assert_error(st, &err, TTSM_ERR_NOT_FOUND, "missing shard", "shard-b.safetensors");
    unlink(shard);
    add_blob("shard-b.safetensors", sb);
    tu_assert_ok(load_pathsafe(NULL, &err), &err);
    free(shard);
    free(copy);
}

/* refs/main as a symlink: its target is read as a ref and refused. */
static void test_hub_ref_symlink(void **state)
{
    (void)state;
    const char *ck = TTSM_SOURCE_DIR "/tests/fixtures/safetensors/ok_scalar.safetensors";
    write_engine("w.safetensors");
    add_blob("w.safetensors", ck);
    ttsm_error err;
    tu_assert_ok(load_pathsafe(NULL, &err), &err);
    char *ref = tu_fmt("%s/models--org--name/refs/main", hub);
    char *saved = tu_fmt("%s/models--org--name/refs.main.saved", hub);
    assert_int_equal(rename(ref, saved), 0);
    assert_int_equal(symlink("/etc/passwd", ref), 0);
    ttsm_status st = load_pathsafe(NULL, &err);
    tu_assert_error(st, &err, TTSM_ERR_FORMAT, ref, "malformed ref",
                    "expected a 40-digit commit hash");
    /* a ref that names a commit whose snapshot is a path: never a path */
    unlink(ref);
    free(tu_write_file(root, "evil-ref", "../../../../../../etc", 21));
    char *evil = tu_path(root, "evil-ref");
    assert_int_equal(symlink(evil, ref), 0);
    free(evil);
    st = load_pathsafe(NULL, &err);
    tu_assert_error(st, &err, TTSM_ERR_FORMAT, ref, "malformed ref");
    unlink(ref);
    assert_int_equal(rename(saved, ref), 0);
    tu_assert_ok(load_pathsafe(NULL, &err), &err);
    free(ref);
    free(saved);
}

/* The repo folder itself a symlink to somewhere outside the hub: its
 * snapshot files resolve inside "their repo folder", wherever that is, so
 * the repo folder must resolve inside the hub as well. */
static void test_hub_repo_folder_leaves_hub(void **state)
{
    (void)state;
    const char *ck = TTSM_SOURCE_DIR "/tests/fixtures/safetensors/ok_scalar.safetensors";
    write_engine("w.safetensors");
    add_blob("w.safetensors", ck);
    ttsm_error err;
    tu_assert_ok(load_pathsafe(NULL, &err), &err);
    char *repo = tu_fmt("%s/models--org--name", hub);
    char *moved = tu_fmt("%s/models--org--name", outside);
    assert_int_equal(rename(repo, moved), 0);
    assert_int_equal(symlink(moved, repo), 0);
    ttsm_status st = load_pathsafe(NULL, &err);
    tu_assert_error(st, &err, TTSM_ERR_FORMAT, "w.safetensors", "unsafe hub cache entry",
                    "its repo folder", "outside the hub cache");
    ttsm_load_config c = ttsm_load_config_default();
    c.engine = "pathsafe";
    char *report = NULL;
    st = ttsm_resolve(&c, nowhere, hub, &report, &err);
    tu_assert_error(st, &err, TTSM_ERR_FORMAT, "unsafe hub cache entry", "outside the hub cache");
    assert_null(report);
    /* a repo folder linked to another place inside the hub is fine */
    char *inner = tu_fmt("%s/moved--here", hub);
    assert_int_equal(rename(moved, inner), 0);
    unlink(repo);
    assert_int_equal(symlink(inner, repo), 0);
    tu_assert_ok(load_pathsafe(NULL, &err), &err);
    unlink(repo);
    assert_int_equal(rename(inner, repo), 0);
    tu_assert_ok(load_pathsafe(NULL, &err), &err);
    free(inner);
    free(repo);
    free(moved);
}

/* Revisions and repo ids from the caller: '..' and absolute revisions are
 * refused; a repo id is a folder name, never a path. */
static void test_hub_revisions_and_repo_ids(void **state)
{
    (void)state;
    write_engine("w.safetensors");
    ttsm_error err;
    static const char *const bad_revs[] = {"org/name@/etc", "org/name@/", "org/name@a/../../b",
                                           "org/name@.."};
    for (size_t i = 0; i < sizeof bad_revs / sizeof bad_revs[0]; i++) {
        ttsm_status st = load_pathsafe(bad_revs[i], &err);
        if (st != TTSM_ERR_FORMAT && st != TTSM_ERR_INVALID_ARGUMENT)
            fail_msg("%s: %s: %s", bad_revs[i], ttsm_status_name(st), err.message);
        assert_true(strstr(err.message, "unsafe revision") || strstr(err.message, "repo_id"));
    }
    /* "../../x" as a repo id names the folder models--..--..--x inside the
     * hub: not found, and the search stays in the hub */
    ttsm_status st = load_pathsafe("../../outside", &err);
    if (st != TTSM_ERR_NOT_FOUND && st != TTSM_ERR_INVALID_ARGUMENT && st != TTSM_ERR_FORMAT)
        fail_msg("repo id with '..': %s: %s", ttsm_status_name(st), err.message);
    assert_null(strstr(err.message, "/outside/"));
}

/* ---- manifests ------------------------------------------------------------ */

#define HEAD                                                                                  \
    "{\"schema\": 1, \"name\": \"evil\", \"runtime\": \"pytorch\", \"model_types\": [\"tts\"], " \
    "\"capabilities\": {\"supports_voice_conversion\": false, \"has_fallback\": false, "        \
    "\"can_corrupt\": false, \"requires_special_init\": false, "                                \
    "\"language_selects_model\": false, \"single_instance\": false, \"recovery\": \"none\"}, "   \
    "\"devices\": [\"cpu\"], \"default_model\": \"m\", "

/* Every path field of a manifest other than files and legacy_folders
 * (test_registry.c), and model names, which are folders and "{model}". */
static void test_manifest_path_fields(void **state)
{
    (void)state;
    static const struct {
        const char *text, *field;
    } cases[] = {
        {HEAD "\"folder\": \"..\", \"models\": [{\"name\": \"m\", \"components\": [{\"name\": \"w\", "
              "\"kind\": \"tensors\", \"files\": [\"w\"]}]}]}",
         "folder: \"..\" must be a relative path"},
        {HEAD "\"folder\": \"/etc\", \"models\": [{\"name\": \"m\", \"components\": [{\"name\": "
              "\"w\", \"kind\": \"tensors\", \"files\": [\"w\"]}]}]}",
         "folder: \"/etc\" must be a relative path"},
        {HEAD "\"folder\": \"e\", \"models\": [{\"name\": \"m\", \"folder\": \"../../x\", "
              "\"components\": [{\"name\": \"w\", \"kind\": \"tensors\", \"files\": [\"w\"]}]}]}",
         "models[0].folder: \"../../x\" must be a relative path"},
        {HEAD "\"folder\": \"e\", \"models\": [{\"name\": \"m\", \"dir\": \"/etc\", "
              "\"components\": [{\"name\": \"w\", \"kind\": \"tensors\", \"files\": [\"w\"]}]}]}",
         "models[0].dir: \"/etc\" must be a relative path"},
        {HEAD "\"folder\": \"e\", \"models\": [{\"name\": \"m\", \"components\": [{\"name\": \"w\", "
              "\"kind\": \"tensors\", \"subfolder\": \"a/../../..\", \"files\": [\"w\"]}]}]}",
         "subfolder: \"a/../../..\" must be a relative path"},
        {HEAD "\"folder\": \"e\", \"models\": [{\"name\": \"m\", \"repos\": [{\"id\": \"o/n\", "
              "\"subfolder\": \"..\"}], \"components\": [{\"name\": \"w\", \"kind\": \"tensors\", "
              "\"files\": [\"w\"]}]}]}",
         "repos[0].subfolder: \"..\" must be a relative path"},
        {HEAD "\"folder\": \"e\", \"shared\": {\"v\": {\"folder\": \"../v\", \"components\": "
              "[{\"name\": \"v\", \"kind\": \"tensors\", \"files\": [\"v\"]}]}}, \"models\": "
              "[{\"name\": \"m\", \"components\": [{\"name\": \"w\", \"kind\": \"tensors\", "
              "\"files\": [\"w\"]}]}]}",
         "shared.v.folder: \"../v\" must be a relative path"},
        {HEAD "\"folder\": \"e\", \"models\": [{\"name\": \"m\", \"components\": [{\"name\": \"w\", "
              "\"kind\": \"tensors\", \"files\": [\"a\\\\..\\\\b\"]}]}]}",
         "must be a relative path"},
        /* a model name is its folder without "folder", and "{model}" */
        {HEAD "\"folder\": \"e\", \"models\": [{\"name\": \"m\", \"components\": [{\"name\": "
              "\"w\", \"kind\": \"tensors\", \"files\": [\"w\"]}]}, {\"name\": \"../../../etc\", "
              "\"components\": [{\"name\": \"w\", \"kind\": \"tensors\", \"files\": [\"passwd\"]}]}]}",
         "model name \"../../../etc\" must be usable as a folder name"},
        {HEAD "\"folder\": \"e\", \"models\": [{\"name\": \"m\", \"components\": [{\"name\": \"w\", "
              "\"kind\": \"tensors\", \"files\": [\"w\"]}]}, {\"name\": \"..\", \"folder\": \"x\", "
              "\"components\": [{\"name\": \"w\", \"kind\": \"tensors\", \"files\": "
              "[\"{model}/etc/passwd\"]}]}]}",
         "model name \"..\" must be usable"},
        {HEAD "\"folder\": \"e\", \"shared\": {\"../x\": {\"dir\": \"x\", \"components\": "
              "[{\"name\": \"v\", \"kind\": \"tensors\", \"files\": [\"{model}.pt\"]}]}}, "
              "\"models\": [{\"name\": \"m\", \"components\": [{\"name\": \"w\", \"kind\": "
              "\"tensors\", \"files\": [\"w\"]}]}]}",
         "model name \"../x\" must be usable"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *d = tu_path(root, "bad-engines");
        mkdir(d, 0755);
        char *f = tu_write_file(d, "evil.json", cases[i].text, strlen(cases[i].text));
        ttsm_error err;
        ttsm_status st = ttsm_engines_load_dir(d, &err);
        if (st != TTSM_ERR_FORMAT || !strstr(err.message, "evil.json: invalid manifest: ") ||
            !strstr(err.message, cases[i].field))
            fail_msg("case %zu: %s: %s; want \"%s\"", i, ttsm_status_name(st), err.message,
                     cases[i].field);
        assert_null(ttsm_engine_find("evil"));
        unlink(f);
        rmdir(d);
        free(f);
        free(d);
    }
}

/* system_dirs names absolute folders that are read as they are: only
 * built-in manifests and folders a program trusts may use it. A folder
 * manifest naming /etc loaded /etc/passwd as a blob, and `resolve` called
 * it complete. A JSON file that does not parse is quoted by a few bytes. */
static void test_system_dirs_confined(void **state)
{
    (void)state;
    char *sys = tu_path(root, "system-data");
    mkdir(sys, 0755);
    free(tu_write_file(sys, "data.bin", "blob", 4));
    /* jansson quotes a first token of up to about 20 bytes: here 19 */
    static const char secret[] = "rootsecretrootsecre:x:0:0:root:/root:/bin/bash\n";
    free(tu_write_file(sys, "passwd", secret, sizeof secret - 1));
    static const char *const kinds[] = {"blob", "json"};
    for (int trusted = 0; trusted < 2; trusted++)
        for (size_t k = 0; k < 2; k++) {
            char name[32];
            snprintf(name, sizeof name, "sysdirs%d%zu", trusted, k);
            char *text = tu_fmt(
                "{\"schema\": 1, \"name\": \"%s\", \"runtime\": \"pytorch\", "
                "\"model_types\": [\"tts\"], \"capabilities\": {\"supports_voice_conversion\": "
                "false, \"has_fallback\": false, \"can_corrupt\": false, "
                "\"requires_special_init\": false, \"language_selects_model\": false, "
                "\"single_instance\": false, \"recovery\": \"none\"}, \"devices\": [\"cpu\"], "
                "\"folder\": \"%s\", \"default_model\": \"m\", \"models\": [{\"name\": \"m\", "
                "\"system_dirs\": [\"%s\"], \"components\": [{\"name\": \"w\", \"kind\": "
                "\"%s\", \"files\": [\"%s\"]}]}]}",
                name, name, trusted ? sys : "/etc", kinds[k], k ? "passwd" : "data.bin");
            char *d = tu_fmt("%s/engines-%s", root, name);
            mkdir(d, 0755);
            free(tu_write_file(d, "e.json", text, strlen(text)));
            ttsm_error err;
            ttsm_status st;
            if (!trusted) { /* a manifest given as text is held to the same rule */
                st = ttsm_engines_add_manifest(text, strlen(text), "given.json", &err);
                tu_assert_error(st, &err, TTSM_ERR_FORMAT, "given.json: invalid manifest",
                                "system_dirs: \"/etc\" is a system folder");
                assert_null(ttsm_engine_find(name));
            }
            st = trusted ? ttsm_engines_load_dir_trusted(d, &err) : ttsm_engines_load_dir(d, &err);
            if (!trusted) {
                tu_assert_error(st, &err, TTSM_ERR_FORMAT, "e.json: invalid manifest",
                                "models[0].system_dirs: \"/etc\" is a system folder",
                                "only built-in manifests");
                assert_null(ttsm_engine_find(name));
            } else {
                tu_assert_ok(st, &err);
                ttsm_manager_options o = ttsm_manager_options_default();
                o.models_dirs = nowhere;
                o.hf_cache = hub;
                ttsm_manager *mgr;
                tu_assert_ok(ttsm_manager_create(&o, &mgr, &err), &err);
                ttsm_load_config c = ttsm_load_config_default();
                c.engine = name;
                c.device = "cpu";
                ttsm_model *m = NULL;
                st = ttsm_load(mgr, &c, &m, &err);
                if (k == 0) {
                    tu_assert_ok(st, &err);
                } else {
                    /* not JSON: at most a short, sanitised excerpt of it */
                    tu_assert_error(st, &err, TTSM_ERR_FORMAT, "passwd: invalid JSON",
                                    "near 'rootsecretrootse...'");
                    assert_null(strstr(err.message, "rootsecretrootsecre"));
                    assert_null(strstr(err.message, "/bin/bash"));
                }
                ttsm_model_release(m);
                ttsm_manager_destroy(mgr);
            }
            free(d);
            free(text);
        }
    /* the built-in espeak-ng manifest still names its system folder */
    const ttsm_engine_info *e = ttsm_engine_find("espeak-ng");
    assert_non_null(e);
    assert_non_null(strstr(ttsm_engine_manifest(e), "system_dirs"));
    free(sys);
}

/* A model name in a config is looked up among the manifest's models: a
 * path there is an unknown model, never a folder. */
static void test_config_model_name(void **state)
{
    (void)state;
    write_engine("w.safetensors");
    static const char *const names[] = {"../../../etc", "/etc/passwd", "m/../../x", ".."};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        ttsm_load_config c = ttsm_load_config_default();
        c.engine = "pathsafe";
        c.model_name = names[i];
        c.device = "cpu";
        ttsm_error err;
        char *report = NULL;
        ttsm_status st = ttsm_resolve(&c, nowhere, hub, &report, &err);
        tu_assert_error(st, &err, TTSM_ERR_NOT_FOUND, names[i]);
        assert_null(report);
    }
}

/* Folders the caller names (model_path, models roots) are the caller's:
 * symlinks in them are followed, as in any file manager. A shard linked to
 * /etc/passwd is then refused as what it is - not a checkpoint - naming
 * the shard. */
static void test_caller_folders_follow_symlinks(void **state)
{
    (void)state;
    char *d = tu_path(root, "plain");
    mkdir(d, 0755);
    assert_int_equal(
        tu_system("set -e; cp '%s/tests/fixtures/safetensors/index/ok.safetensors.index.json' "
                  "'%s/tests/fixtures/safetensors/index/shard-a.safetensors' '%s/'; "
                  "cp '%s/tests/fixtures/safetensors/index/shard-b.safetensors' '%s/b.real'; "
                  "ln -s '%s/b.real' '%s/shard-b.safetensors'",
                  TTSM_SOURCE_DIR, TTSM_SOURCE_DIR, d, TTSM_SOURCE_DIR, outside, outside, d),
        0);
    ttsm_manager *mgr;
    ttsm_error err;
    tu_assert_ok(ttsm_manager_create(NULL, &mgr, &err), &err);
    ttsm_load_config c = mu_cfg("file", d, "cpu");
    ttsm_model *m;
    tu_assert_ok(ttsm_load(mgr, &c, &m, &err), &err);
    ttsm_model_release(m);
    ttsm_manager_destroy(mgr);
    char *shard = tu_path(d, "shard-b.safetensors");
    unlink(shard);
    assert_int_equal(symlink("/etc/passwd", shard), 0);
    ttsm_checkpoint *ck;
    char *idx = tu_path(d, "ok.safetensors.index.json");
    ttsm_status st = ttsm_checkpoint_open(idx, NULL, &ck, &err);
    tu_assert_error(st, &err, TTSM_ERR_FORMAT, "shard-b.safetensors");
    free(idx);
    free(shard);
    free(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hub_index_shard_leaves_repo),
        cmocka_unit_test(test_hub_ref_symlink),
        cmocka_unit_test(test_hub_repo_folder_leaves_hub),
        cmocka_unit_test(test_hub_revisions_and_repo_ids),
        cmocka_unit_test(test_manifest_path_fields),
        cmocka_unit_test(test_system_dirs_confined),
        cmocka_unit_test(test_config_model_name),
        cmocka_unit_test(test_caller_folders_follow_symlinks),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
