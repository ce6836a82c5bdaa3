/* test_roots.c - the models roots searched, in order (src/store/roots.c):
 * models_dirs first, then each ComfyUI folder's extra_model_paths.yaml TTS
 * folders (is_default first) and models/; base_path and relative paths as
 * ComfyUI takes them; a missing root or a broken YAML file is a warning,
 * never an error, and replaces nothing. */
#include <unistd.h>

#include "store/roots.h"
#include "testutil.h"

static void mkdirs(const char *base, const char *rel)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s/%s'", base, rel);
    assert_int_equal(system(cmd), 0);
}

static char *joined(const char *a, const char *b)
{
    char *p = tu_path(a, b);
    return p;
}

static void collect(const char *models, const char *comfy, ttsm__rootset *s)
{
    ttsm_error err;
    tu_assert_ok(ttsm__roots_collect(models, comfy, s, &err), &err);
}

static int has_warning(const ttsm__rootset *s, const char *needle)
{
    for (size_t i = 0; i < s->n_warnings; i++)
        if (strstr(s->warnings[i], needle))
            return 1;
    return 0;
}

/* Two sections, a relative base_path, a path relative to the file, an
 * absolute one, a multi-line list, and a folder that does not exist. */
static void yaml_with_two_roots_relative_paths_and_a_missing_one(void **state)
{
    (void)state;
    char *dir = strdup(tu_mkdtemp());
    char *comfy = joined(dir, "ComfyUI"), *local = joined(dir, "local");
    mkdirs(dir, "ComfyUI/models/TTS");
    mkdirs(dir, "extra/voices");
    mkdirs(dir, "ComfyUI/more_tts");
    mkdirs(dir, "local/TTS");
    char yaml[2048];
    snprintf(yaml, sizeof yaml,
             "# ComfyUI extra paths\n"
             "comfyui:\n"
             "    base_path: ../extra\n"
             "    checkpoints: models/checkpoints/\n"
             "    TTS: voices\n"
             "other:\n"
             "    tts: |\n"
             "        more_tts\n"
             "        %s/gone\n"
             "empty_section:\n",
             dir);
    free(tu_write_file(comfy, "extra_model_paths.yaml", yaml, strlen(yaml)));
    ttsm__rootset s;
    collect(local, comfy, &s);
    /* models_dirs first, then the YAML folders after models/, in file order. */
    assert_int_equal(s.n, 5);
    assert_string_equal(s.roots[0].path, local);
    assert_int_equal(s.roots[0].kind, TTSM__ROOT_MODELS);
    assert_string_equal(s.roots[0].origin, "models_dirs");
    char *want = joined(comfy, "models");
    assert_string_equal(s.roots[1].path, want);
    assert_int_equal(s.roots[1].kind, TTSM__ROOT_MODELS);
    free(want);
    char *real = realpath(dir, NULL);
    char buf[4096];
    snprintf(buf, sizeof buf, "%s/extra/voices", real);
    assert_string_equal(s.roots[2].path, buf); /* base_path ../extra, from the file's folder */
    assert_int_equal(s.roots[2].kind, TTSM__ROOT_TTS);
    assert_true(s.roots[2].exists);
    assert_non_null(strstr(s.roots[2].origin, "extra_model_paths.yaml: comfyui.TTS"));
    snprintf(buf, sizeof buf, "%s/ComfyUI/more_tts", real);
    assert_string_equal(s.roots[3].path, buf); /* no base_path: from the file's folder */
    assert_non_null(strstr(s.roots[3].origin, "other.tts"));
    snprintf(buf, sizeof buf, "%s/gone", dir);
    assert_string_equal(s.roots[4].path, buf);
    assert_false(s.roots[4].exists);
    /* The missing one is a warning, and still listed (it may appear). */
    assert_true(has_warning(&s, "gone"));
    assert_true(has_warning(&s, "does not exist"));
    assert_int_equal(s.n_warnings, 1);
    ttsm__rootset_free(&s);
    free(real);

    /* is_default puts a section's folders before models/. */
    snprintf(yaml, sizeof yaml, "mine:\n  base_path: %s/extra\n  is_default: true\n"
                                "  TTS: voices\n", dir);
    free(tu_write_file(comfy, "extra_model_paths.yaml", yaml, strlen(yaml)));
    collect(NULL, comfy, &s);
    assert_int_equal(s.n, 2);
    assert_non_null(strstr(s.roots[0].path, "/extra/voices"));
    assert_non_null(strstr(s.roots[1].path, "/ComfyUI/models"));
    ttsm__rootset_free(&s);

    /* A broken file is a warning naming it, line and column; models/ stays. */
    const char *bad = "comfyui:\n  TTS: [unclosed\n";
    free(tu_write_file(comfy, "extra_model_paths.yaml", bad, strlen(bad)));
    collect(NULL, comfy, &s);
    assert_int_equal(s.n, 1);
    assert_true(has_warning(&s, "extra_model_paths.yaml: invalid YAML"));
    assert_true(has_warning(&s, "line 3"));
    assert_true(has_warning(&s, "not searched"));
    ttsm__rootset_free(&s);
    /* A TTS key that is not a string of folders. */
    const char *notstr = "comfyui:\n  TTS:\n    - a\n    - b\n";
    free(tu_write_file(comfy, "extra_model_paths.yaml", notstr, strlen(notstr)));
    collect(NULL, comfy, &s);
    assert_true(has_warning(&s, "comfyui.TTS at line 3 is not a string of folders"));
    ttsm__rootset_free(&s);
    /* The top level must be a mapping. */
    free(tu_write_file(comfy, "extra_model_paths.yaml", "- a\n", 4));
    collect(NULL, comfy, &s);
    assert_true(has_warning(&s, "the top level is not a mapping"));
    ttsm__rootset_free(&s);
    /* No YAML file at all: only models/, no warning. */
    char *y = joined(comfy, "extra_model_paths.yaml");
    unlink(y);
    free(y);
    collect(NULL, comfy, &s);
    assert_int_equal(s.n, 1);
    assert_int_equal(s.n_warnings, 0);
    ttsm__rootset_free(&s);
    /* A ComfyUI folder that does not exist: a warning, the others remain. */
    char two[8192];
    snprintf(two, sizeof two, "%s/nowhere:%s", dir, comfy);
    collect(local, two, &s);
    assert_int_equal(s.n, 2);
    assert_true(has_warning(&s, "ComfyUI folder"));
    ttsm__rootset_free(&s);
    tu_rmtree(dir);
    free(dir);
    free(comfy);
    free(local);
}

