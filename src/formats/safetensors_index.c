/* safetensors_index.c - HuggingFace sharded checkpoints: a JSON index
 * (`*.safetensors.index.json`) whose "weight_map" maps every tensor to a
 * shard file in the index's folder. The index is read in one pass by
 * jscan.c, keeping only the map, the shard names and the metadata; each
 * shard is then read by the safetensors reader, which checks that shards and
 * map agree exactly, so one table holds every tensor once. Rules:
 * docs/formats/safetensors.md. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <xxhash.h>

#include "base/alloc.h"
#include "base/text.h"
#include "formats/jscan.h"
#include "formats/safetensors.h"
#include "formats/safetensors_index.h"

#define NAME_SHOW 160

/* ---- parsing ----------------------------------------------------------- */

typedef struct iparse {
    ttsm__js js;
    const char *subject;
    ttsm_error *err;
    ttsm__st_index ix;
    size_t cap_map, cap_meta;
    /* distinct shard names in order of first use; ids are provisional */
    const char **sh;
    size_t n_sh, cap_sh;
    uint32_t *sh_slot;
    size_t sh_nslot;
    ttsm__js_kind top, wm_kind, md_kind; /* TTSM__JS_NONE: absent */
    size_t last_sh, last_len;            /* the shard named last, and its length */
    /* The next weight_map key, hashed and its slot fetched while the
     * current entry is read (fast_map_entry); NULL when not looked at. */
    const unsigned char *ahead;
    size_t ahead_len;
    uint64_t ahead_h;
    const char *rule;                    /* the first entry that fails */
    char detail[TTSM_ERROR_MESSAGE_MAX];
} iparse;

static void pend(iparse *p, const char *rule, const char *fmt, ...) TTSM__PRINTF(3, 4);

static void pend(iparse *p, const char *rule, const char *fmt, ...)
{
    if (p->rule)
        return;
    p->rule = rule;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->detail, sizeof p->detail, fmt, ap);
    va_end(ap);
}

static void p_oom(iparse *p, const char *what)
{
    ttsm__js_fail(&p->js, TTSM__JS_F_OTHER, "out of memory");
    p->js.st = ttsm__err(p->err, TTSM_ERR_OUT_OF_MEMORY, p->subject, "out of memory", "%s", what);
}

static int grow_slots(uint32_t **slot, size_t *nslot, size_t n, const char *const *names)
{
    size_t ns = *nslot ? *nslot * 2 : 256;
    while ((n + 1) * 2 > ns)
        ns *= 2;
    uint32_t *s = ttsm__calloc(ns, sizeof *s);
    if (!s)
        return -1;
    for (size_t i = 0; i < n; i++) {
        size_t k = (size_t)XXH3_64bits(names[i], strlen(names[i])) & (ns - 1);
        while (s[k])
            k = (k + 1) & (ns - 1);
        s[k] = (uint32_t)i + 1;
    }
    ttsm__free(*slot);
    *slot = s;
    *nslot = ns;
    return 0;
}

/* The weight_map's name table at twice the size: the tags move with the
 * entries and say where each goes, so no name is read again. */
static int grow_map_slots(ttsm__st_index *ix)
{
    size_t ns = ix->nslot ? ix->nslot * 2 : 256;
    while ((ix->n_map + 1) * 2 > ns)
        ns *= 2;
    uint64_t *s = ttsm__calloc(ns, sizeof *s);
    if (!s)
        return -1;
    for (size_t i = 0; i < ix->nslot; i++) {
        uint64_t v = ix->slot[i];
        if (!v)
            continue;
        size_t k = ttsm__st_slot_home(v, ns);
        while (s[k])
            k = (k + 1) & (ns - 1);
        s[k] = v;
    }
    ttsm__free(ix->slot);
    ix->slot = s;
    ix->nslot = ns;
    return 0;
}

/* Once the first entries are read: room for as many more as the rest of
 * the text would hold at their average size, so the map and its name table
 * are not grown again and again. An estimate, a wrong one costs only
 * growth; it counts an entry as at least 32 bytes (what one costs here), so
 * what it reserves stays within about twice the text. */
