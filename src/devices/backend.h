/* backend.h - the process-wide table of device kinds (backend.c): the
 * built-in cpu and cuda backends and those registered at run time. */
#ifndef TTSM_DEVICES_BACKEND_H
#define TTSM_DEVICES_BACKEND_H

#include "ttsm.h"

/* Finds the backend of a canonical device name ("cpu", "cuda:1", "fake:0");
 * copies its table to *out and the index to *index. @return 0 or -1. */
int ttsm__backend_lookup(const char *device, ttsm_backend *out, int *index);

/* Resolves "name" / "name:N" of a registered backend into out ("name:N").
 * @return 1 matched (st set), 0 not a registered name. */
int ttsm__backend_resolve(const char *device, const char *subject, char *out, size_t out_size,
                          ttsm_status *st, ttsm_error *err);
/* Appends ", fake:0, fake:1" for every registered device to buf. */
void ttsm__backend_list(char *buf, size_t size);
/* Devices of registered backends, in registration order (for listings). */
size_t ttsm__backend_device_count(void);
ttsm_status ttsm__backend_device_get(size_t k, ttsm_device_info *out, ttsm_error *err);

/* Parses the N of "kind:N": decimal digits, no sign, no leading zero,
 * below 65536. @return N or -1. */
long ttsm__parse_device_index(const char *s);

#endif
