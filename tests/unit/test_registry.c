/* test_registry.c - engine manifests: the built-in ones load and say what
 * ENGINES.md says; every validation rule rejects with the file and the
 * field; folders add and override engines; code engines keep their names. */
#include "base/alloc.h"
#include "manifest/manifest.h"
#include "engines/registry.h"
#include "testutil.h"

static void builtins_load(void **state)
{
    (void)state;
    ttsm_error err;
    tu_assert_ok(ttsm_engines_status(&err), &err);
    assert_int_equal(ttsm_engine_count(), 9); /* file + 8 manifests */
    const char *names[] = {"chatterbox", "chatterbox_official_23lang", "f5tts", "higgs_audio",
                           "rvc", "vibevoice", "index_tts", "espeak-ng"};
    for (size_t i = 0; i < 8; i++) {
        const ttsm_engine_info *e = ttsm_engine_find(names[i]);
        if (!e)
            fail_msg("engine %s missing", names[i]);
        assert_string_equal(ttsm_engine_name(e), names[i]);
        assert_non_null(ttsm_engine_manifest(e));
        assert_non_null(strstr(ttsm_engine_source(e), "built-in:"));
        assert_true(ttsm_engine_model_count(e) > 0);
        assert_non_null(ttsm_engine_default_model(e));
    }
    assert_string_equal(ttsm_engine_name(ttsm_engine_get(0)), "file");
    assert_null(ttsm_engine_get(9));
}

static void lookups(void **state)
{
    (void)state;
    assert_ptr_equal(ttsm_engine_find("ChatterBox"), ttsm_engine_find("chatterbox"));
    assert_ptr_equal(ttsm_engine_find("CHATTERBOX-TTS"), ttsm_engine_find("chatterbox"));
    assert_ptr_equal(ttsm_engine_find("F5-TTS"), ttsm_engine_find("f5tts"));
    assert_ptr_equal(ttsm_engine_find("IndexTTS-2"), ttsm_engine_find("index_tts"));
    assert_null(ttsm_engine_find("no-such-engine"));
    assert_null(ttsm_engine_find(NULL));
}

static void capabilities_match_engines_md(void **state)
{
    (void)state;
    const ttsm_engine_info *cb = ttsm_engine_find("chatterbox");
    assert_true(ttsm_engine_has(cb, TTSM_CAP_VOICE_CONVERSION));
    assert_true(ttsm_engine_has(cb, TTSM_CAP_FALLBACK));
    assert_false(ttsm_engine_has(cb, TTSM_CAP_CAN_CORRUPT));
    assert_true(ttsm_engine_has(cb, TTSM_CAP_LANGUAGE_SELECTS_MODEL));
    assert_true(ttsm_engine_supports_language(cb, "English"));
    assert_true(ttsm_engine_supports_language(cb, "ka"));
    assert_false(ttsm_engine_supports_language(cb, "zh"));
    assert_string_equal(ttsm_engine_default_model(cb), "English");
    assert_int_equal(ttsm_engine_model_count(cb), 12);

    const ttsm_engine_info *ml = ttsm_engine_find("chatterbox_official_23lang");
    assert_false(ttsm_engine_has(ml, TTSM_CAP_LANGUAGE_SELECTS_MODEL));
    assert_int_equal(ttsm_engine_language_count(ml), 23);

    const ttsm_engine_info *f5 = ttsm_engine_find("f5tts");
    assert_true(ttsm_engine_has(f5, TTSM_CAP_LANGUAGE_SELECTS_MODEL));
    assert_false(ttsm_engine_has(f5, TTSM_CAP_VOICE_CONVERSION));

    const ttsm_engine_info *hg = ttsm_engine_find("higgs_audio");
    assert_true(ttsm_engine_has(hg, TTSM_CAP_CAN_CORRUPT));
    assert_true(ttsm_engine_has(hg, TTSM_CAP_SPECIAL_INIT));
    assert_string_equal(ttsm_engine_recovery(hg), "invalidate");

    const ttsm_engine_info *rvc = ttsm_engine_find("rvc");
    assert_int_equal(ttsm_engine_language_count(rvc), 0);
    assert_int_equal(ttsm_engine_model_type_count(rvc), 6);
    assert_string_equal(ttsm_engine_model_type(rvc, 1), "hubert");

    const ttsm_engine_info *es = ttsm_engine_find("espeak-ng");
    assert_true(ttsm_engine_has(es, TTSM_CAP_SINGLE_INSTANCE));
    assert_string_equal(ttsm_engine_devices(es), "cpu");
    assert_string_equal(ttsm_engine_runtime(es), "native");
    assert_string_equal(ttsm_engine_runtime(cb), "pytorch");

    const ttsm_engine_info *file = ttsm_engine_find("file");
    assert_null(ttsm_engine_manifest(file));
    assert_string_equal(ttsm_engine_source(file), "built-in");
}