static void presize_map(iparse *p, uint64_t used, uint64_t rest)
{
    ttsm__st_index *ix = &p->ix;
    if (!ix->n_map)
        return;
    uint64_t avg = used / ix->n_map;
    uint64_t est = ix->n_map + rest / (avg > 32 ? avg : 32);
    if (est > UINT32_MAX / 4)
        return;
    if (ttsm__grow((void **)&ix->map, &p->cap_map, (size_t)est, sizeof *ix->map,
                   UINT32_MAX - 1) != 0)
        return;
    size_t n = ix->n_map;
    ix->n_map = (size_t)est; /* sizes the table; no entry is added */
    if ((ix->n_map + 1) * 2 > ix->nslot)
        (void)grow_map_slots(ix);
    ix->n_map = n;
}

static long shard_lookup(iparse *p, const char *name, size_t len)
{
    if ((p->n_sh + 1) * 2 > p->sh_nslot &&
        grow_slots(&p->sh_slot, &p->sh_nslot, p->n_sh, p->sh) != 0)
        return -1;
    size_t mask = p->sh_nslot - 1, k = (size_t)XXH3_64bits(name, len) & mask;
    for (; p->sh_slot[k]; k = (k + 1) & mask) {
        const char *s = p->sh[p->sh_slot[k] - 1];
        if (strlen(s) == len && memcmp(s, name, len) == 0)
            return (long)p->sh_slot[k] - 1;
    }
    if (ttsm__grow((void **)&p->sh, &p->cap_sh, p->n_sh + 1, sizeof *p->sh, UINT32_MAX - 1) != 0)
        return -1;
    const char *copy = ttsm__st_index_strdup(&p->ix, name, len);
    if (!copy)
        return -1;
    p->sh[p->n_sh] = copy;
    p->sh_slot[k] = (uint32_t)++p->n_sh;
    return (long)p->n_sh - 1;
}

/* The provisional id of a shard name, added when new. -1: out of memory. */
static long shard_id(iparse *p, const char *name, size_t len)
{
    /* A map lists a shard's tensors together, as a rule: try the last one. */
    if (p->n_sh && p->last_len == len && memcmp(p->sh[p->last_sh], name, len) == 0)
        return (long)p->last_sh;
    long id = shard_lookup(p, name, len);
    if (id >= 0) {
        p->last_sh = (size_t)id;
        p->last_len = len;
    }
    return id;
}

/* Shard names must stay in the index's folder: a plain file name. */
static void check_shard_name(iparse *p, const char *t, const char *name, size_t len)
{
    char s[NAME_SHOW];
    ttsm__printable(name, len, s, sizeof s);
    const char *why = NULL;
    if (len == 0)
        why = "is empty";
    else if (memchr(name, '\0', len))
        why = "holds a NUL byte";
    else if (len > TTSM__ST_MAX_SHARD_NAME)
        why = "is longer than 255 bytes";
    if (why)
        return pend(p, "bad shard name", "weight_map entry '%s' names a shard that %s", t, why);
    if (name[0] == '/')
        why = "is an absolute path";
    else if (memchr(name, '/', len) || memchr(name, '\\', len))
        why = "holds a path separator";
    else if ((len == 1 && name[0] == '.') || (len == 2 && name[0] == '.' && name[1] == '.'))
        why = "is '.' or '..'";
    if (why)
        pend(p, "unsafe shard name",
             "weight_map entry '%s' names '%s', which %s; shards must be plain file names in the "
             "index's folder",
             t, s, why);
}

/* A new weight_map entry named by the scanner's key; a repeated key is a
 * syntax failure, as in jansson. */
