/* espeak.c - the built-in engine that really speaks: eSpeak NG,
 * from Debian's libespeak-ng. Its data folder is found like any model's
 * files (models roots, then the system folders its manifest names), so
 * `ttsm say` works on a fresh machine with no downloads. */
#include <ctype.h>
#include <espeak-ng/speak_lib.h>
#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/error.h"
#include "base/strbuf.h"
#include "engines/espeak.h"
#include "engines/factory_manifest.h"
#include "engines/model.h"

#define MAX_TEXT_BYTES (1u << 20)
#define MAX_SECONDS 3600u

/* espeak-ng keeps all of its state in process globals - the loaded data,
 * the current voice and parameters, the synthesis callback - so two
 * threads calling it at once would speak with each other's voice or
 * corrupt its buffers. Every call into it holds this one lock, and one
 * initialisation is shared by reference count: that is also why the
 * manifest says single_instance, and why a language is chosen per call
 * (the voice) instead of per cache entry. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int init_refs;
static int rate_hz;
static char init_dir[PATH_MAX];

typedef struct collect {
    int16_t *samples;
    size_t n, cap, max;
    int overflow, failed;
} collect;

static int on_samples(short *wav, int n, espeak_EVENT *events)
{
    collect *c = events ? events->user_data : NULL;
    if (!c || !wav || n <= 0)
        return 0;
    if (c->n + (size_t)n > c->max) {
        c->overflow = 1;
        return 1; /* abort synthesis */
    }
    if (ttsm__grow((void **)&c->samples, &c->cap, c->n + (size_t)n, sizeof *c->samples,
                   c->max) != 0) {
        c->failed = 1;
        return 1;
    }
    memcpy(c->samples + c->n, wav, (size_t)n * sizeof *wav);
    c->n += (size_t)n;
    return 0;
}

/* espeak-ng stays initialised at zero references: espeak_Terminate soon
 * after espeak_Initialize can hang for good (libespeak-ng 1.51: its worker
 * thread and the terminating thread each wait for the other; the
 * allocation torture's load/unload cycles hit it under ASan). It is
 * terminated only to switch to another data folder. */
static void release_espeak(void *data)
{
    (void)data;
    pthread_mutex_lock(&lock);
    init_refs--;
    pthread_mutex_unlock(&lock);
}

ttsm_status ttsm__espeak_factory(const ttsm_load_config *cfg, const ttsm_factory_ctx *ctx,
                                 ttsm_model **out, ttsm_error *err)
{
    /* The manifest factory finds and checks the data files. */
    ttsm_model *m;
    ttsm_status st = ttsm__manifest_factory(cfg, ctx, &m, err);
    if (st != TTSM_OK)
        return st;
    const char *phontab = NULL;
    for (size_t i = 0; i < ttsm_model_component_count(m); i++)
        if (strcmp(ttsm_model_component_name(m, i), "phontab") == 0)
            phontab = ttsm_model_component_path(m, i);
    if (!phontab)
        return ttsm__err(err, TTSM_ERR_ENGINE, "espeak-ng", "no data",
                         "the manifest lists no phontab component");
    /* espeak_Initialize wants the folder that holds espeak-ng-data. */
    char dir[PATH_MAX];
    ttsm__format_trunc(dir, sizeof dir, "%s", phontab);
    for (int k = 0; k < 2; k++) {
        char *slash = strrchr(dir, '/');
        if (!slash)
            return ttsm__err(err, TTSM_ERR_ENGINE, "espeak-ng", "bad data path", "%s", phontab);
        *slash = '\0';
    }
    pthread_mutex_lock(&lock);
    if (init_refs > 0 && strcmp(init_dir, dir) != 0) {
        st = ttsm__err(err, TTSM_ERR_ENGINE, "espeak-ng", "single instance",
                       "espeak-ng is already running from %s/espeak-ng-data in this process; "
                       "it cannot also run from %s/espeak-ng-data",
                       init_dir, dir);
    } else if (strcmp(init_dir, dir) != 0) {
        if (init_dir[0]) {
            espeak_Terminate();
            init_dir[0] = '\0';
        }
        int hz = espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, dir, 0);
        if (hz <= 0) {
            st = ttsm__err(err, TTSM_ERR_ENGINE, "espeak-ng", "initialisation failed",
                           "espeak_Initialize(%s) returned %d: is %s/espeak-ng-data complete?",
                           dir, hz, dir);
        } else {
            rate_hz = hz;
            snprintf(init_dir, sizeof init_dir, "%s", dir);
            espeak_SetSynthCallback(on_samples);
        }
    }
    if (st == TTSM_OK) {
        init_refs++;
        ttsm_model_set_engine_data(m, NULL, release_espeak);
        m->voices = ttsm__espeak_voices;
        *out = m;
    }
    pthread_mutex_unlock(&lock);
    return st;
}

