/* cpu.c - the cpu backend, whose tensors point into host memory (the
 * checkpoint's mapping or read buffers), and what host memory there is. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "devices/cpu.h"

/* Host memory: total from sysconf, free as the kernel's MemAvailable (what
 * can be had without swapping), which is what a budget should compare to. */
void ttsm__cpu_info(ttsm_device_info *out)
{
    memset(out, 0, sizeof *out);
    strcpy(out->name, "cpu");
    strcpy(out->description, "host memory");
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    if (pages > 0 && page > 0)
        out->total_bytes = (uint64_t)pages * (uint64_t)page;
    FILE *f = fopen("/proc/meminfo", "re");
    if (f) {
        char line[128];
        unsigned long long kb;
        while (fgets(line, sizeof line, f))
            if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1) {
                out->free_bytes = kb * 1024ull;
                break;
            }
        fclose(f);
    }
    if (out->free_bytes == 0) {
        long av = sysconf(_SC_AVPHYS_PAGES);
        if (av > 0 && page > 0)
            out->free_bytes = (uint64_t)av * (uint64_t)page;
    }
}

static size_t cpu_count(void *user)
{
    (void)user;
    return 1;
}

static ttsm_status cpu_memory(void *user, int index, uint64_t *free_b, uint64_t *total,
                              ttsm_error *err)
{
    (void)user;
    (void)index;
    (void)err;
    ttsm_device_info info;
    ttsm__cpu_info(&info);
    *free_b = info.free_bytes;
    *total = info.total_bytes;
    return TTSM_OK;
}

static const ttsm_backend cpu_backend = {
    TTSM_BACKEND_VERSION, "cpu", 1, NULL, cpu_count, cpu_memory, NULL, NULL, NULL, NULL,
};

const ttsm_backend *ttsm__cpu_backend(void)
{
    return &cpu_backend;
}