static ttsm__st_map_entry *map_add(iparse *p, const char *key, size_t len, uint64_t h)
{
    ttsm__st_index *ix = &p->ix;
    if ((ix->n_map + 1) * 2 > ix->nslot && grow_map_slots(ix) != 0)
        goto oom;
    uint64_t tag = ttsm__st_slot_tag(h);
    size_t mask = ix->nslot - 1, k = ttsm__st_slot_home(h, ix->nslot);
    for (; ix->slot[k]; k = (k + 1) & mask) {
        if (ttsm__st_slot_tag(ix->slot[k]) != tag)
            continue;
        const ttsm__st_map_entry *e = &ix->map[(uint32_t)ix->slot[k] - 1];
        if (e->name_len == len && memcmp(e->name, key, len) == 0) {
            char shown[64];
            ttsm__js_fail(&p->js, TTSM__JS_F_DUPLICATE, "duplicate object key near '\"%s\"'",
                          ttsm__printable(key, len, shown, sizeof shown));
            return NULL;
        }
    }
    if (ttsm__grow((void **)&ix->map, &p->cap_map, ix->n_map + 1, sizeof *ix->map,
                   UINT32_MAX - 1) != 0)
        goto oom;
    const char *name = ttsm__st_index_strdup(ix, key, len);
    if (!name)
        goto oom;
    ttsm__st_map_entry *e = &ix->map[ix->n_map];
    e->name = name;
    e->name_len = (uint32_t)len;
    e->shard = 0;
    ix->slot[k] = tag | (uint32_t)++ix->n_map;
    return e;
oom:
    p_oom(p, "indexing the weight_map");
    return NULL;
}

/* An entry's shard name: its rules in order (after the tensor name's),
 * then its id. @return 0, or -1 when out of memory. */
static int map_shard(iparse *p, ttsm__st_map_entry *e, const char *name, size_t len)
{
    if (p->rule)
        return 0; /* only the first failure is reported */
    if (e->name_len == 0) {
        pend(p, "bad tensor name", "the weight_map has an empty tensor name");
        return 0;
    }
    char t[NAME_SHOW];
    if (len == 0 || len > TTSM__ST_MAX_SHARD_NAME || memchr(name, '\0', len) || name[0] == '/' ||
        memchr(name, '/', len) || memchr(name, '\\', len) || (len <= 2 && name[0] == '.' &&
                                                              (len == 1 || name[1] == '.'))) {
        check_shard_name(p, ttsm__printable(e->name, e->name_len, t, sizeof t), name, len);
        return 0;
    }
    long id = shard_id(p, name, len);
    if (id < 0) {
        p_oom(p, "listing shard names");
        return -1;
    }
    e->shard = (uint32_t)id;
    return 0;
}

/* The entries writers produce, "tensor": "shard" with plain strings (no
 * escapes, no control bytes), read straight from the window. @return 1
 * when read, 0 to leave it to the general path (nothing consumed), -1
 * after a failure. */
/* The end of a plain string's bytes starting at q (its closing quote), or
 * NULL when it has escapes, control bytes or does not end before `end`. */
static const unsigned char *plain_string(const unsigned char *q, const unsigned char *end)
{
    while (end - q >= 8 && ttsm__js_plain8(q))
        q += 8;
    while (q < end && *q != '"' && *q != '\\' && *q >= 0x20)
        q++;
    return q < end && *q == '"' ? q : NULL;
}

static int fast_map_entry(iparse *p)
{
    const unsigned char *q = p->js.p, *end = p->js.end;
    while (q < end && (*q == ' ' || *q == '\n' || *q == '\r' || *q == '\t'))
        q++;
    if (q == end || *q != '"')
        return 0;
    const unsigned char *k = ++q;
    size_t klen;
    uint64_t h;
    if (p->ahead == k) {
        klen = p->ahead_len;
        h = p->ahead_h;
        q = k + klen;
    } else {
        if (!(q = plain_string(q, end)))
            return 0;
        klen = (size_t)(q - k);
        h = XXH3_64bits(k, klen);
    }
    p->ahead = NULL;
    q++;
    while (q < end && (*q == ' ' || *q == '\n' || *q == '\r' || *q == '\t'))
        q++;
    if (q == end || *q++ != ':')
        return 0;
    while (q < end && (*q == ' ' || *q == '\n' || *q == '\r' || *q == '\t'))
        q++;
    if (q == end || *q != '"')
        return 0;
    const unsigned char *v = ++q;
    if (!(q = plain_string(q, end)))
        return 0;
    /* The next key, if it is plain and loaded: its slot is fetched from
     * memory while this entry goes in (a large map's table does not fit in
     * the processor's caches, and each slot is a miss). */
    const unsigned char *n = q + 1;
    while (n < end && (*n == ' ' || *n == '\n' || *n == '\r' || *n == '\t'))
        n++;
    if (n < end && *n == ',') {
        n++;
        while (n < end && (*n == ' ' || *n == '\n' || *n == '\r' || *n == '\t'))
            n++;
        const unsigned char *ne;
        if (n < end && *n == '"' && p->ix.nslot && (ne = plain_string(n + 1, end))) {
            p->ahead = n + 1;
            p->ahead_len = (size_t)(ne - n - 1);
            p->ahead_h = XXH3_64bits(p->ahead, p->ahead_len);
            __builtin_prefetch(&p->ix.slot[ttsm__st_slot_home(p->ahead_h, p->ix.nslot)], 1);
        }
    }
    ttsm__st_map_entry *e = map_add(p, (const char *)k, klen, h);
    if (!e || map_shard(p, e, (const char *)v, (size_t)(q - v)) != 0)
        return -1;
    p->js.p = q + 1;
    return 1;
}