/* Language codes and voice names espeak-ng has, called under `lock`. */
static int voice_matches_language(const espeak_VOICE *v, const char *code)
{
    size_t cl = strlen(code);
    for (const char *p = v->languages; p && *p;) {
        const char *lang = p + 1; /* skip the priority byte */
        if (strcmp(lang, code) == 0 || (strncmp(lang, code, cl) == 0 && lang[cl] == '-'))
            return 1;
        p = lang + strlen(lang) + 1;
    }
    return 0;
}

/* Edit distance, ignoring case, for the not-found message. */
static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 32 || lb > 32)
        return 99;
    size_t d[33][33];
    for (size_t i = 0; i <= la; i++)
        d[i][0] = i;
    for (size_t j = 0; j <= lb; j++)
        d[0][j] = j;
    for (size_t i = 1; i <= la; i++)
        for (size_t j = 1; j <= lb; j++) {
            size_t sub = d[i - 1][j - 1] + (tolower((unsigned char)a[i - 1]) !=
                                            tolower((unsigned char)b[j - 1]));
            size_t del = d[i - 1][j] + 1, ins = d[i][j - 1] + 1;
            d[i][j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
        }
    return d[la][lb];
}

static int same_text(const char *a, const char *b)
{
    for (; *a && *b; a++, b++)
        if (tolower((unsigned char)*a) != tolower((unsigned char)*b))
            return 0;
    return *a == *b;
}

/* The last part of an identifier ("gmw/en-US" -> "en-US"). */
static const char *id_tail(const espeak_VOICE *v)
{
    const char *slash = v->identifier ? strrchr(v->identifier, '/') : NULL;
    return slash ? slash + 1 : v->identifier;
}

/* How far `want` is from the ways a voice can be named: its name, its
 * identifier (whole or its last part), each of its language ids - the
 * names espeak-ng's own -v option takes. 0 is a match. */
static size_t voice_distance(const espeak_VOICE *v, const char *want)
{
    size_t best = edit_distance(v->name, want);
    const char *paren = strstr(v->name, " (");
    if (paren) { /* "English" of "English (America)" */
        char first[64];
        size_t n = (size_t)(paren - v->name) < sizeof first - 1 ? (size_t)(paren - v->name)
                                                                 : sizeof first - 1;
        memcpy(first, v->name, n);
        first[n] = '\0';
        size_t d = edit_distance(first, want);
        best = d < best ? d : best;
    }
    if (v->identifier) {
        size_t a = edit_distance(v->identifier, want), b = edit_distance(id_tail(v), want);
        best = a < best ? a : best;
        best = b < best ? b : best;
    }
    for (const char *p = v->languages; p && *p;) {
        const char *lang = p + 1; /* skip the priority byte */
        size_t d = edit_distance(lang, want);
        best = d < best ? d : best;
        p = lang + strlen(lang) + 1;
    }
    return best;
}

/* The voice `want` names, by name or identifier first, then by language. */
static const espeak_VOICE *find_voice(const espeak_VOICE **voices, const char *want)
{
    for (size_t i = 0; voices && voices[i]; i++) {
        const espeak_VOICE *v = voices[i];
        if (same_text(v->name, want) ||
            (v->identifier && (same_text(v->identifier, want) || same_text(id_tail(v), want))))
            return v;
    }
    for (size_t i = 0; voices && voices[i]; i++)
        for (const char *p = voices[i]->languages; p && *p;) {
            const char *lang = p + 1;
            if (same_text(lang, want))
                return voices[i];
            p = lang + strlen(lang) + 1;
        }
    return NULL;
}

/* Up to five voices nearest `want`, as "<language id> (<name>)". */
static void close_matches(const espeak_VOICE **voices, const char *want, int by_language,
                          ttsm__sb *out)
{
    enum { MAX = 5 };
    const espeak_VOICE *best[MAX];
    size_t dist[MAX], n = 0, limit = strlen(want) <= 3 ? 1 : 2 + strlen(want) / 8;
    for (size_t i = 0; voices && voices[i]; i++) {
        size_t d = by_language ? edit_distance(voices[i]->languages + 1, want)
                               : voice_distance(voices[i], want);
        if (d > limit)
            continue;
        size_t k = n < MAX ? n++ : MAX;
        if (k == MAX && d >= dist[MAX - 1])
            continue;
        if (k == MAX)
            k = MAX - 1;
        while (k > 0 && dist[k - 1] > d) {
            best[k] = best[k - 1];
            dist[k] = dist[k - 1];
            k--;
        }
        best[k] = voices[i];
        dist[k] = d;
    }
    for (size_t i = 0; i < n; i++)
        ttsm__sb_addf(out, "%s%s (%s)", i ? ", " : "", best[i]->languages + 1, best[i]->name);
    if (n == 0)
        ttsm__sb_adds(out, "none near it; ttsm say --list-voices lists them");
}

static json_t *voice_json(const espeak_VOICE *v)
{
    json_t *langs = json_array();
    for (const char *p = v->languages; p && *p;) {
        const char *lang = p + 1;
        json_array_append_new(langs, json_string(lang));
        p = lang + strlen(lang) + 1;
    }
    return json_pack("{s:s, s:s?, s:o, s:s?}", "name", v->name, "id", v->identifier, "languages",
                     langs, "gender", v->gender == 1 ? "male" : v->gender == 2 ? "female" : NULL);
}

