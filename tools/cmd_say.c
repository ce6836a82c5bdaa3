/* cmd_say.c - `ttsm say TEXT`: loads a speaking engine (espeak-ng, built
 * in) through the manager and writes a WAV file. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

#define MAX_STDIN_TEXT (1u << 20)

static void put_u32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}

static void put_u16(unsigned char *p, uint16_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
}

/* RIFF/WAVE, PCM, 16-bit, mono, little-endian samples. */
static int write_wav(FILE *f, const ttsm_audio *a)
{
    unsigned char h[44];
    uint32_t data = (uint32_t)(a->n_samples * 2);
    memcpy(h, "RIFF", 4);
    put_u32(h + 4, 36 + data);
    memcpy(h + 8, "WAVEfmt ", 8);
    put_u32(h + 16, 16);
    put_u16(h + 20, 1);
    put_u16(h + 22, 1);
    put_u32(h + 24, a->sample_rate);
    put_u32(h + 28, a->sample_rate * 2);
    put_u16(h + 32, 2);
    put_u16(h + 34, 16);
    memcpy(h + 36, "data", 4);
    put_u32(h + 40, data);
    if (fwrite(h, 1, sizeof h, f) != sizeof h)
        return -1;
    for (size_t i = 0; i < a->n_samples; i++) {
        unsigned char s[2];
        put_u16(s, (uint16_t)a->samples[i]);
        if (fwrite(s, 1, 2, f) != 2)
            return -1;
    }
    return 0;
}

static char *read_stdin(void)
{
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    size_t got;
    while (buf && (got = fread(buf + n, 1, cap - n - 1, stdin)) > 0) {
        n += got;
        if (n + 1 == cap) {
            if (cap >= MAX_STDIN_TEXT) {
                free(buf);
                return NULL;
            }
            char *b = realloc(buf, cap * 2);
            if (!b) {
                free(buf);
                return NULL;
            }
            buf = b;
            cap *= 2;
        }
    }
    if (buf)
        buf[n] = '\0';
    return buf;
}

/* --list-voices: the engine's voices, one per line or as JSON. */
static int list_voices(ttsm_model *model, int json)
{
    char *text = NULL;
    ttsm_error err;
    ttsm_status st = ttsm_model_voices(model, &text, &err);
    if (st != TTSM_OK)
        return cli_fail(st, &err);
    if (json) {
        puts(text);
        ttsm_free(text);
        return CLI_EXIT_OK;
    }
    json_t *j = json_loads(text, 0, NULL);
    ttsm_free(text);
    printf("%-22s %-40s %-22s %s\n", "LANGUAGE", "NAME", "ID", "GENDER");
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(j, "voices"), i, v) {
        const char *g = json_string_value(json_object_get(v, "gender"));
        printf("%-22s %-40s %-22s %s\n",
               json_string_value(json_array_get(json_object_get(v, "languages"), 0)),
               json_string_value(json_object_get(v, "name")),
               json_string_value(json_object_get(v, "id")), g ? g : "-");
    }
    printf("\n--voice takes any of these: a language id, a name or an id.\n");
    json_decref(j);
    return CLI_EXIT_OK;
}

static int number(const char *opt, const char *v, int *out)
{
    char *end;
    long n = strtol(v, &end, 10);
    if (*end || n < 0 || n > 1000)
        return cli_usage_error("say", "%s wants a number, got '%s'", opt, v);
    *out = (int)n;
    return 0;
}