static void scan_weight_map(iparse *p)
{
    ttsm__js *j = &p->js;
    if (ttsm__js_peek(j) != '{') {
        p->wm_kind = ttsm__js_value(j, 2, NULL, NULL);
        return;
    }
    ttsm__js_take(j);
    p->wm_kind = TTSM__JS_OBJECT;
    if (ttsm__js_peek(j) == '}') {
        ttsm__js_take(j);
        return;
    }
    uint64_t start = j->base_off + (uint64_t)(j->p - j->base);
    for (;;) {
        if (p->ix.n_map == 64) {
            uint64_t at = j->base_off + (uint64_t)(j->p - j->base);
            presize_map(p, at - start, j->len > at ? j->len - at : 0);
        }
        int r = fast_map_entry(p);
        if (r < 0)
            return;
        if (r == 0) {
            p->ahead = NULL; /* the window may move: look again */
            if (ttsm__js_key(j, NULL) != 0)
                return;
            ttsm__st_map_entry *e = map_add(p, j->str.p, j->str.len,
                                            XXH3_64bits(j->str.p, j->str.len));
            if (!e || ttsm__js_colon(j) != 0)
                return;
            if (ttsm__js_peek(j) == '"') {
                int nul;
                if (ttsm__js_string(j, &nul) != 0 || map_shard(p, e, j->str.p, j->str.len) != 0)
                    return;
            } else {
                ttsm__js_kind k = ttsm__js_value(j, 3, NULL, NULL);
                if (!k)
                    return;
                char t[NAME_SHOW];
                if (e->name_len == 0)
                    pend(p, "bad tensor name", "the weight_map has an empty tensor name");
                pend(p, "bad shard name", "weight_map entry '%s' is a JSON %s, not a file name",
                     ttsm__printable(e->name, e->name_len, t, sizeof t), ttsm__js_kind_name(k));
            }
        }
        if (j->p < j->end && *j->p == ',') { /* the common case, without a call */
            j->p++;
            continue;
        }
        p->ahead = NULL;
        int more = ttsm__js_next(j, '}');
        if (more <= 0)
            return;
    }
}

static const char *meta_type(ttsm__js_kind k)
{
    switch (k) {
    case TTSM__JS_STRING: return "str";
    case TTSM__JS_INTEGER: return "i64";
    case TTSM__JS_REAL: return "f64";
    case TTSM__JS_TRUE:
    case TTSM__JS_FALSE: return "bool";
    case TTSM__JS_ARRAY: return "array";
    case TTSM__JS_OBJECT: return "object";
    default: return "null";
    }
}