/* The environment variables stand in for the options; the same folder
 * twice is searched once. */
static void environment_and_duplicates(void **state)
{
    (void)state;
    char *dir = strdup(tu_mkdtemp());
    mkdirs(dir, "C/models");
    char *c = joined(dir, "C"), *models = joined(c, "models");
    setenv("TTSM_COMFYUI_PATH", c, 1);
    setenv("TTSM_MODELS_PATH", models, 1);
    ttsm__rootset s;
    collect(NULL, NULL, &s);
    assert_int_equal(s.n, 1);
    assert_string_equal(s.roots[0].origin, "TTSM_MODELS_PATH");
    ttsm__rootset_free(&s);
    /* The option replaces its variable. */
    collect(dir, NULL, &s);
    assert_int_equal(s.n, 2);
    assert_string_equal(s.roots[0].path, dir);
    assert_non_null(strstr(s.roots[1].origin, "ComfyUI "));
    assert_non_null(strstr(s.roots[1].origin, "(TTSM_COMFYUI_PATH)"));
    ttsm__rootset_free(&s);
    unsetenv("TTSM_COMFYUI_PATH");
    unsetenv("TTSM_MODELS_PATH");
    tu_rmtree(dir);
    free(dir);
    free(c);
    free(models);
}

/* ComfyUI's path rules: ~ and $VAR in base_path, "." and ".." folded,
 * absolute paths kept. */
static void path_rules(void **state)
{
    (void)state;
    setenv("TTSM_TEST_BASE", "/srv/comfy", 1);
    const char *y = "a:\n  base_path: $TTSM_TEST_BASE/./x/..\n  TTS: models//TTS/\n"
                    "b:\n  base_path: ${TTSM_TEST_BASE}\n  TTS: /abs/tts\n"
                    "c:\n  base_path: ~/comfy\n  tts: t\n"
                    "d:\n  TTS: ../../../up\n";
    ttsm__rootset first, rest;
    memset(&first, 0, sizeof first);
    memset(&rest, 0, sizeof rest);
    ttsm_error err;
    tu_assert_ok(ttsm__comfyui_yaml(y, strlen(y), "/y/dir", "test.yaml", &first, &rest, &err),
                 &err);
    assert_int_equal(first.n, 0);
    assert_int_equal(rest.n, 4);
    assert_string_equal(rest.roots[0].path, "/srv/comfy/models/TTS");
    assert_string_equal(rest.roots[1].path, "/abs/tts");
    char home[4096];
    snprintf(home, sizeof home, "%s/comfy/t", getenv("HOME"));
    assert_string_equal(rest.roots[2].path, home);
    assert_string_equal(rest.roots[3].path, "/up");
    ttsm__rootset_free(&rest);
    unsetenv("TTSM_TEST_BASE");
    /* Too large is refused before parsing. */
    tu_assert_error(ttsm__comfyui_yaml(y, TTSM__MAX_YAML_BYTES + 1, "/", "big.yaml", &first,
                                       &rest, &err),
                    &err, TTSM_ERR_FORMAT, "big.yaml: too large");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(yaml_with_two_roots_relative_paths_and_a_missing_one),
        cmocka_unit_test(environment_and_duplicates),
        cmocka_unit_test(path_rules),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