static int run(cli_args *a)
{
    ttsm_load_config cfg = ttsm_load_config_default();
    cfg.engine = "espeak-ng";
    ttsm_synth_options so = ttsm_synth_options_default();
    ttsm_manager_options mo = ttsm_manager_options_default();
    cli_manager_options(&mo);
    mo.allow_cpu_fallback = a->given[OPT_CPU_FALLBACK] > 0;
    const char *text = a->n_pos ? a->pos[0] : NULL, *output = a->value[OPT_OUTPUT];
    int json = a->given[OPT_JSON], rc;
    if (a->value[OPT_ENGINE])
        cfg.engine = a->value[OPT_ENGINE];
    cfg.model_name = a->value[OPT_MODEL];
    cfg.model_path = a->value[OPT_MODEL_PATH];
    if (a->value[OPT_DEVICE])
        cfg.device = a->value[OPT_DEVICE];
    /* The language chooses the voice at synthesis, not the model. */
    so.language = a->value[OPT_LANGUAGE];
    so.voice = a->value[OPT_VOICE];
    if ((a->value[OPT_RATE] && (rc = number("--rate", a->value[OPT_RATE], &so.rate))) ||
        (a->value[OPT_PITCH] && (rc = number("--pitch", a->value[OPT_PITCH], &so.pitch))))
        return rc;
    int listing = a->given[OPT_LIST_VOICES];
    if (!listing && !output) {
        if (isatty(STDOUT_FILENO) || json)
            return cli_usage_error("say", "name an output: -o FILE.wav%s",
                                   json ? " (--json prints on standard output)"
                                        : ", or -o - for standard output");
        output = "-";
    }
    if (!listing && json && strcmp(output, "-") == 0)
        return cli_usage_error("say", "--json prints on standard output: write the WAV to a "
                                      "file with -o FILE.wav");
    char *owned = NULL;
    if (!listing && (!text || strcmp(text, "-") == 0)) {
        owned = read_stdin();
        if (!owned)
            return cli_usage_error("say", "cannot read the text from standard input (at most "
                                          "%u bytes)", MAX_STDIN_TEXT);
        text = owned;
    }
    ttsm_error err;
    ttsm_manager *mgr = NULL;
    ttsm_model *model = NULL;
    ttsm_audio audio = {0};
    ttsm_load_report rep;
    ttsm_load_report_init(&rep);
    rc = CLI_EXIT_OK;
    ttsm_status st = ttsm_manager_create(&mo, &mgr, &err);
    if (st == TTSM_OK)
        st = ttsm_load_with_report(mgr, &cfg, &model, &rep, &err);
    if (st == TTSM_OK)
        cli_fallback_notice(&rep, ttsm_model_engine(model));
    if (st == TTSM_OK && listing) {
        rc = list_voices(model, json);
        goto out;
    }
    if (st == TTSM_OK)
        st = ttsm_synthesize(model, text, &so, &audio, &err);
    if (st != TTSM_OK) {
        rc = cli_fail(st, &err);
        goto out;
    }
    FILE *f = strcmp(output, "-") == 0 ? stdout : fopen(output, "wb");
    if (!f || write_wav(f, &audio) != 0 || (f != stdout && fclose(f) != 0) ||
        (f == stdout && fflush(stdout) != 0)) {
        fprintf(stderr, "ttsm: cannot write %s\n", output);
        rc = CLI_EXIT_IO;
        goto out;
    }
    double seconds = (double)audio.n_samples / audio.sample_rate;
    if (json) {
        json_t *steps = json_array();
        for (size_t i = 0; i < rep.n_steps; i++)
            json_array_append_new(steps, json_pack("{s:s, s:s, s:s, s:s}", "model",
                                                   rep.steps[i].model, "device",
                                                   rep.steps[i].device, "status",
                                                   ttsm_status_name(rep.steps[i].code),
                                                   "message", rep.steps[i].message));
        json_t *fb = rep.fell_back
                         ? json_pack("{s:s, s:s, s:s, s:s, s:s}", "asked", rep.asked,
                                     "asked_device", rep.asked_device, "loaded", rep.loaded,
                                     "loaded_device", rep.loaded_device, "why", rep.why)
                         : json_null();
        json_t *o = json_pack("{s:s, s:s, s:s, s:f, s:i, s:I, s:s?, s:s?, s:o, s:o}", "output",
                              output, "engine", ttsm_model_engine(model), "model",
                              ttsm_model_name(model), "seconds", seconds, "sample_rate",
                              (int)audio.sample_rate, "samples", (json_int_t)audio.n_samples,
                              "language", so.language, "voice", so.voice, "attempts", steps,
                              "fallback", fb);
        json_dumpf(o, stdout, JSON_INDENT(2));
        fputc('\n', stdout);
        json_decref(o);
    } else if (f != stdout) {
        fprintf(stderr, "ttsm: wrote %s: %.2f s at %u Hz (%s)\n", output, seconds,
                audio.sample_rate, ttsm_model_engine(model));
    }
out:
    ttsm_audio_free(&audio);
    ttsm_model_release(model);
    ttsm_manager_destroy(mgr);
    free(owned);
    return rc;
}

static const cli_opt options[] = {OPT_LANGUAGE, OPT_ENGINE, OPT_OUTPUT,      OPT_VOICE,
                                  OPT_RATE,     OPT_PITCH,  OPT_LIST_VOICES, OPT_MODEL,
                                  OPT_MODEL_PATH, OPT_DEVICE, OPT_CPU_FALLBACK, OPT_JSON,
                                  OPT_END};

const cli_command cli_cmd_say = {
    "say",
    "speak text into a WAV file (espeak-ng, built in)",
    "[TEXT | -]",
    options,
    1,
    "Speaks TEXT (or standard input when TEXT is '-' or absent) and writes a\n"
    "16-bit mono WAV file. The default engine is espeak-ng, built in: it needs\n"
    "no download. --voice takes espeak-ng's own voice ids (en-us, de, fr-fr), its\n"
    "identifiers (gmw/en-US) and names; --list-voices lists them. Engines whose\n"
    "weights are for PyTorch say so and point to the Python binding.",
    "{\"output\", \"engine\", \"model\", \"seconds\", \"sample_rate\", \"samples\", "
    "\"language\", \"voice\", \"attempts\", \"fallback\"}; with --list-voices {\"engine\", "
    "\"voices\": [{\"name\", \"id\", \"languages\", \"gender\"}]}",
    "ttsm say \"Hello from ttsm\" -o hello.wav\n"
    "echo 'Guten Tag' | ttsm say -l German -o - | aplay\n"
    "ttsm say \"Howdy\" --voice en-us -o howdy.wav --json\n"
    "ttsm say --list-voices",
    NULL,
    run};
