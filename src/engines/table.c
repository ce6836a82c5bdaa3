/* table.c - the process-wide engine table: name -> factory, capabilities
 * and manifest, for engines registered in code and engines made from
 * manifests (registry.c fills it), and what an engine handle tells. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <pthread.h>
#include <stdatomic.h>

#include "base/alloc.h"
#include "base/config.h"
#include "base/error.h"
#include "engines/factory_file.h"
#include "engines/table.h"

#define MAX_ENGINES 64

/* Process-global by necessity, like the backends: cache keys and the CLI
 * see engines without a manager (the registry issue embeds manifests here).
 * One lock; entries are never removed. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static ttsm__engine engines[MAX_ENGINES];
static size_t n_engines;

ttsm_engine_caps ttsm_engine_caps_default(void)
{
    ttsm_engine_caps c;
    memset(&c, 0, sizeof c);
    c.struct_size = sizeof c;
    return c;
}

static ttsm__engine *find_locked(const char *name);

static void builtin_file(ttsm__engine *e)
{
    memset(e, 0, sizeof *e);
    strcpy(e->name, "file");
    e->factory = ttsm__file_factory;
    e->caps = ttsm_engine_caps_default();
}

/* Code for a manifest engine: its files stay the manifest's, the hooks are
 * the caller's. Under `lock`. */
static ttsm_status attach_locked(const char *name, const ttsm_engine_caps *caps, ttsm_error *err)
{
    ttsm__engine *e = NULL;
    for (size_t i = 0; i < n_engines && !e; i++)
        if (strcmp(engines[i].name, name) == 0)
            e = &engines[i];
    if (!e || !e->manifest)
        return ttsm__err(err, TTSM_ERR_INVALID_ARGUMENT, name, "invalid argument",
                         "no engine from a manifest has this name: code without a factory "
                         "can only be attached to one");
    if (e->attached)
        return ttsm__err(err, TTSM_ERR_INVALID_ARGUMENT, name, "invalid argument",
                         "code is attached to this engine already");
    e->caps.build = caps->build;
    e->caps.recover = caps->recover;
    e->caps.user = caps->user;
    e->caps.extra_bytes = caps->extra_bytes;
    e->caps.extra_ratio = caps->extra_ratio;
    e->attached = 1;
    return TTSM_OK;
}

ttsm_status ttsm__table_add_code(const char *name, ttsm_factory_fn factory,
                                 const ttsm_engine_caps *caps, ttsm_error *err)
{
    if (!name || !*name || strlen(name) >= TTSM_CONFIG_NAME_MAX || (!factory && !caps))
        return ttsm__err(err, TTSM_ERR_INVALID_ARGUMENT, "engine", "invalid argument",
                         "an engine needs a name below %d bytes and a factory (or caps to "
                         "attach to a manifest engine)",
                         TTSM_CONFIG_NAME_MAX);
    if (caps && caps->struct_size != sizeof *caps)
        return ttsm__err(err, TTSM_ERR_INVALID_ARGUMENT, name, "invalid argument",
                         "caps.struct_size is %zu, expected %zu: use ttsm_engine_caps_default()",
                         caps->struct_size, sizeof *caps);
    if (caps && (caps->extra_ratio < 0 || caps->extra_ratio > 1e6 ||
                 caps->extra_ratio != caps->extra_ratio))
        return ttsm__err(err, TTSM_ERR_INVALID_ARGUMENT, name, "invalid argument",
                         "caps.extra_ratio must be between 0 and 1e6");
    if (!factory) {
        pthread_mutex_lock(&lock);
        ttsm_status st = attach_locked(name, caps, err);
        pthread_mutex_unlock(&lock);
        return st;
    }
    if (caps && caps->devices && strlen(caps->devices) >= sizeof engines[0].devices)
        return ttsm__err(err, TTSM_ERR_INVALID_ARGUMENT, name, "invalid argument",
                         "device list longer than %zu bytes", sizeof engines[0].devices - 1);
    ttsm_status st = TTSM_OK;
    pthread_mutex_lock(&lock);
    int taken = strcmp(name, "file") == 0 || find_locked(name) != NULL;
    if (taken)
        st = ttsm__err(err, TTSM_ERR_INVALID_ARGUMENT, name, "invalid argument",
                       "an engine of this name is already registered");
    else if (n_engines == MAX_ENGINES)
        st = ttsm__err(err, TTSM_ERR_INVALID_ARGUMENT, name, "invalid argument",
                       "at most %d engines can be registered", MAX_ENGINES);
    else {
        ttsm__engine *e = &engines[n_engines++];
        memset(e, 0, sizeof *e);
        strcpy(e->name, name);
        e->factory = factory;
        e->caps = caps ? *caps : ttsm_engine_caps_default();
        if (caps && caps->devices) {
            strcpy(e->devices, caps->devices);
            e->caps.devices = e->devices;
        }
        ttsm__config_changed();
    }
    pthread_mutex_unlock(&lock);
    return st;
}

