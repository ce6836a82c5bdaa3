/* st_map.c - see st_map.h: the strings of a parsed index live in a few
 * large chunks freed together; names are found through an open-addressing
 * table of map entries. */
#include "formats/st_map.h"

#include <string.h>
#include <xxhash.h>

#include "base/alloc.h"

struct ttsm__st_chunk {
    struct ttsm__st_chunk *next;
    size_t used, cap;
    char data[];
};

char *ttsm__st_index_strdup(ttsm__st_index *ix, const char *s, size_t n)
{
    struct ttsm__st_chunk *c = ix->chunks;
    if (!c || c->cap - c->used < n + 1) {
        size_t cap = n + 1 > 65536 ? n + 1 : 65536;
        c = ttsm__malloc(sizeof *c + cap);
        if (!c)
            return NULL;
        c->next = ix->chunks;
        c->used = 0;
        c->cap = cap;
        ix->chunks = c;
    }
    char *p = c->data + c->used;
    memcpy(p, s, n);
    p[n] = '\0';
    c->used += n + 1;
    return p;
}

void ttsm__st_index_free(ttsm__st_index *ix)
{
    if (!ix)
        return;
    struct ttsm__st_chunk *c = ix->chunks;
    while (c) {
        struct ttsm__st_chunk *n = c->next;
        ttsm__free(c);
        c = n;
    }
    ttsm__free((void *)ix->shards);
    ttsm__free(ix->map);
    ttsm__free(ix->slot);
    ttsm__free(ix->meta);
    memset(ix, 0, sizeof *ix);
}

long ttsm__st_index_find(const ttsm__st_index *ix, const char *name, size_t len)
{
    if (!ix->nslot)
        return -1;
    size_t mask = ix->nslot - 1;
    uint64_t h = XXH3_64bits(name, len), tag = ttsm__st_slot_tag(h);
    for (size_t k = ttsm__st_slot_home(h, ix->nslot); ix->slot[k]; k = (k + 1) & mask) {
        if (ttsm__st_slot_tag(ix->slot[k]) != tag)
            continue;
        size_t i = (size_t)(uint32_t)ix->slot[k] - 1;
        const ttsm__st_map_entry *e = &ix->map[i];
        if (e->name_len == len && memcmp(e->name, name, len) == 0)
            return (long)i;
    }
    return -1;
}

