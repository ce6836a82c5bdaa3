/* test_espeak.c - the built-in espeak-ng engine: it is found through the
 * normal resolution, really speaks (audible, right rate and length), keeps
 * one instance per process, refuses unknown languages and voices with close
 * matches, and stays correct when two threads speak at once. */
#include <math.h>
#include <pthread.h>

#include "testutil.h"

static ttsm_manager *mgr;
static ttsm_model *model;

static int setup(void **state)
{
    (void)state;
    ttsm_error err;
    ttsm_manager_options o = ttsm_manager_options_default();
    o.models_dirs = "/nonexistent"; /* only the system data folder */
    if (ttsm_manager_create(&o, &mgr, &err) != TTSM_OK)
        return -1;
    ttsm_load_config c = ttsm_load_config_default();
    c.engine = "espeak-ng";
    if (ttsm_load(mgr, &c, &model, &err) != TTSM_OK) {
        fprintf(stderr, "%s\n", err.message);
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    ttsm_model_release(model);
    ttsm_manager_destroy(mgr);
    return 0;
}

static double rms(const ttsm_audio *a)
{
    double s = 0;
    for (size_t i = 0; i < a->n_samples; i++)
        s += (double)a->samples[i] * a->samples[i];
    return a->n_samples ? sqrt(s / (double)a->n_samples) : 0;
}

static void loads_from_the_system_folder(void **state)
{
    (void)state;
    assert_string_equal(ttsm_model_engine(model), "espeak-ng");
    assert_string_equal(ttsm_model_device(model), "cpu");
    int found = 0;
    for (size_t i = 0; i < ttsm_model_component_count(model); i++)
        if (strcmp(ttsm_model_component_name(model, i), "phontab") == 0) {
            assert_non_null(strstr(ttsm_model_component_path(model, i), "espeak-ng-data/phontab"));
            assert_string_equal(ttsm_model_component_kind(model, i), "blob");
            found = 1;
        }
    assert_true(found);
}

static void speaks(void **state)
{
    (void)state;
    ttsm_audio a;
    ttsm_error err;
    tu_assert_ok(ttsm_synthesize(model, "The quick brown fox jumps over the lazy dog.", NULL, &a,
                                 &err),
                 &err);
    assert_int_equal(a.sample_rate, 22050);
    double secs = (double)a.n_samples / a.sample_rate;
    assert_true(secs > 1.0 && secs < 10.0);
    assert_true(rms(&a) > 500.0); /* not silence */
    /* A faster rate gives shorter speech. */
    ttsm_synth_options o = ttsm_synth_options_default();
    o.rate = 400;
    ttsm_audio fast;
    tu_assert_ok(ttsm_synthesize(model, "The quick brown fox jumps over the lazy dog.", &o, &fast,
                                 &err),
                 &err);
    assert_true(fast.n_samples < a.n_samples * 3 / 4);
    ttsm_audio_free(&a);
    ttsm_audio_free(&fast);
    assert_null(a.samples);
}

static void languages_and_voices(void **state)
{
    (void)state;
    ttsm_synth_options o = ttsm_synth_options_default();
    ttsm_audio a;
    ttsm_error err;
    o.language = "German";
    tu_assert_ok(ttsm_synthesize(model, "Guten Morgen", &o, &a, &err), &err);
    assert_true(a.n_samples > 0);
    ttsm_audio_free(&a);
    o.language = "fr";
    tu_assert_ok(ttsm_synthesize(model, "Bonjour", &o, &a, &err), &err);
    ttsm_audio_free(&a);
    o.language = "qq";
    tu_assert_error(ttsm_synthesize(model, "x", &o, &a, &err), &err, TTSM_ERR_NOT_FOUND,
                    "espeak-ng: language not found: no espeak-ng voice for language \"qq\"",
                    "close:");
    o.language = NULL;
    o.voice = "Englsh";
    tu_assert_error(ttsm_synthesize(model, "x", &o, &a, &err), &err, TTSM_ERR_NOT_FOUND,
                    "voice not found", "\"Englsh\"", "English");
}

static void bad_input(void **state)
{
    (void)state;
    ttsm_synth_options o = ttsm_synth_options_default();
    ttsm_audio a;
    ttsm_error err;
    tu_assert_error(ttsm_synthesize(model, "", &o, &a, &err), &err, TTSM_ERR_INVALID_ARGUMENT,
                    "the text is empty");
    o.rate = 5;
    tu_assert_error(ttsm_synthesize(model, "x", &o, &a, &err), &err, TTSM_ERR_INVALID_ARGUMENT,
                    "rate 5 is outside 80..450");
    o.rate = 0;
    o.pitch = 101;
    tu_assert_error(ttsm_synthesize(model, "x", &o, &a, &err), &err, TTSM_ERR_INVALID_ARGUMENT,
                    "pitch 101");
    o.struct_size = 3;
    tu_assert_error(ttsm_synthesize(model, "x", &o, &a, &err), &err, TTSM_ERR_INVALID_ARGUMENT,
                    "struct_size");
    tu_assert_error(ttsm_synthesize(NULL, "x", NULL, &a, &err), &err, TTSM_ERR_INVALID_ARGUMENT,
                    "must be given");
}

static void one_entry_for_every_language(void **state)
{
    (void)state;
    ttsm_load_config c = ttsm_load_config_default();
    c.engine = "espeak";
    c.language = "de";
    ttsm_model *m2;
    ttsm_error err;
    tu_assert_ok(ttsm_load(mgr, &c, &m2, &err), &err);
    assert_ptr_equal(m2, model); /* the language picks a voice at run time */
    ttsm_model_release(m2);
    c.device = "cuda";
    tu_assert_error(ttsm_load(mgr, &c, &m2, &err), &err, TTSM_ERR_DEVICE, NULL);
}

/* espeak-ng's output varies by a few samples from call to call, so the
 * check is that each thread's speech keeps its own length and loudness
 * (another thread's voice or text leaking in changes both by far more). */
typedef struct job {
    const char *text, *lang;
    size_t n;
    double rms;
    ttsm_status st;
    int bad;
} job;

static void *speak(void *arg)
{
    job *j = arg;
    ttsm_synth_options o = ttsm_synth_options_default();
    o.language = j->lang;
    for (int k = 0; k < 5; k++) {
        ttsm_audio a;
        ttsm_error err;
        j->st = ttsm_synthesize(model, j->text, &o, &a, &err);
        if (j->st != TTSM_OK)
            return NULL;
        if (j->n == 0) {
            j->n = a.n_samples;
            j->rms = rms(&a);
        } else {
            double dn = fabs((double)a.n_samples - (double)j->n) / (double)j->n;
            double dr = fabs(rms(&a) - j->rms) / j->rms;
            if (dn > 0.02 || dr > 0.10)
                j->bad++;
        }
        ttsm_audio_free(&a);
    }
    return NULL;
}

static void two_threads_speak_correctly(void **state)
{
    (void)state;
    job solo[2] = {{"One two three four five six seven", "en", 0, 0, 0, 0},
                   {"Eins zwei drei vier", "de", 0, 0, 0, 0}};
    speak(&solo[0]);
    speak(&solo[1]);
    assert_int_equal(solo[0].bad + solo[1].bad, 0);
    /* The two texts differ enough that a mix-up would show. */
    assert_true(fabs((double)solo[0].n - (double)solo[1].n) / (double)solo[0].n > 0.1);
    job both[2] = {solo[0], solo[1]};
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&t[i], NULL, speak, &both[i]);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(both[i].st, TTSM_OK);
        assert_int_equal(both[i].bad, 0);
    }
}

