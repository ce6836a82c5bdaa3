/* fuzz_hub_listing.c - libFuzzer harness for what the Hub client reads from a
 * server before anything else: response header lines (every field capped),
 * the revision answer and a tree page (every path checked, every size a byte
 * count). The first byte picks the parser; the rest is its input. Whatever
 * the input, an accepted path must be one that stays inside its folder. */
#include <stdint.h>
#include <string.h>

#include "store/hub.h"
#include "store/hub_cache.h"
#include "store/hub_http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_list(const ttsm__hub_list *l, const char *dir)
{
    size_t dl = strlen(dir);
    for (size_t i = 0; i < l->n; i++) {
        const char *p = l->e[i].path;
        if (!ttsm__hub_path_ok(p) || (dl && (strncmp(p, dir, dl) != 0 || p[dl] != '/')) ||
            l->e[i].size < -1 || (l->e[i].size >= 0 && (uint64_t)l->e[i].size > TTSM__HUB_FILE_MAX))
            __builtin_trap();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    const char *text = (const char *)data + 1;
    size_t n = size - 1;
    ttsm_error err;
    ttsm__hub_list l = {0};
    switch (data[0] % 3) {
    case 0: {
        char commit[41];
        if (ttsm__hub_parse_revision("fuzz/repo", text, n, commit, &l, &err) == TTSM_OK) {
            if (!ttsm__hub_is_commit(commit))
                __builtin_trap();
            check_list(&l, "");
        }
        break;
    }
    case 1:
        if (ttsm__hub_parse_tree("fuzz/repo", "sub dir", text, n, &l, &err) == TTSM_OK)
            check_list(&l, "sub dir");
        break;
    default: {
        /* Header lines, as libcurl hands them over: one at a time. */
        static ttsm__http_resp r;
        ttsm__http_resp_reset(&r);
        size_t start = 0;
        for (size_t i = 0; i <= n; i++) {
            if (i < n && text[i] != '\n')
                continue;
            if (ttsm__http_parse_header(&r, text + start, i - start + (i < n)) != 0)
                break;
            start = i + 1;
        }
        /* Every field stays a terminated string within its buffer. */
        if (strlen(r.location) >= sizeof r.location || strlen(r.link_next) >= sizeof r.link_next ||
            strlen(r.etag) >= sizeof r.etag || strlen(r.commit) >= sizeof r.commit ||
            r.content_length < -1 || r.linked_size < -1)
            __builtin_trap();
        break;
    }
    }
    ttsm__hub_list_free(&l);
    return 0;
}
