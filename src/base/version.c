/* version.c - the library version string and ttsm_free. */
#include "ttsm.h"
#include "base/alloc.h"

#define TTSM__STR2(x) #x
#define TTSM__STR(x) TTSM__STR2(x)

const char *ttsm_version(void)
{
    return TTSM__STR(TTSM_VERSION_MAJOR) "." TTSM__STR(TTSM_VERSION_MINOR) "." TTSM__STR(
        TTSM_VERSION_PATCH);
}

void ttsm_free(void *p)
{
    ttsm__free(p);
}