static void weights_engines_point_to_python(void **state)
{
    (void)state;
    /* A model of an engine with no synthesis hook: the file engine. */
    char *dir = strdup(tu_mkdtemp());
    static const char st_file[] = "\x10\0\0\0\0\0\0\0{}              ";
    char *p = tu_write_file(dir, "empty.safetensors", st_file, sizeof st_file - 1);
    ttsm_load_config c = ttsm_load_config_default();
    c.model_path = p;
    c.device = "cpu";
    c.engine = "file";
    ttsm_model *m;
    ttsm_error err;
    tu_assert_ok(ttsm_load(mgr, &c, &m, &err), &err);
    ttsm_audio a;
    tu_assert_error(ttsm_synthesize(m, "hello", NULL, &a, &err), &err, TTSM_ERR_ENGINE,
                    "weights are for a PyTorch runtime");
    assert_non_null(strstr(err.hint, "state_dict()"));
    ttsm_model_release(m);
    tu_rmtree(dir);
    free(p);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(loads_from_the_system_folder),
        cmocka_unit_test(speaks),
        cmocka_unit_test(languages_and_voices),
        cmocka_unit_test(bad_input),
        cmocka_unit_test(one_entry_for_every_language),
        cmocka_unit_test(two_threads_speak_correctly),
        cmocka_unit_test(weights_engines_point_to_python),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
