/* fake_backend.h - a deterministic fake device kind "fake" (two devices) for
 * manager tests: host memory behind a non-host-visible backend, so uploads
 * run; exact byte accounting, a settable free memory and failure injection
 * (allocations, uploads, a device that disappears). */
#ifndef TTSM_FAKE_BACKEND_H
#define TTSM_FAKE_BACKEND_H

#include <stdint.h>

#include "ttsm.h"

/* Registers "fake" once per process (thread-safe). */
void fake_backend_register(void);
/* Registers the fake backend, then tu_dir_setup: a group's setup. */
int fake_dir_setup(void **state);
/* Bytes currently allocated on fake:index, and the most ever at once. */
uint64_t fake_allocated(int index);
uint64_t fake_peak(int index);
/* Free memory fake:index reports (default 1 TiB). */
void fake_set_free(int index, uint64_t bytes);
/* The n-th alloc from now fails with TTSM_ERR_OUT_OF_MEMORY (0: never). */
void fake_fail_alloc_after(long n);
/* The n-th upload from now fails with TTSM_ERR_DEVICE (0: never). */
void fake_fail_upload_after(long n);
/* How many fake devices exist now (0..2, default 2): fewer is a device
 * that disappeared (unplugged, driver reset). Memory queries and
 * allocations on a vanished device fail with TTSM_ERR_DEVICE; frees work. */
void fake_set_count(size_t n);
/* Uploads so far (all devices). */
long fake_upload_count(void);
void fake_reset_peaks(void);

#endif
