/* fuzz_comfyui_yaml.c - libFuzzer harness for the reader of ComfyUI's
 * extra_model_paths.yaml (src/store/roots.c): any bytes give the TTS
 * folders or a clean error; every folder it returns is absolute and
 * normalised (no "//", no "." or ".." segment). */
#include <stdint.h>
#include <string.h>

#include "store/roots.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(const ttsm__rootset *s)
{
    for (size_t i = 0; i < s->n; i++) {
        const char *p = s->roots[i].path;
        if (p[0] != '/' || strstr(p, "//") || strstr(p, "/./") || strstr(p, "/../") ||
            (strlen(p) > 1 && p[strlen(p) - 1] == '/'))
            __builtin_trap();
        if (s->roots[i].kind != TTSM__ROOT_TTS || !s->roots[i].origin)
            __builtin_trap();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ttsm__rootset first, rest;
    memset(&first, 0, sizeof first);
    memset(&rest, 0, sizeof rest);
    ttsm_error err;
    if (ttsm__comfyui_yaml((const char *)data, size, "/comfy", "fuzz.yaml", &first, &rest,
                           &err) == TTSM_OK) {
        check(&first);
        check(&rest);
    }
    ttsm__rootset_free(&first);
    ttsm__rootset_free(&rest);
    return 0;
}