static void scan_metadata(iparse *p)
{
    ttsm__js *j = &p->js;
    if (ttsm__js_peek(j) != '{') {
        p->md_kind = ttsm__js_value(j, 2, NULL, NULL);
        return;
    }
    ttsm__js_take(j);
    p->md_kind = TTSM__JS_OBJECT;
    ttsm__js_keys keys = {0};
    ttsm__sb text = {0};
    if (ttsm__js_peek(j) == '}') {
        ttsm__js_take(j);
        goto done;
    }
    for (;;) {
        if (ttsm__js_key(j, &keys) != 0 || ttsm__js_colon(j) != 0)
            goto done;
        ttsm__st_index *ix = &p->ix;
        if (ttsm__grow((void **)&ix->meta, &p->cap_meta, ix->n_meta + 1, sizeof *ix->meta,
                       SIZE_MAX / sizeof *ix->meta) != 0) {
            p_oom(p, "keeping the metadata");
            goto done;
        }
        ttsm_metadata_entry *m = &ix->meta[ix->n_meta];
        m->key = ttsm__st_index_strdup(ix, j->str.p, j->str.len);
        text.len = 0;
        ttsm__js_kind k = ttsm__js_value(j, 3, &text, NULL);
        if (!k)
            goto done;
        m->type = meta_type(k);
        m->json = text.failed ? NULL : ttsm__st_index_strdup(ix, text.p, text.len);
        if (!m->key || !m->json) {
            p_oom(p, "keeping the metadata");
            goto done;
        }
        ix->n_meta++;
        int more = ttsm__js_next(j, '}');
        if (more <= 0)
            goto done;
    }
done:
    ttsm__sb_free(&text);
    ttsm__js_keys_free(&keys);
}

static void scan_index(iparse *p)
{
    ttsm__js *j = &p->js;
    if (!ttsm__js_open_top(j, &p->top, "the file"))
        return;
    ttsm__js_keys keys = {0};
    if (ttsm__js_peek(j) == '}') {
        ttsm__js_take(j);
    } else {
        for (;;) {
            if (ttsm__js_key(j, &keys) != 0 || ttsm__js_colon(j) != 0)
                goto done;
            if (j->str.len == 10 && memcmp(j->str.p, "weight_map", 10) == 0)
                scan_weight_map(p);
            else if (j->str.len == 8 && memcmp(j->str.p, "metadata", 8) == 0)
                scan_metadata(p);
            else /* unknown keys are ignored: the format is informal */
                ttsm__js_value(j, 2, NULL, NULL);
            if (j->st != TTSM_OK)
                goto done;
            int more = ttsm__js_next(j, '}');
            if (more < 0)
                goto done;
            if (more == 0)
                break;
        }
    }
    ttsm__js_end(j);
done:
    ttsm__js_keys_free(&keys);
}

/* Line and column (1-based, in characters) of text offset `off`, for the
 * message: counted again from the start, only when there is an error. */