ttsm_status ttsm__espeak_voices(ttsm_model *model, char **out, ttsm_error *err)
{
    (void)model;
    pthread_mutex_lock(&lock);
    const espeak_VOICE **voices = espeak_ListVoices(NULL);
    json_t *list = json_array();
    for (size_t i = 0; voices && voices[i]; i++)
        json_array_append_new(list, voice_json(voices[i]));
    pthread_mutex_unlock(&lock);
    json_t *root = json_pack("{s:s, s:o}", "engine", "espeak-ng", "voices", list);
    char *text = root ? json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
    json_decref(root);
    *out = text ? ttsm__strdup(text) : NULL;
    free(text);
    if (!*out)
        return ttsm__err(err, TTSM_ERR_OUT_OF_MEMORY, "espeak-ng", "out of memory", "voices");
    return TTSM_OK;
}

ttsm_status ttsm__espeak_synthesize(ttsm_model *model, const char *text,
                                    const ttsm_synth_options *o, ttsm_audio *out, ttsm_error *err)
{
    (void)model;
    size_t len = strnlen(text, MAX_TEXT_BYTES + 1);
    if (len > MAX_TEXT_BYTES)
        return ttsm__err(err, TTSM_ERR_INVALID_ARGUMENT, "espeak-ng", "text too long",
                         "more than %u bytes; split it", MAX_TEXT_BYTES);
    if (o->rate && (o->rate < 80 || o->rate > 450))
        return ttsm__err(err, TTSM_ERR_INVALID_ARGUMENT, "espeak-ng", "invalid option",
                         "rate %d is outside 80..450 words per minute", o->rate);
    if (o->pitch != -1 && (o->pitch < 0 || o->pitch > 100))
        return ttsm__err(err, TTSM_ERR_INVALID_ARGUMENT, "espeak-ng", "invalid option",
                         "pitch %d is outside 0..100", o->pitch);
    char code[TTSM_CONFIG_NAME_MAX + 1] = "en";
    if (o->language) {
        ttsm_status st = ttsm_language_normalize(o->language, code, sizeof code, err);
        if (st != TTSM_OK)
            return st;
    }
    collect c = {0};
    c.max = (size_t)MAX_SECONDS * 48000u;
    ttsm_status st = TTSM_OK;
    pthread_mutex_lock(&lock);
    const espeak_VOICE **voices = espeak_ListVoices(NULL);
    const espeak_VOICE *chosen = o->voice ? find_voice(voices, o->voice) : NULL;
    for (size_t i = 0; !o->voice && voices && voices[i] && !chosen; i++)
        if (voice_matches_language(voices[i], code))
            chosen = voices[i];
    if (!chosen) {
        ttsm__sb near = {0};
        close_matches(voices, o->voice ? o->voice : code, !o->voice, &near);
        st = ttsm__err(err, TTSM_ERR_NOT_FOUND, "espeak-ng",
                       o->voice ? "voice not found" : "language not found",
                       "no espeak-ng voice %s \"%s\" (close: %s)",
                       o->voice ? "named" : "for language", o->voice ? o->voice : code,
                       ttsm__sb_str(&near));
        ttsm__sb_free(&near);
        goto out;
    }
    espeak_ERROR e = espeak_SetVoiceByName(chosen->identifier ? chosen->identifier : chosen->name);
    if (e != EE_OK)
        e = espeak_SetVoiceByName(chosen->name);
    if (e == EE_OK)
        e = espeak_SetParameter(espeakRATE, o->rate ? o->rate : 175, 0);
    if (e == EE_OK)
        e = espeak_SetParameter(espeakPITCH, o->pitch >= 0 ? o->pitch : 50, 0);
    if (e == EE_OK)
        e = espeak_Synth(text, len + 1, 0, POS_CHARACTER, 0, espeakCHARS_UTF8, NULL, &c);
    if (e == EE_OK)
        e = espeak_Synchronize();
    if (e != EE_OK) {
        st = ttsm__err(err, TTSM_ERR_ENGINE, "espeak-ng", "synthesis failed",
                       "espeak-ng error %d with voice %s", (int)e, chosen->name);
    } else if (c.overflow) {
        st = ttsm__err(err, TTSM_ERR_INVALID_ARGUMENT, "espeak-ng", "text too long",
                       "the speech would last more than %u seconds", MAX_SECONDS);
    } else if (c.failed) {
        st = ttsm__err(err, TTSM_ERR_OUT_OF_MEMORY, "espeak-ng", "out of memory",
                       "collecting %zu samples", c.n);
    }
out:
    pthread_mutex_unlock(&lock);
    if (st != TTSM_OK) {
        ttsm__free(c.samples);
        return st;
    }
    out->samples = c.samples;
    out->n_samples = c.n;
    out->sample_rate = (uint32_t)rate_hz;
    return TTSM_OK;
}
