/* cmd_say.c - `ttsm say TEXT`: loads a speaking engine (espeak-ng, built
 * in) through the manager and writes a WAV file. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

#define MAX_STDIN_TEXT (1u << 20)

static void help(FILE *out)
{
    fprintf(out,
            "usage: ttsm say [TEXT | -] [-l LANG] [-e ENGINE] [-o FILE.wav | -o -]\n"
            "                [--voice NAME] [--rate WPM] [--pitch 0..100]\n\n"
            "Speaks TEXT (or standard input when TEXT is '-' or absent) and writes a\n"
            "16-bit mono WAV file. The default engine is espeak-ng, built in: it needs\n"
            "no download. Engines whose weights are for PyTorch say so and point to\n"
            "the Python binding.\n\n"
            "options:\n"
            "  -l, --language L   language name or code (default English)\n"
            "  -e, --engine E     engine (default espeak-ng)\n"
            "  -o, --output F     WAV file to write, or '-' for standard output\n"
            "                     (default: standard output when it is not a terminal)\n"
            "  --voice NAME       an engine voice instead of the language's default\n"
            "  --rate WPM         speed, 80..450 words per minute\n"
            "  --pitch P          0..100\n\n"
            "examples:\n"
            "  ttsm say \"Hello from ttsm\" -o hello.wav\n"
            "  echo 'Guten Tag' | ttsm say -l German -o - | aplay\n");
}

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

static int run(int argc, char **argv)
{
    ttsm_load_config cfg = ttsm_load_config_default();
    cfg.engine = "espeak-ng";
    ttsm_synth_options so = ttsm_synth_options_default();
    ttsm_manager_options mo = ttsm_manager_options_default();
    cli_manager_options(&mo);
    const char *text = NULL, *output = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (a[0] != '-' || strcmp(a, "-") == 0) {
            if (text)
                return cli_usage_error("say", "one TEXT only (quote it)");
            text = a;
            continue;
        }
        if (i + 1 >= argc)
            return cli_usage_error("say", "unknown option or missing value: %s", a);
        const char *v = argv[++i];
        if (!strcmp(a, "-l") || !strcmp(a, "--language"))
            so.language = v;
        else if (!strcmp(a, "-e") || !strcmp(a, "--engine"))
            cfg.engine = v;
        else if (!strcmp(a, "-o") || !strcmp(a, "--output"))
            output = v;
        else if (!strcmp(a, "--voice"))
            so.voice = v;
        else if (!strcmp(a, "--rate") || !strcmp(a, "--pitch")) {
            char *end;
            long n = strtol(v, &end, 10);
            if (*end || n < 0 || n > 1000)
                return cli_usage_error("say", "%s wants a number, got '%s'", a, v);
            if (!strcmp(a, "--rate"))
                so.rate = (int)n;
            else
                so.pitch = (int)n;
        } else
            return cli_usage_error("say", "unknown option '%s'", a);
    }
    if (!output) {
        if (isatty(STDOUT_FILENO))
            return cli_usage_error("say", "name an output: -o FILE.wav, or -o - for standard "
                                          "output");
        output = "-";
    }
    char *owned = NULL;
    if (!text || strcmp(text, "-") == 0) {
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
    int rc = CLI_EXIT_OK;
    ttsm_status st = ttsm_manager_create(&mo, &mgr, &err);
    if (st == TTSM_OK)
        st = ttsm_load(mgr, &cfg, &model, &err);
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
    if (f != stdout)
        fprintf(stderr, "ttsm: wrote %s: %.2f s at %u Hz (%s)\n", output,
                (double)audio.n_samples / audio.sample_rate, audio.sample_rate,
                ttsm_model_engine(model));
out:
    ttsm_audio_free(&audio);
    ttsm_model_release(model);
    ttsm_manager_destroy(mgr);
    free(owned);
    return rc;
}

const cli_command cli_cmd_say = {"say", "speak text into a WAV file (espeak-ng, built in)", run,
                                 help};
