/* cuda.h - the CUDA driver, opened with dlopen at run time (cuda.c):
 * discovery, device information and the cuda backend. */
#ifndef TTSM_DEVICES_CUDA_H
#define TTSM_DEVICES_CUDA_H

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

/* The cuda backend's table. */
const ttsm_backend *ttsm__cuda_backend(void);
/* 1 when `b` is that table (a copy of it). */
int ttsm__cuda_is_backend(const ttsm_backend *b);
/* Uploads `n` bytes of the file `fd` from `offset` to `dst` on device
 * `index` through the pinned staging ring: each chunk is read (pread)
 * straight into a staging buffer while the previous chunks' copies run.
 * Asynchronous like the backend's upload: the backend's sync waits. */
ttsm_status ttsm__cuda_upload_file(int index, void *dst, int fd, uint64_t offset, uint64_t n,
                                   ttsm_error *err);

#endif