/* A minimal valid manifest; each bad case replaces one piece of it. */
#define GOOD_HEAD                                                                              \
    "{\"schema\": 1, \"name\": \"tiny\", \"runtime\": \"pytorch\", \"model_types\": [\"tts\"],"   \
    "\"capabilities\": {\"supports_voice_conversion\": false, \"has_fallback\": false,"          \
    "\"can_corrupt\": false, \"requires_special_init\": false, \"language_selects_model\": false," \
    "\"single_instance\": false, \"recovery\": \"none\"}, \"devices\": [\"cpu\"],"                \
    "\"folder\": \"tiny\", \"default_model\": \"m\","
#define GOOD_MODELS                                                                            \
    "\"models\": [{\"name\": \"m\", \"components\": [{\"name\": \"w\", \"kind\": \"tensors\","     \
    "\"files\": [\"w.safetensors\"]}]}]}"

static ttsm_status parse(const char *text, ttsm_error *err)
{
    ttsm__manifest *m = NULL;
    ttsm_status st = ttsm__manifest_parse(text, strlen(text), "engines/tiny.json", &m, err);
    ttsm__manifest_free(m);
    return st;
}

static void minimal_manifest_is_valid(void **state)
{
    (void)state;
    ttsm_error err;
    tu_assert_ok(parse(GOOD_HEAD GOOD_MODELS, &err), &err);
}

