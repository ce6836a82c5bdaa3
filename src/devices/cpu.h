/* cpu.h - the cpu backend and host memory (cpu.c). */
#ifndef TTSM_DEVICES_CPU_H
#define TTSM_DEVICES_CPU_H

#include "ttsm.h"

/* The cpu device's listing entry: name, total host memory, and free memory
 * as the kernel's MemAvailable. */
void ttsm__cpu_info(ttsm_device_info *out);

/* The built-in cpu backend's table (host-visible: no alloc or upload). */
const ttsm_backend *ttsm__cpu_backend(void);

#endif