static void line_col(const ttsm__js *j, uint64_t off, int *line, int *col)
{
    *line = 1;
    *col = 1;
    unsigned char buf[4096];
    for (uint64_t at = 0; at < off;) {
        size_t n = off - at < sizeof buf ? (size_t)(off - at) : sizeof buf;
        const unsigned char *s;
        if (!j->f) {
            s = j->base + at;
        } else {
            if (ttsm__file_read(j->f, j->file_off + at, buf, n, NULL) != TTSM_OK)
                return;
            s = buf;
        }
        for (size_t i = 0; i < n; i++) {
            if (s[i] == '\n') {
                (*line)++;
                *col = 1;
            } else if ((s[i] & 0xc0) != 0x80) {
                (*col)++;
            }
        }
        at += n;
    }
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The distinct shard names in byte order, and the map's ids remapped. */
static ttsm_status order_shards(iparse *p)
{
    ttsm__st_index *ix = &p->ix;
    uint32_t *rank = ttsm__malloc((p->n_sh ? p->n_sh : 1) * sizeof *rank);
    const char **sorted = ttsm__malloc((p->n_sh ? p->n_sh : 1) * sizeof *sorted);
    if (!rank || !sorted) {
        ttsm__free(rank);
        ttsm__free((void *)sorted);
        return ttsm__err(p->err, TTSM_ERR_OUT_OF_MEMORY, p->subject, "out of memory",
                         "listing %zu shard names", p->n_sh);
    }
    memcpy(sorted, p->sh, p->n_sh * sizeof *sorted);
    qsort(sorted, p->n_sh, sizeof *sorted, cmp_str);
    /* Each name's place in the sorted list, found through the hash set. */
    for (size_t i = 0; i < p->n_sh; i++) {
        size_t len = strlen(sorted[i]), mask = p->sh_nslot - 1;
        size_t k = (size_t)XXH3_64bits(sorted[i], len) & mask;
        while (strcmp(p->sh[p->sh_slot[k] - 1], sorted[i]) != 0)
            k = (k + 1) & mask;
        rank[p->sh_slot[k] - 1] = (uint32_t)i;
    }
    for (size_t i = 0; i < ix->n_map; i++)
        ix->map[i].shard = rank[ix->map[i].shard];
    ttsm__free(rank);
    ix->shards = sorted;
    ix->n_shards = p->n_sh;
    return TTSM_OK;
}

static ttsm_status parse(iparse *p, ttsm__st_index *out)
{
    ttsm__js *j = &p->js;
    const char *s = p->subject;
    ttsm_status st = TTSM_OK;
    scan_index(p);
    if (j->st != TTSM_OK) {
        ttsm__js_check_rest(j);
        int line, col;
        switch (j->failure) {
        case TTSM__JS_F_UTF8:
            st = ttsm__err(p->err, TTSM_ERR_FORMAT, s, "index not UTF-8",
                           "invalid UTF-8 byte 0x%02x at offset %llu", j->bad_byte,
                           (unsigned long long)j->fail_off);
            break;
        case TTSM__JS_F_SYNTAX:
        case TTSM__JS_F_DUPLICATE:
            line_col(j, j->fail_off, &line, &col);
            st = ttsm__err(p->err, TTSM_ERR_FORMAT, s,
                           j->failure == TTSM__JS_F_DUPLICATE ? "duplicate key" : "invalid JSON",
                           "%s at offset %llu (line %d, column %d)", j->msg,
                           (unsigned long long)j->fail_off, line, col);
            break;
        default: st = j->st;
        }
        goto fail;
    }
    const ttsm__st_index *ix = &p->ix;
    if (p->top != TTSM__JS_OBJECT)
        st = ttsm__err(p->err, TTSM_ERR_FORMAT, s, "not a sharded index",
                       "the file is a JSON %s, not an object with a weight_map",
                       ttsm__js_kind_name(p->top));
    else if (!p->wm_kind)
        st = ttsm__err(p->err, TTSM_ERR_FORMAT, s, "not a sharded index",
                       "a JSON object without \"weight_map\" (a config or tokenizer file?)");
    else if (p->wm_kind != TTSM__JS_OBJECT)
        st = ttsm__err(p->err, TTSM_ERR_FORMAT, s, "bad weight_map",
                       "weight_map is a JSON %s, not an object of tensor name -> shard file",
                       ttsm__js_kind_name(p->wm_kind));
    else if (ix->n_map == 0)
        st = ttsm__err(p->err, TTSM_ERR_FORMAT, s, "empty weight_map",
                       "the weight_map names no tensors, so there is nothing to load");
    else if (ix->n_map > TTSM__MAX_TENSORS)
        st = ttsm__err(p->err, TTSM_ERR_FORMAT, s, "too many tensors",
                       "the weight_map has %zu entries, the limit is %u", ix->n_map,
                       TTSM__MAX_TENSORS);
    else if (p->md_kind && p->md_kind != TTSM__JS_NULL && p->md_kind != TTSM__JS_OBJECT)
        st = ttsm__err(p->err, TTSM_ERR_FORMAT, s, "bad metadata",
                       "metadata is a JSON %s, not an object", ttsm__js_kind_name(p->md_kind));
    else if (p->rule)
        st = ttsm__err(p->err, TTSM_ERR_FORMAT, s, p->rule, "%s", p->detail);
    else if ((st = order_shards(p)) == TTSM_OK && ix->n_shards > TTSM__MAX_FILES)
        st = ttsm__err(p->err, TTSM_ERR_FORMAT, s, "too many shards",
                       "the weight_map names %zu shard files, the limit is %u", ix->n_shards,
                       TTSM__MAX_FILES);
    if (st != TTSM_OK)
        goto fail;
    *out = p->ix;
    memset(&p->ix, 0, sizeof p->ix);
fail:
    ttsm__st_index_free(&p->ix);
    ttsm__free((void *)p->sh);
    ttsm__free(p->sh_slot);
    ttsm__js_free(j);
    return st;
}

ttsm_status ttsm__st_index_parse(const char *subject, const void *data, size_t len,
                                 ttsm__st_index *out, ttsm_error *err)
{
    return ttsm__st_index_parse_window(subject, data, len, 0, out, err);
}

ttsm_status ttsm__st_index_parse_window(const char *subject, const void *data, size_t len,
                                        size_t window, ttsm__st_index *out, ttsm_error *err)
{
    memset(out, 0, sizeof *out);
    iparse p;
    memset(&p, 0, sizeof p);
    p.subject = subject;
    p.err = err;
    ttsm__file f;
    memset(&f, 0, sizeof f);
    f.path = (char *)subject;
    f.fd = -1;
    f.mem = data;
    f.size = len;
    if (window)
        ttsm__js_init_window(&p.js, &f, 0, len, 0, subject, err, window);
    else
        ttsm__js_init_mem(&p.js, data, len, 0, subject, err);
    return parse(&p, out);
}

/* ---- opening the shards ------------------------------------------------ */

/* The checkpoint's files are its shards: the index itself, opened by the
 * core as file `fi` before detection, is dropped once it has been read. */
static void forget_file(ttsm_checkpoint *ck, uint32_t fi)
{
    ttsm__file *f = &ck->files[fi];
    if (f->map)
        munmap(f->map, f->map_len);
    if (f->fd >= 0)
        close(f->fd);
    ttsm__free(f->owned_mem);
    ttsm__free(f->path);
    memmove(f, f + 1, (ck->n_files - fi - 1) * sizeof *f);
    ck->n_files--;
}

static size_t count_in_shard(const ttsm__st_index *ix, uint32_t shard, const char **example)
{
    size_t c = 0;
    for (size_t i = 0; i < ix->n_map; i++)
        if (ix->map[i].shard == shard && c++ == 0)
            *example = ix->map[i].name;
    return c;
}

static ttsm_status open_shards(ttsm_checkpoint *ck, const ttsm__st_index *ix, const char *dir,
                               size_t dir_len, ttsm_error *err)
{
    for (size_t i = 0; i < ix->n_shards; i++) {
        const char *name = ix->shards[i];
        size_t nlen = strlen(name);
        char *path = ttsm__malloc(dir_len + nlen + 1);
        if (!path)
            return ttsm__err(err, TTSM_ERR_OUT_OF_MEMORY, ck->path, "out of memory",
                             "naming shard '%s'", name);
        memcpy(path, dir, dir_len);
        memcpy(path + dir_len, name, nlen + 1);
        uint32_t fi;
        ttsm_status st = ttsm__ckpt_add_file(ck, path, &fi, err);
        if (st == TTSM_ERR_NOT_FOUND) {
            const char *example = "";
            size_t c = count_in_shard(ix, (uint32_t)i, &example);
            char ex[NAME_SHOW];
            st = ttsm__err(err, TTSM_ERR_NOT_FOUND, ck->path, "missing shard",
                           "'%s' not found at %s; the weight_map places %zu tensor%s in it "
                           "(e.g. '%s')",
                           name, path, c, c == 1 ? "" : "s",
                           ttsm__printable(example, strlen(example), ex, sizeof ex));
        }
        ttsm__free(path);
        if (st != TTSM_OK)
            return st;
        ttsm__st_shard sh = {.index = ix, .shard = (uint32_t)i, .index_path = ck->path};
        if ((st = ttsm__st_read_file(ck, fi, &sh, err)) != TTSM_OK) {
            if (err && err->hint[0] == '\0') {
                /* the hint is fixed-size: a deep index path keeps its name */
                static const char fmt_len[] = "while reading shard '' of ";
                size_t used = sizeof fmt_len - 1 + strlen(name) + 1;
                const char *ip = ttsm__path_tail(
                    ck->path, used < sizeof err->hint / 2 ? sizeof err->hint - used : 64);
                ttsm__err_hint(err, "while reading shard '%s' of %s%s", name,
                               ip == ck->path ? "" : "...", ip);
            }
            return st;
        }
    }
    return TTSM_OK;
}

static ttsm_status check_complete(ttsm_checkpoint *ck, const ttsm__st_index *ix, ttsm_error *err)
{
    if (ck->n_tensors == ix->n_map)
        return TTSM_OK;
    for (size_t i = 0; i < ix->n_map; i++) {
        const ttsm__st_map_entry *e = &ix->map[i];
        if (!ttsm_checkpoint_find(ck, e->name)) {
            char t[NAME_SHOW];
            return ttsm__err(err, TTSM_ERR_FORMAT, ck->path, "tensor missing from shard",
                             "the weight_map places tensor '%s' in shard '%s', which does not "
                             "hold it",
                             ttsm__printable(e->name, e->name_len, t, sizeof t),
                             ix->shards[e->shard]);
        }
    }
    return TTSM_OK; /* unreachable: every tensor added was checked against the map */
}

static ttsm_status add_index_metadata(ttsm_checkpoint *ck, const ttsm__st_index *ix,
                                      ttsm_error *err)
{
    for (size_t i = 0; i < ix->n_meta; i++) {
        const ttsm_metadata_entry *m = &ix->meta[i];
        ttsm_status st = ttsm__ckpt_add_meta(ck, m->key, m->type, m->json, err);
        if (st != TTSM_OK)
            return st;
    }
    return TTSM_OK;
}

ttsm_status ttsm__read_safetensors_index(ttsm_checkpoint *ck, uint32_t file_index,
                                         ttsm_error *err)
{
    const ttsm__file *f = &ck->files[file_index];
    if (f->size > TTSM__ST_MAX_INDEX)
        return ttsm__err(err, TTSM_ERR_FORMAT, f->path, "index too large",
                         "%llu bytes, the limit for a sharded index is %llu",
                         (unsigned long long)f->size, TTSM__ST_MAX_INDEX);
    ttsm__st_index ix;
    memset(&ix, 0, sizeof ix);
    char *dir = NULL;
    iparse p;
    memset(&p, 0, sizeof p);
    p.subject = f->path;
    p.err = err;
    if (f->mem && !ck->json_window)
        ttsm__js_init_mem(&p.js, f->mem, (size_t)f->size, 0, f->path, err);
    else
        ttsm__js_init_window(&p.js, f, 0, f->size, 0, f->path, err, ck->json_window);
    ttsm_status st = parse(&p, &ix);
    if (st != TTSM_OK)
        return st;
    if (f->fd < 0) {
        /* Fuzzing and other in-memory opens: never touch the file system. */
        st = ttsm__err(err, TTSM_ERR_NOT_FOUND, f->path, "shards unavailable",
                       "an index held in memory cannot open its shards (first: '%s')",
                       ix.shards[0]);
        goto done;
    }
    const char *slash = strrchr(f->path, '/');
    size_t dir_len = slash ? (size_t)(slash - f->path) + 1 : 0;
    dir = ttsm__strndup(f->path, dir_len);
    if (!dir) {
        st = ttsm__err(err, TTSM_ERR_OUT_OF_MEMORY, f->path, "out of memory", "naming shards");
        goto done;
    }
    if (ck->n_storages == 0 && file_index + 1 == ck->n_files)
        forget_file(ck, file_index);
    if ((st = ttsm__ckpt_reserve_index(ck, ix.n_map, err)) != TTSM_OK ||
        (st = open_shards(ck, &ix, dir, dir_len, err)) != TTSM_OK ||
        (st = check_complete(ck, &ix, err)) != TTSM_OK ||
        (st = add_index_metadata(ck, &ix, err)) != TTSM_OK)
        goto done;
    ck->format = TTSM_FORMAT_SAFETENSORS_SHARDED;
    ck->version = 0;
done:
    ttsm__free(dir);
    ttsm__st_index_free(&ix);
    return st;
}