/* Name or alias (aliases case-insensitively, so "ChatterBox" works), under
 * `lock`. @return the entry or NULL. */
static ttsm__engine *find_locked(const char *name)
{
    for (size_t i = 0; i < n_engines; i++)
        if (strcmp(engines[i].name, name) == 0)
            return &engines[i];
    for (size_t i = 0; i < n_engines; i++) {
        const ttsm__manifest *m = __atomic_load_n(&engines[i].manifest, __ATOMIC_ACQUIRE);
        if (m && strcasecmp(m->name, name) == 0)
            return &engines[i];
        for (size_t a = 0; m && a < m->n_aliases; a++)
            if (strcasecmp(m->aliases[a], name) == 0)
                return &engines[i];
    }
    return NULL;
}

int ttsm__table_find(const char *name, ttsm__engine *out)
{
    if (strcmp(name, "file") == 0) {
        builtin_file(out);
        return 0;
    }
    pthread_mutex_lock(&lock);
    ttsm__engine *e = find_locked(name);
    if (e) {
        *out = *e;
        out->manifest = __atomic_load_n(&e->manifest, __ATOMIC_ACQUIRE);
        if (out->caps.devices)
            out->caps.devices = out->devices;
    }
    pthread_mutex_unlock(&lock);
    return e ? 0 : -1;
}

ttsm_status ttsm__table_add_manifest(const ttsm__manifest *m, ttsm_factory_fn factory,
                                     ttsm_synthesize_fn synthesize, ttsm_error *err)
{
    ttsm_status st = TTSM_OK;
    pthread_mutex_lock(&lock);
    ttsm__engine *e = NULL;
    for (size_t i = 0; i < n_engines && !e; i++)
        if (strcmp(engines[i].name, m->name) == 0)
            e = &engines[i];
    if (strcmp(m->name, "file") == 0 || (e && !e->manifest)) {
        st = ttsm__err(err, TTSM_ERR_INVALID_ARGUMENT, m->source, "engine name taken",
                       "\"%s\" is an engine registered in code; a manifest cannot replace it",
                       m->name);
    } else if (e) {
        /* An override: readers holding the old manifest keep a valid one,
         * since manifests are never freed. */
        __atomic_store_n(&e->manifest, m, __ATOMIC_RELEASE);
        ttsm__config_changed();
    } else if (n_engines == MAX_ENGINES) {
        st = ttsm__err(err, TTSM_ERR_INVALID_ARGUMENT, m->source, "too many engines",
                       "at most %d engines can be registered", MAX_ENGINES);
    } else {
        e = &engines[n_engines];
        memset(e, 0, sizeof *e);
        strcpy(e->name, m->name);
        e->factory = factory;
        e->caps = ttsm_engine_caps_default();
        e->caps.can_corrupt = m->can_corrupt;
        e->caps.single_instance = m->single_instance;
        e->caps.synthesize = synthesize;
        snprintf(e->devices, sizeof e->devices, "%s", m->devices_csv);
        e->caps.devices = e->devices;
        __atomic_store_n(&e->manifest, m, __ATOMIC_RELEASE);
        n_engines++;
        ttsm__config_changed();
    }
    pthread_mutex_unlock(&lock);
    return st;
}

void ttsm__table_list(char *buf, size_t size)
{
    size_t used = (size_t)snprintf(buf, size, "file");
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < n_engines && used < size; i++)
        used += (size_t)snprintf(buf + used, size - used, ", %s", engines[i].name);
    pthread_mutex_unlock(&lock);
}

int ttsm__engine_supports(const ttsm__engine *e, const char *device)
{
    if (!e->caps.devices)
        return 1;
    const char *colon = strchr(device, ':');
    size_t kind = colon ? (size_t)(colon - device) : strlen(device);
    for (const char *p = e->caps.devices; *p;) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n == kind && memcmp(p, device, n) == 0)
            return 1;
        p += n + (end ? 1 : 0);
    }
    return 0;
}

/* ---- the table as the public queries see it ---------------------------- */

/* The `file` engine as a listing entry; lookups build it by builtin_file(). */
static ttsm__engine file_entry;
static pthread_once_t file_once = PTHREAD_ONCE_INIT;
static void init_file_entry(void)
{
    builtin_file(&file_entry);
}

const ttsm__engine *ttsm__table_file(void)
{
    pthread_once(&file_once, init_file_entry);
    return &file_entry;
}

size_t ttsm__table_count(void)
{
    pthread_mutex_lock(&lock);
    size_t n = n_engines;
    pthread_mutex_unlock(&lock);
    return n;
}

const ttsm__engine *ttsm__table_get(size_t index)
{
    pthread_mutex_lock(&lock);
    const ttsm__engine *e = index < n_engines ? &engines[index] : NULL;
    pthread_mutex_unlock(&lock);
    return e;
}

const ttsm__engine *ttsm__table_handle(const char *name)
{
    if (strcmp(name, "file") == 0)
        return ttsm__table_file();
    pthread_mutex_lock(&lock);
    const ttsm__engine *e = find_locked(name);
    pthread_mutex_unlock(&lock);
    return e;
}

