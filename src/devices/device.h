/* device.h - device names and their resolution (device.c): "auto" ->
 * cuda:0 or cpu, "cuda" -> cuda:0, registered kinds, and the listing. */
#ifndef TTSM_DEVICES_DEVICE_H
#define TTSM_DEVICES_DEVICE_H

#include "ttsm.h"

/* Resolves a device string as ttsm_device_resolve() does; errors use
 * `subject` ("chatterbox/English") as the message subject. */
ttsm_status ttsm__device_resolve(const char *device, const char *subject, char *out,
                                 size_t out_size, ttsm_error *err);

#endif
