/* device_internal.h - device discovery shared by device.c (names, parsing,
 * listing) and device_cuda.c (the CUDA driver opened at run time). */
#ifndef TTSM_DEVICE_INTERNAL_H
#define TTSM_DEVICE_INTERNAL_H

#include "ttsm.h"

/* Number of CUDA devices found by the (once-only) discovery; 0 without a
 * driver. Thread-safe. */
int ttsm__cuda_device_count(void);
/* Name and memory of CUDA device `ordinal`; memory is read now through the
 * device's primary context. */
ttsm_status ttsm__cuda_device_info(int ordinal, ttsm_device_info *out, ttsm_error *err);
/* Forgets what discovery found (closing the driver), so the next call
 * discovers again - for tests that swap TTSM_CUDA_DRIVER. Not thread-safe
 * against concurrent users of the driver. */
void ttsm__cuda_reset(void);

/* Resolves a device string as ttsm_device_resolve() does; errors use
 * `subject` ("chatterbox/English") as the message subject. */
ttsm_status ttsm__device_resolve(const char *device, const char *subject, char *out,
                                 size_t out_size, ttsm_error *err);

/* Parses the N of "kind:N": decimal digits, no sign, no leading zero,
 * below 65536. @return N or -1. */
long ttsm__parse_device_index(const char *s);

#endif