/* ---- what an engine handle tells (docs/engines.md) -------------------- */

static const ttsm__manifest *manifest_of(const ttsm_engine_info *e)
{
    return e ? __atomic_load_n(&e->manifest, __ATOMIC_ACQUIRE) : NULL;
}

const char *ttsm_engine_name(const ttsm_engine_info *e)
{
    return e ? e->name : NULL;
}

const char *ttsm_engine_source(const ttsm_engine_info *e)
{
    const ttsm__manifest *m = manifest_of(e);
    if (m)
        return m->source;
    return e == ttsm__table_file() ? "built-in" : "registered in code";
}

const char *ttsm_engine_manifest(const ttsm_engine_info *e)
{
    const ttsm__manifest *m = manifest_of(e);
    return m ? m->json : NULL;
}

const char *ttsm_engine_description(const ttsm_engine_info *e)
{
    const ttsm__manifest *m = manifest_of(e);
    if (m)
        return m->description ? m->description : "";
    return e == ttsm__table_file() ? "loads the checkpoint(s) at model_path" : "";
}

const char *ttsm_engine_runtime(const ttsm_engine_info *e)
{
    const ttsm__manifest *m = manifest_of(e);
    return m ? m->runtime : "native";
}

const char *ttsm_engine_recovery(const ttsm_engine_info *e)
{
    const ttsm__manifest *m = manifest_of(e);
    if (m)
        return m->recovery;
    return e && e->caps.can_corrupt ? "invalidate" : "none";
}

const char *ttsm_engine_devices(const ttsm_engine_info *e)
{
    return e && e->caps.devices ? e->devices : NULL;
}

const char *ttsm_engine_default_model(const ttsm_engine_info *e)
{
    const ttsm__manifest *m = manifest_of(e);
    return m ? m->default_model : NULL;
}

int ttsm_engine_has(const ttsm_engine_info *e, ttsm_capability cap)
{
    const ttsm__manifest *m = manifest_of(e);
    if (!e)
        return 0;
    switch (cap) {
    case TTSM_CAP_VOICE_CONVERSION: return m ? m->supports_voice_conversion : 0;
    case TTSM_CAP_FALLBACK: return m ? m->has_fallback : 0;
    case TTSM_CAP_CAN_CORRUPT: return m ? m->can_corrupt : e->caps.can_corrupt;
    case TTSM_CAP_SPECIAL_INIT: return m ? m->requires_special_init : 0;
    case TTSM_CAP_LANGUAGE_SELECTS_MODEL: return m ? m->language_selects_model : 0;
    case TTSM_CAP_SINGLE_INSTANCE: return m ? m->single_instance : e->caps.single_instance;
    }
    return 0;
}

size_t ttsm_engine_alias_count(const ttsm_engine_info *e)
{
    const ttsm__manifest *m = manifest_of(e);
    return m ? m->n_aliases : 0;
}
const char *ttsm_engine_alias(const ttsm_engine_info *e, size_t i)
{
    const ttsm__manifest *m = manifest_of(e);
    return m && i < m->n_aliases ? m->aliases[i] : NULL;
}
size_t ttsm_engine_language_count(const ttsm_engine_info *e)
{
    const ttsm__manifest *m = manifest_of(e);
    return m ? m->n_languages : 0;
}
const char *ttsm_engine_language(const ttsm_engine_info *e, size_t i)
{
    const ttsm__manifest *m = manifest_of(e);
    return m && i < m->n_languages ? m->languages[i] : NULL;
}
size_t ttsm_engine_model_type_count(const ttsm_engine_info *e)
{
    const ttsm__manifest *m = manifest_of(e);
    return m ? m->n_model_types : 0;
}
const char *ttsm_engine_model_type(const ttsm_engine_info *e, size_t i)
{
    const ttsm__manifest *m = manifest_of(e);
    return m && i < m->n_model_types ? m->model_types[i] : NULL;
}
size_t ttsm_engine_model_count(const ttsm_engine_info *e)
{
    const ttsm__manifest *m = manifest_of(e);
    return m ? m->n_models : 0;
}
const char *ttsm_engine_model_name(const ttsm_engine_info *e, size_t i)
{
    const ttsm__manifest *m = manifest_of(e);
    return m && i < m->n_models ? m->models[i].name : NULL;
}
const char *ttsm_engine_model_language(const ttsm_engine_info *e, size_t i)
{
    const ttsm__manifest *m = manifest_of(e);
    return m && i < m->n_models ? m->models[i].language : NULL;
}

int ttsm_engine_supports_language(const ttsm_engine_info *e, const char *language)
{
    const ttsm__manifest *m = manifest_of(e);
    char code[TTSM_CONFIG_NAME_MAX + 1];
    if (!m || !language || ttsm_language_normalize(language, code, sizeof code, NULL) != TTSM_OK)
        return 0;
    for (size_t i = 0; i < m->n_languages; i++)
        if (strcmp(m->languages[i], code) == 0)
            return 1;
    return 0;
}
