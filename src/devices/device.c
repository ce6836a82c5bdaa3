/* device.c - device names: parsing, resolution ("auto" -> cuda:0 or cpu,
 * "cuda" -> cuda:0) and the listing behind `ttsm devices`. Names follow
 * PyTorch's: lower-case, "cuda:N" with a plain decimal index. */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "base/error.h"
#include "devices/backend.h"
#include "devices/cpu.h"
#include "devices/cuda.h"
#include "devices/device.h"

size_t ttsm_device_count(void)
{
    return 1 + (size_t)ttsm__cuda_device_count() + ttsm__backend_device_count();
}

ttsm_status ttsm_device_get(size_t index, ttsm_device_info *out, ttsm_error *err)
{
    if (!out)
        return ttsm__err(err, TTSM_ERR_INVALID_ARGUMENT, "device", "invalid argument",
                         "out is NULL");
    if (index == 0) {
        ttsm__cpu_info(out);
        return TTSM_OK;
    }
    size_t n = ttsm_device_count(), n_cuda = (size_t)ttsm__cuda_device_count();
    if (index >= n)
        return ttsm__err(err, TTSM_ERR_INVALID_ARGUMENT, "device", "invalid argument",
                         "index %zu, but there are %zu devices", index, n);
    if (index - 1 >= n_cuda)
        return ttsm__backend_device_get(index - 1 - n_cuda, out, err);
    return ttsm__cuda_device_info((int)(index - 1), out, err);
}

/* "cpu, cuda:0, cuda:1" - what exists, for error messages. */
static void list_devices(char *buf, size_t size)
{
    int n = ttsm__cuda_device_count();
    size_t used = (size_t)snprintf(buf, size, "cpu");
    for (int i = 0; i < n && used < size; i++)
        used += (size_t)snprintf(buf + used, size - used, ", cuda:%d", i);
    ttsm__backend_list(buf, size);
}

static ttsm_status device_error(const char *subject, const char *device, const char *why,
                                const char *hint, ttsm_error *err)
{
    char have[256];
    list_devices(have, sizeof have);
    const char *cuda = ttsm_cuda_status();
    ttsm_status st = ttsm__err(err, TTSM_ERR_DEVICE, subject, "device not available",
                               "'%s' %s (devices here: %s)", device, why, have);
    if (hint)
        ttsm__err_hint(err, "%s", hint);
    else if (*cuda && strncmp(device, "cuda", 4) == 0)
        ttsm__err_hint(err, "CUDA: %s", cuda);
    return st;
}

ttsm_status ttsm__device_resolve(const char *device, const char *subject, char *out,
                                 size_t out_size, ttsm_error *err)
{
    if (!out || out_size < TTSM_DEVICE_NAME_MAX)
        return ttsm__err(err, TTSM_ERR_INVALID_ARGUMENT, subject, "invalid argument",
                         "device output buffer must hold %d bytes", TTSM_DEVICE_NAME_MAX);
    if (!device || strcmp(device, "auto") == 0) {
        strcpy(out, ttsm__cuda_device_count() > 0 ? "cuda:0" : "cpu");
        return TTSM_OK;
    }
    if (strcmp(device, "cpu") == 0) {
        strcpy(out, "cpu");
        return TTSM_OK;
    }
    char shown[48];
    ttsm__format_trunc(shown, sizeof shown, "%s", device);
    if (strcmp(device, "cuda") == 0 || strncmp(device, "cuda:", 5) == 0) {
        long idx = device[4] ? ttsm__parse_device_index(device + 5) : 0;
        if (idx < 0)
            return device_error(subject, shown, "is not a device name",
                                "write cuda:N with N a device index, e.g. cuda:0", err);
        if (idx >= ttsm__cuda_device_count())
            return device_error(subject, shown, "does not exist", NULL, err);
        snprintf(out, out_size, "cuda:%ld", idx);
        return TTSM_OK;
    }
    ttsm_status reg_st;
    if (ttsm__backend_resolve(device, subject, out, out_size, &reg_st, err))
        return reg_st;
    if (strcmp(device, "mps") == 0 || strcmp(device, "xpu") == 0)
        return device_error(subject, shown, "is not supported by this build", NULL, err);

    /* A near miss gets a suggestion: device names are lower-case, as in
     * PyTorch, so one spelling means one cache key. */
    char lower[16];
    size_t n = strlen(device);
    if (n < sizeof lower) {
        for (size_t i = 0; i <= n; i++)
            lower[i] = (char)tolower((unsigned char)device[i]);
        if (strcmp(lower, device) != 0 &&
            (strcmp(lower, "cpu") == 0 || strcmp(lower, "auto") == 0 ||
             strncmp(lower, "cuda", 4) == 0)) {
            char hint[64];
            snprintf(hint, sizeof hint, "device names are lower-case: did you mean '%s'?", lower);
            return device_error(subject, shown, "is not a device name", hint, err);
        }
        if (strcmp(lower, "gpu") == 0 || strncmp(lower, "gpu:", 4) == 0)
            return device_error(subject, shown, "is not a device name",
                                "did you mean 'cuda' (or 'auto')?", err);
    }
    return device_error(subject, shown, "is not a device name",
                        "use auto, cpu, cuda or cuda:N", err);
}

ttsm_status ttsm_device_resolve(const char *device, char *out, size_t out_size, ttsm_error *err)
{
    return ttsm__device_resolve(device, NULL, out, out_size, err);
}
