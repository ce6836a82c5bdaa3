/* backend.c - the registry of device kinds: the built-in cpu and cuda
 * backends plus those registered at run time (tests add a fake device),
 * and parsing the index of a "kind:N" device name. */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include <pthread.h>

#include "base/config.h"
#include "base/error.h"
#include "devices/backend.h"
#include "devices/cpu.h"
#include "devices/cuda.h"

#define MAX_BACKENDS 16

/* Process-global by necessity: ttsm_device_resolve() and ttsm_cache_key()
 * take no manager, yet a registered device name must mean the same to them
 * as to every manager. One lock guards the table; entries are never removed,
 * so a copy taken under the lock stays meaningful. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
    char name[TTSM_BACKEND_NAME_MAX];
    ttsm_backend b;
} regs[MAX_BACKENDS];
static size_t n_regs;

/* Parses the index of "cuda:N": decimal digits, no sign, no leading zero,
 * below 65536. @return the index or -1. */
long ttsm__parse_device_index(const char *s)
{
    if (!*s || (s[0] == '0' && s[1]) || strlen(s) > 5)
        return -1;
    long v = 0;
    for (; *s; s++) {
        if (!isdigit((unsigned char)*s))
            return -1;
        v = v * 10 + (*s - '0');
    }
    return v < 65536 ? v : -1;
}

static int valid_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n >= TTSM_BACKEND_NAME_MAX || s[0] < 'a' || s[0] > 'z')
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
            return 0;
    static const char *const reserved[] = {"cpu", "cuda", "auto", "mps", "xpu", "gpu"};
    for (size_t i = 0; i < sizeof reserved / sizeof reserved[0]; i++)
        if (strcmp(s, reserved[i]) == 0)
            return 0;
    return 1;
}

ttsm_status ttsm_register_backend(const ttsm_backend *b, ttsm_error *err)
{
    if (!b || b->version != TTSM_BACKEND_VERSION)
        return ttsm__err(err, TTSM_ERR_INVALID_ARGUMENT, "backend", "invalid argument",
                         "backend table missing or not version %d", TTSM_BACKEND_VERSION);
    if (!b->name || !valid_name(b->name))
        return ttsm__err(err, TTSM_ERR_INVALID_ARGUMENT, "backend", "invalid name",
                         "'%.40s' is not [a-z][a-z0-9_]* below %d bytes, or is reserved",
                         b->name ? b->name : "(null)", TTSM_BACKEND_NAME_MAX);
    if (!b->count || (!b->host_visible && (!b->alloc || !b->free || !b->upload)))
        return ttsm__err(err, TTSM_ERR_INVALID_ARGUMENT, b->name, "invalid argument",
                         "backend needs count, and alloc/free/upload unless host-visible");
    ttsm_status st = TTSM_OK;
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < n_regs; i++)
        if (strcmp(regs[i].name, b->name) == 0) {
            st = ttsm__err(err, TTSM_ERR_INVALID_ARGUMENT, b->name, "invalid argument",
                           "a backend of this name is already registered");
            goto out;
        }
    if (n_regs == MAX_BACKENDS) {
        st = ttsm__err(err, TTSM_ERR_INVALID_ARGUMENT, b->name, "invalid argument",
                       "at most %d backends can be registered", MAX_BACKENDS);
        goto out;
    }
    strcpy(regs[n_regs].name, b->name);
    regs[n_regs].b = *b;
    regs[n_regs].b.name = regs[n_regs].name;
    n_regs++;
    ttsm__config_changed();
out:
    pthread_mutex_unlock(&lock);
    return st;
}

/* Copies the registered backend whose name is the first `len` bytes of s. */
static int find_reg(const char *s, size_t len, ttsm_backend *out)
{
    int found = 0;
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < n_regs && !found; i++)
        if (strlen(regs[i].name) == len && memcmp(regs[i].name, s, len) == 0) {
            *out = regs[i].b;
            found = 1;
        }
    pthread_mutex_unlock(&lock);
    return found;
}

int ttsm__backend_lookup(const char *device, ttsm_backend *out, int *index)
{
    if (strcmp(device, "cpu") == 0) {
        *out = *ttsm__cpu_backend();
        *index = 0;
        return 0;
    }
    const char *colon = strchr(device, ':');
    if (!colon)
        return -1;
    long idx = ttsm__parse_device_index(colon + 1);
    if (idx < 0)
        return -1;
    size_t len = (size_t)(colon - device);
    if (len == 4 && memcmp(device, "cuda", 4) == 0)
        *out = *ttsm__cuda_backend();
    else if (!find_reg(device, len, out))
        return -1;
    *index = (int)idx;
    return 0;
}

int ttsm__backend_resolve(const char *device, const char *subject, char *out, size_t out_size,
                          ttsm_status *st, ttsm_error *err)
{
    const char *colon = strchr(device, ':');
    size_t len = colon ? (size_t)(colon - device) : strlen(device);
    ttsm_backend b;
    if (!find_reg(device, len, &b))
        return 0;
    long idx = colon ? ttsm__parse_device_index(colon + 1) : 0;
    size_t n = b.count(b.user);
    if (idx < 0)
        *st = ttsm__err(err, TTSM_ERR_DEVICE, subject, "device not available",
                        "'%.40s' is not a device name (write %s:N)", device, b.name);
    else if ((size_t)idx >= n)
        *st = ttsm__err(err, TTSM_ERR_DEVICE, subject, "device not available",
                        "'%.40s' does not exist (%zu %s devices)", device, n, b.name);
    else {
        snprintf(out, out_size, "%s:%ld", b.name, idx);
        *st = TTSM_OK;
    }
    return 1;
}

void ttsm__backend_list(char *buf, size_t size)
{
    size_t used = strlen(buf);
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < n_regs; i++) {
        size_t n = regs[i].b.count(regs[i].b.user);
        for (size_t k = 0; k < n && used < size; k++)
            used += (size_t)snprintf(buf + used, size - used, ", %s:%zu", regs[i].name, k);
    }
    pthread_mutex_unlock(&lock);
}

size_t ttsm__backend_device_count(void)
{
    size_t total = 0;
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < n_regs; i++)
        total += regs[i].b.count(regs[i].b.user);
    pthread_mutex_unlock(&lock);
    return total;
}

ttsm_status ttsm__backend_device_get(size_t k, ttsm_device_info *out, ttsm_error *err)
{
    ttsm_backend b;
    size_t idx = 0, found = 0;
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < n_regs && !found; i++) {
        size_t n = regs[i].b.count(regs[i].b.user);
        if (k < n) {
            b = regs[i].b;
            idx = k;
            found = 1;
        } else {
            k -= n;
        }
    }
    pthread_mutex_unlock(&lock);
    if (!found)
        return ttsm__err(err, TTSM_ERR_INVALID_ARGUMENT, "device", "invalid argument",
                         "no such registered device");
    memset(out, 0, sizeof *out);
    snprintf(out->name, sizeof out->name, "%s:%zu", b.name, idx);
    snprintf(out->description, sizeof out->description, "registered backend '%s'", b.name);
    if (b.memory)
        return b.memory(b.user, (int)idx, &out->free_bytes, &out->total_bytes, err);
    return TTSM_OK;
}