static void every_rule_names_file_and_field(void **state)
{
    (void)state;
    static const struct {
        const char *text, *want;
    } cases[] = {
        {"{", "not valid JSON"},
        {"[1]", "a manifest is a JSON object"},
        {"{\"schema\": 1, \"schema\": 1}", "not valid JSON"}, /* duplicate key */
        {GOOD_HEAD "\"colour\": 1," GOOD_MODELS, "colour: unknown field"},
        {"{\"schema\": 2}", "schema: must be 1"},
        {GOOD_HEAD "\"aliases\": [\"\"]," GOOD_MODELS, "aliases[0]: must be a non-empty string"},
        {GOOD_HEAD "\"languages\": [\"Klingon\"]," GOOD_MODELS, "languages[0]: \"Klingon\" is not a known language"},
        {GOOD_HEAD "\"default_device\": \"tpu\"," GOOD_MODELS, "default_device: \"tpu\" is not auto, cpu or cuda"},
        {GOOD_HEAD "\"legacy_folders\": [\"../up\"]," GOOD_MODELS, "legacy_folders[0]: \"../up\" must be a relative path"},
        {GOOD_HEAD "\"language_fallback\": \"nope\"," GOOD_MODELS, "language_fallback \"nope\" is not a model"},
        {GOOD_HEAD "\"identity_params\": [\"x\"]," GOOD_MODELS, "identity_params: \"x\" is not declared in params"},
        {GOOD_HEAD "\"params\": {\"x\": {\"default\": \"a\", \"values\": [\"b\"]}}," GOOD_MODELS, "params.x: default \"a\" is not one of its values"},
        {GOOD_HEAD "\"sample_rate\": -1," GOOD_MODELS, "sample_rate: must be a positive integer"},
        {GOOD_HEAD "\"models\": []}", "models: must be a non-empty array"},
        {GOOD_HEAD "\"models\": [{\"name\": \"m\", \"components\": [{\"name\": \"w\", \"kind\": \"weights\", \"files\": [\"w\"]}]}]}", "kind must be \"tensors\", \"json\" or \"blob\""},
        {GOOD_HEAD "\"models\": [{\"name\": \"m\", \"components\": [{\"name\": \"w\", \"kind\": \"tensors\"}]}]}", "needs exactly one of files, borrow or shared"},
        {GOOD_HEAD "\"models\": [{\"name\": \"m\", \"components\": [{\"name\": \"w\", \"kind\": \"tensors\", \"files\": [\"../../etc/passwd\"]}]}]}", "files[0]: \"../../etc/passwd\" must be a relative path"},
        {GOOD_HEAD "\"models\": [{\"name\": \"m\", \"components\": [{\"name\": \"w\", \"kind\": \"tensors\", \"files\": [\"/etc/passwd\"]}]}]}", "must be a relative path"},
        {GOOD_HEAD "\"models\": [{\"name\": \"m\", \"components\": [{\"name\": \"w\", \"kind\": \"tensors\", \"files\": [\"a*b*.pt\"]}]}]}", "at most one '*'"},
        {GOOD_HEAD "\"models\": [{\"name\": \"m\", \"components\": [{\"name\": \"w\", \"kind\": \"tensors\", \"files\": [\"w\"], \"when\": {\"v\": \"1\"}}]}]}", "when names \"v\", which is not a declared param"},
        {GOOD_HEAD "\"models\": [{\"name\": \"m\", \"components\": [{\"name\": \"w\", \"kind\": \"tensors\", \"files\": [\"w\"]}, {\"name\": \"w\", \"kind\": \"json\", \"files\": [\"w.json\"]}]}]}", "component \"w\" appears twice"},
        {GOOD_HEAD "\"models\": [{\"name\": \"m\", \"components\": [{\"name\": \"w\", \"borrow\": \"other\"}]}]}", "borrows from \"other\", which is not another model"},
        {GOOD_HEAD "\"models\": [{\"name\": \"m\", \"components\": [{\"name\": \"w\", \"shared\": \"voc\"}]}]}", "shared model \"voc\", which is not in \"shared\""},
        {GOOD_HEAD "\"models\": [{\"name\": \"m\", \"components\": \"std\"}]}", "no component set \"std\""},
        {GOOD_HEAD "\"models\": [{\"name\": \"m\", \"types\": [\"vc\"], \"components\": [{\"name\": \"w\", \"kind\": \"blob\", \"files\": [\"w\"]}]}]}", "type \"vc\" is not one of the engine's model_types"},
        {GOOD_HEAD "\"models\": [{\"name\": \"m\", \"repos\": [{\"id\": \"no-slash\"}], \"components\": [{\"name\": \"w\", \"kind\": \"blob\", \"files\": [\"w\"]}]}]}", "repos[0]: id \"no-slash\" is not \"org/name\""},
        {GOOD_HEAD "\"models\": [{\"name\": \"m\", \"variant_of\": \"m\", \"components\": [{\"name\": \"w\", \"kind\": \"blob\", \"files\": [\"w\"]}]}]}", "variant_of \"m\" is not another model"},
        {GOOD_HEAD "\"models\": [{\"name\": \"m\", \"components\": [{\"name\": \"w\", \"kind\": \"blob\", \"files\": [\"w\"]}]}, {\"name\": \"m\", \"components\": [{\"name\": \"w\", \"kind\": \"blob\", \"files\": [\"w\"]}]}]}", "model name \"m\" repeats models[0]"},
        {"{\"schema\": 1, \"name\": \"Tiny Engine\"}", "name: \"Tiny Engine\" may hold only"},
        /* What a pull fetches must be exact (docs/engines.md, "Repo files"). */
        {GOOD_HEAD "\"models\": [{\"name\": \"m\", \"repos\": [{\"id\": \"a/b\"}], \"components\": [{\"name\": \"w\", \"kind\": \"tensors\", \"files\": [\"w.pt\"], \"repo_files\": {\"c/d\": [\"x.pt\"]}}]}]}", "models[0].components[0]: component \"w\": repo_files names \"c/d\", which is not a repo it is searched in"},
        {GOOD_HEAD "\"models\": [{\"name\": \"m\", \"repos\": [{\"id\": \"a/b\"}], \"components\": [{\"name\": \"w\", \"kind\": \"tensors\", \"files\": [\"w.pt\"], \"repo_files\": {\"nope\": [\"x.pt\"]}}]}]}", "repo_files.nope: \"nope\" is not a repo id"},
        {GOOD_HEAD "\"models\": [{\"name\": \"m\", \"repos\": [{\"id\": \"a/b\"}], \"components\": [{\"name\": \"w\", \"kind\": \"tensors\", \"files\": [\"w.pt\"], \"repo_files\": {\"a/b\": [\"../x.pt\"]}}]}]}", "repo_files.a/b[0]: \"../x.pt\" must be a relative path"},
        {GOOD_HEAD "\"models\": [{\"name\": \"m\", \"repos\": [{\"id\": \"a/b\"}], \"components\": [{\"name\": \"w\", \"kind\": \"tensors\", \"files\": [\"w.pt\"], \"repo_files\": []}]}]}", "repo_files: must be an object"},
        {GOOD_HEAD "\"models\": [{\"name\": \"m\", \"repos\": [{\"id\": \"a/b\"}], \"components\": [{\"name\": \"w\", \"kind\": \"tensors\", \"files\": [\"model_*.pt\"]}]}]}", "component \"w\": \"model_*.pt\" in repo a/b is a pattern; a pull would fetch whatever matches"},
        {GOOD_HEAD "\"models\": [{\"name\": \"m\", \"repos\": [{\"id\": \"a/b\"}], \"components\": [{\"name\": \"w\", \"kind\": \"tensors\", \"files\": [\"w.pt\"], \"repo_files\": {\"a/b\": [\"m_*.pt\"]}}]}]}", "\"m_*.pt\" in repo a/b is a pattern"},
        {GOOD_HEAD "\"models\": [{\"name\": \"m\", \"components\": [{\"name\": \"w\", \"kind\": \"tensors\", \"files\": [\"w.pt\"], \"repo\": {\"id\": \"a/b\"}, \"deliberate_pattern\": true}]}]}", "deliberate_pattern is set, but no repo file name holds a '*'"},
        {GOOD_HEAD "\"models\": [{\"name\": \"m\", \"components\": [{\"name\": \"w\", \"borrow\": \"o\", \"repo_files\": {\"a/b\": [\"x\"]}}]}, {\"name\": \"o\", \"components\": [{\"name\": \"w\", \"kind\": \"blob\", \"files\": [\"w\"]}]}]}", "takes no kind, subfolder, repo, repo_files or deliberate_pattern"},
        {GOOD_HEAD "\"models\": [{\"name\": \"m\", \"components\": [{\"name\": \"w\", \"kind\": \"json\", \"files\": [\"w.json\"], \"borrow\": \"o\"}]}, {\"name\": \"o\", \"components\": [{\"name\": \"w\", \"kind\": \"blob\", \"files\": [\"w\"]}]}]}", "component \"w\": its files and the ones it borrows from \"o\" are of different kinds"},
        {GOOD_HEAD "\"models\": [{\"name\": \"m\", \"components\": [{\"name\": \"w\", \"shared\": \"v\", \"borrow\": \"o\"}]}]}", "needs exactly one of files, borrow or shared"},
        {GOOD_HEAD "\"component_sets\": {\"s\": [\"t\"], \"t\": [{\"name\": \"w\", \"kind\": \"blob\", \"files\": [\"w\"]}]}, \"models\": [{\"name\": \"m\", \"components\": [\"s\"]}]}", "models[0].components[0]: component set \"s\" names another set: sets do not nest"},
        {GOOD_HEAD "\"models\": [{\"name\": \"m\", \"components\": [{\"name\": \"w\", \"kind\": \"blob\", \"files\": [\"w\"]}, \"extra\"]}]}", "models[0].components[1]: no component set \"extra\""},
        {GOOD_HEAD "\"component_sets\": {\"s\": [{\"name\": \"w\", \"kind\": \"blob\", \"files\": [\"../w\"]}]}, \"models\": [{\"name\": \"m\", \"components\": [{\"name\": \"x\", \"kind\": \"blob\", \"files\": [\"x\"]}, \"s\"]}]}", "models[0].components(set s)[0].files[0]"},
        {GOOD_HEAD "\"models\": [{\"name\": \"m\", \"legacy_folder\": \"../up\", \"components\": [{\"name\": \"w\", \"kind\": \"blob\", \"files\": [\"w\"]}]}]}", "models[0].legacy_folder: \"../up\" must be a relative path"},
        {GOOD_HEAD "\"models\": [{\"name\": \"m\", \"repos\": [{\"id\": \"a/b\", \"revision\": \"10840182ca4ad5d9d9113b60b9bb3c1ef1ba3f84\"}], \"components\": [{\"name\": \"w\", \"kind\": \"blob\", \"files\": [\"w\"], \"repo\": {\"id\": \"a/b\"}}]}]}", "repo \"a/b\" is named twice with a different revision (10840182ca4ad5d9d9113b60b9bb3c1ef1ba3f84, main)"},
        {GOOD_HEAD "\"models\": [{\"name\": \"m\", \"repos\": [{\"id\": \"a/b\"}, {\"id\": \"a/b\", \"type\": \"dataset\"}], \"components\": [{\"name\": \"w\", \"kind\": \"blob\", \"files\": [\"w\"]}]}]}", "repo \"a/b\" is named twice with a different type (model, dataset)"},
        /* A fallback claim needs a fallback; a chain needs the claim. */
        {GOOD_HEAD "\"models\": [{\"name\": \"m\", \"components\": [{\"name\": \"w\", \"kind\": \"blob\", \"files\": [\"w\"]}]}, {\"name\": \"v\", \"variant_of\": \"m\", \"components\": [{\"name\": \"w\", \"kind\": \"blob\", \"files\": [\"w\"]}]}]}", "capabilities.has_fallback: false, so its variant_of would never be tried"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ttsm_error err;
        ttsm_status st = parse(cases[i].text, &err);
        if (st != TTSM_ERR_FORMAT || !strstr(err.message, "engines/tiny.json: invalid manifest: ") ||
            !strstr(err.message, cases[i].want))
            fail_msg("case %zu: got %s: %s; want \"%s\"", i, ttsm_status_name(st), err.message,
                     cases[i].want);
    }
    /* Capability rules. */
    const char *caps_missing =
        "{\"schema\": 1, \"name\": \"tiny\", \"runtime\": \"pytorch\", \"model_types\": [\"tts\"],"
        "\"capabilities\": {\"has_fallback\": false}, \"devices\": [\"cpu\"], \"folder\": \"t\","
        "\"default_model\": \"m\", " GOOD_MODELS;
    ttsm_error err;
    tu_assert_error(parse(caps_missing, &err), &err, TTSM_ERR_FORMAT,
                    "capabilities.supports_voice_conversion: required");
    const char *corrupt_without_recovery =
        "{\"schema\": 1, \"name\": \"tiny\", \"runtime\": \"pytorch\", \"model_types\": [\"tts\"],"
        "\"capabilities\": {\"supports_voice_conversion\": false, \"has_fallback\": false,"
        "\"can_corrupt\": true, \"requires_special_init\": false, \"language_selects_model\": false,"
        "\"single_instance\": false, \"recovery\": \"none\"}, \"devices\": [\"cpu\"],"
        "\"folder\": \"t\", \"default_model\": \"m\", " GOOD_MODELS;
    tu_assert_error(parse(corrupt_without_recovery, &err), &err, TTSM_ERR_FORMAT,
                    "can corrupt needs recovery \"invalidate\"");
    /* F5-TTS claimed a fallback and declared none. */
    char claim[4096];
    snprintf(claim, sizeof claim, "%s", GOOD_HEAD GOOD_MODELS);
    memcpy(strstr(claim, "\"has_fallback\": false,"), "\"has_fallback\": true, ", 22);
    tu_assert_error(parse(claim, &err), &err, TTSM_ERR_FORMAT,
                    "engines/tiny.json: invalid manifest: capabilities.has_fallback: true, but the "
                    "manifest declares no fallback");
    snprintf(claim, sizeof claim, "%s", GOOD_HEAD "\"language_fallback\": \"m\"," GOOD_MODELS);
    tu_assert_error(parse(claim, &err), &err, TTSM_ERR_FORMAT,
                    "capabilities.has_fallback: false, so its language_fallback would never be tried");
    const char *bad_device = GOOD_HEAD GOOD_MODELS;
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", bad_device);
    char *d = strstr(buf, "[\"cpu\"]");
    memcpy(d, "[\"npu\"]", 7);
    tu_assert_error(parse(buf, &err), &err, TTSM_ERR_FORMAT, "devices[0]: \"npu\" is not a device kind");
}

/* The schema's ways to say where files are, parsed as docs/engines.md
 * says: set includes, per-repo file names, own files before a borrowed
 * one, a legacy folder name, a deliberate pattern, a local-only pattern. */
static void repo_files_includes_and_borrow_fallback(void **state)
{
    (void)state;
    const char *text =
        GOOD_HEAD
        "\"component_sets\": {\"pair\": [{\"name\": \"a\", \"kind\": \"json\", \"files\": [\"a.json\"]},"
        "  {\"name\": \"b\", \"kind\": \"blob\", \"files\": [\"b\"]}]},"
        "\"models\": [{\"name\": \"m\", \"legacy_folder\": \"models--o--m\","
        "  \"repos\": [{\"id\": \"o/m\"}, {\"id\": \"o/fallback\"}],"
        "  \"components\": [{\"name\": \"w\", \"kind\": \"tensors\", \"files\": [\"w.safetensors\", \"w.bin\"],"
        "    \"repo_files\": {\"o/m\": [\"sub/w.safetensors\"], \"o/fallback\": [\"pytorch_model.bin\"]}},"
        "   \"pair\","
        "   {\"name\": \"tok\", \"kind\": \"json\", \"files\": [\"tok.json\"], \"borrow\": \"o\", \"optional\": true},"
        "   {\"name\": \"ckpt\", \"kind\": \"tensors\", \"files\": [\"step_*.pt\"], \"deliberate_pattern\": true}]},"
        " {\"name\": \"o\", \"components\": [{\"name\": \"tok\", \"kind\": \"json\", \"files\": [\"tok.json\"]},"
        "   {\"name\": \"local\", \"kind\": \"tensors\", \"files\": [\"run_*.pt\"]}]}]}";
    ttsm__manifest *m = NULL;
    ttsm_error err;
    tu_assert_ok(ttsm__manifest_parse(text, strlen(text), "engines/tiny.json", &m, &err), &err);
    const ttsm__model_spec *ms = ttsm__manifest_model(m, "m");
    assert_int_equal(ms->n_comps, 5); /* w, the set's a and b, tok, ckpt */
    assert_string_equal(ms->comps[1].name, "a");
    assert_string_equal(ms->comps[2].name, "b");
    assert_string_equal(ms->legacy_folder, "models--o--m");
    size_t n;
    char *const *f = ttsm__comp_repo_files(&ms->comps[0], "o/fallback", &n);
    assert_int_equal(n, 1);
    assert_string_equal(f[0], "pytorch_model.bin");
    f = ttsm__comp_repo_files(&ms->comps[0], "o/m", &n);
    assert_string_equal(f[0], "sub/w.safetensors");
    f = ttsm__comp_repo_files(&ms->comps[0], "someone/fork", &n); /* a repo the caller names */
    assert_int_equal(n, 2);
    assert_string_equal(f[1], "w.bin");
    assert_string_equal(ms->comps[3].borrow, "o");
    assert_non_null(ms->comps[3].files);
    assert_true(ms->comps[4].deliberate_pattern);
    ttsm__manifest_free(m);
}

static void allocation_failures_while_parsing(void **state)
{
    (void)state;
    /* The first built-in manifest, and RVC's (set includes, repo_files). */
    const ttsm__builtin_manifest *b = &ttsm__builtin_manifests[0];
    for (size_t i = 0; i < ttsm__n_builtin_manifests; i++)
        if (strstr(ttsm__builtin_manifests[i].file, "rvc.json"))
            b = &ttsm__builtin_manifests[i];
    assert_non_null(strstr(b->file, "rvc.json"));
    int failures = 0;
    for (long n = 1; n < 20000; n++) {
        ttsm__manifest *m = NULL;
        ttsm_error err;
        ttsm__alloc_fail_after(n);
        ttsm_status st = ttsm__manifest_parse(b->text, b->len, b->file, &m, &err);
        ttsm__alloc_fail_after(0);
        if (st == TTSM_OK) {
            ttsm__manifest_free(m);
            break;
        }
        assert_int_equal(st, TTSM_ERR_OUT_OF_MEMORY);
        failures++;
    }
    assert_true(failures > 20);
}

static const char *eighth =
    "{\"schema\": 1, \"name\": \"kokoro\", \"aliases\": [\"Kokoro-82M\"], \"runtime\": \"pytorch\","
    "\"model_types\": [\"tts\"], \"capabilities\": {\"supports_voice_conversion\": false,"
    "\"has_fallback\": false, \"can_corrupt\": false, \"requires_special_init\": false,"
    "\"language_selects_model\": false, \"single_instance\": false, \"recovery\": \"none\"},"
    "\"devices\": [\"cpu\", \"cuda\"], \"languages\": [\"en\"], \"folder\": \"kokoro\","
    "\"default_model\": \"v1.0\", \"models\": [{\"name\": \"v1.0\", \"repos\": [{\"id\": "
    "\"hexgrad/Kokoro-82M\"}], \"components\": [{\"name\": \"model\", \"kind\": \"tensors\","
    "\"files\": [\"kokoro-v1_0.safetensors\", \"kokoro-v1_0.pth\"]}, {\"name\": \"config\","
    "\"kind\": \"json\", \"files\": [\"config.json\"]}]}]}";

static void an_eighth_engine_from_a_folder(void **state)
{
    (void)state;
    char *dir = strdup(tu_mkdtemp());
    free(tu_write_file(dir, "kokoro.json", eighth, strlen(eighth)));
    free(tu_write_file(dir, "README.txt", "not a manifest", 14));
    ttsm_error err;
    size_t before = ttsm_engine_count();
    tu_assert_ok(ttsm_engines_load_dir(dir, &err), &err);
    assert_int_equal(ttsm_engine_count(), before + 1);
    const ttsm_engine_info *e = ttsm_engine_find("kokoro-82m");
    assert_non_null(e);
    assert_string_equal(ttsm_engine_name(e), "kokoro");
    assert_non_null(strstr(ttsm_engine_source(e), "kokoro.json"));
    /* Loading it needs no code: a store with its files loads through the
     * manifest factory. */
    char *store = strdup(tu_mkdtemp());
    char *p1 = tu_path(store, "TTS"), *p2 = tu_path(p1, "kokoro"), *p3 = tu_path(p2, "v1.0");
    assert_int_equal(mkdir(p1, 0755), 0);
    assert_int_equal(mkdir(p2, 0755), 0);
    assert_int_equal(mkdir(p3, 0755), 0);
    static const char st_file[] = "\x40\0\0\0\0\0\0\0"
                                  "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}"
                                  "          "
                                  "\0\0\x80\x3f\0\0\0\x40";
    free(tu_write_file(p3, "kokoro-v1_0.safetensors", st_file, sizeof st_file - 1));
    free(tu_write_file(p3, "config.json", "{\"n_mels\": 80}", 14));
    ttsm_manager_options o = ttsm_manager_options_default();
    o.models_dirs = store;
    ttsm_manager *mgr;
    tu_assert_ok(ttsm_manager_create(&o, &mgr, &err), &err);
    ttsm_load_config c = ttsm_load_config_default();
    c.engine = "Kokoro-82M";
    c.device = "cpu";
    ttsm_model *m;
    tu_assert_ok(ttsm_load(mgr, &c, &m, &err), &err);
    assert_string_equal(ttsm_model_engine(m), "kokoro");
    assert_string_equal(ttsm_model_name(m), "v1.0");
    assert_int_equal(ttsm_model_component_count(m), 2);
    const ttsm_model_tensor *t = ttsm_model_find_tensor(m, 0, "w");
    assert_non_null(t);
    assert_true(((const float *)t->data)[1] == 2.0f);
    assert_string_equal(ttsm_model_component_kind(m, 1), "json");
    ttsm_model_release(m);
    ttsm_manager_destroy(mgr);
    tu_rmtree(store);
    tu_rmtree(dir);
    free(p1), free(p2), free(p3), free(store), free(dir);
}

static void a_bad_folder_registers_nothing(void **state)
{
    (void)state;
    char *dir = strdup(tu_mkdtemp());
    const char *good = "{\"schema\": 1, \"name\": \"aaa_good\", \"runtime\": \"native\","
                       "\"model_types\": [\"tts\"], \"capabilities\": {\"supports_voice_conversion\": false,"
                       "\"has_fallback\": false, \"can_corrupt\": false, \"requires_special_init\": false,"
                       "\"language_selects_model\": false, \"single_instance\": false, \"recovery\": \"none\"},"
                       "\"devices\": [\"cpu\"], \"folder\": \"g\", \"default_model\": \"m\", " GOOD_MODELS;
    free(tu_write_file(dir, "aaa_good.json", good, strlen(good)));
    free(tu_write_file(dir, "zzz_bad.json", "{\"schema\": 1}", 13));
    size_t before = ttsm_engine_count();
    ttsm_error err;
    tu_assert_error(ttsm_engines_load_dir(dir, &err), &err, TTSM_ERR_FORMAT, "zzz_bad.json",
                    "invalid manifest", "name: required");
    assert_int_equal(ttsm_engine_count(), before);
    assert_null(ttsm_engine_find("aaa_good"));
    tu_assert_error(ttsm_engines_load_dir("/nonexistent/engines", &err), &err, TTSM_ERR_NOT_FOUND,
                    "/nonexistent/engines");
    tu_assert_error(ttsm_engines_load_dir(NULL, &err), &err, TTSM_ERR_INVALID_ARGUMENT, "dir");
    tu_rmtree(dir);
    free(dir);
}

static ttsm_status code_factory(const ttsm_load_config *cfg, const ttsm_factory_ctx *ctx,
                                ttsm_model **out, ttsm_error *err)
{
    (void)cfg;
    return ttsm_model_create(ctx, out, err);
}

static void overrides_and_code_engines(void **state)
{
    (void)state;
    ttsm_error err;
    tu_assert_ok(ttsm_register_engine("coded", code_factory, NULL, &err), &err);
    tu_assert_error(ttsm_register_engine("ChatterBox", code_factory, NULL, &err), &err,
                    TTSM_ERR_INVALID_ARGUMENT, "already registered");
    char *dir = strdup(tu_mkdtemp());
    /* A manifest may not take a code engine's name. */
    char text[4096];
    snprintf(text, sizeof text, "%s", eighth);
    memcpy(strstr(text, "kokoro\""), "coded\" ", 7);
    free(tu_write_file(dir, "coded.json", text, strlen(text)));
    tu_assert_error(ttsm_engines_load_dir(dir, &err), &err, TTSM_ERR_INVALID_ARGUMENT,
                    "\"coded\" is an engine registered in code");
    tu_rmtree(dir);
    /* A folder manifest named like a built-in one replaces it. */
    dir = (free(dir), strdup(tu_mkdtemp()));
    const char *f5 = "{\"schema\": 1, \"name\": \"f5tts\", \"runtime\": \"pytorch\","
                     "\"model_types\": [\"tts\"], \"capabilities\": {\"supports_voice_conversion\": false,"
                     "\"has_fallback\": false, \"can_corrupt\": false, \"requires_special_init\": false,"
                     "\"language_selects_model\": false, \"single_instance\": false, \"recovery\": \"none\"},"
                     "\"devices\": [\"cpu\"], \"folder\": \"f5\", \"default_model\": \"m\", " GOOD_MODELS;
    free(tu_write_file(dir, "f5tts.json", f5, strlen(f5)));
    const ttsm_engine_info *before = ttsm_engine_find("f5tts");
    tu_assert_ok(ttsm_engines_load_dir(dir, &err), &err);
    const ttsm_engine_info *after = ttsm_engine_find("f5tts");
    assert_ptr_equal(before, after); /* the same engine handle, a new manifest */
    assert_string_equal(ttsm_engine_default_model(after), "m");
    assert_non_null(strstr(ttsm_engine_source(after), dir));
    tu_rmtree(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(builtins_load),
        cmocka_unit_test(lookups),
        cmocka_unit_test(capabilities_match_engines_md),
        cmocka_unit_test(minimal_manifest_is_valid),
        cmocka_unit_test(every_rule_names_file_and_field),
        cmocka_unit_test(repo_files_includes_and_borrow_fallback),
        cmocka_unit_test(allocation_failures_while_parsing),
        cmocka_unit_test(an_eighth_engine_from_a_folder),
        cmocka_unit_test(a_bad_folder_registers_nothing),
        cmocka_unit_test(overrides_and_code_engines),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
