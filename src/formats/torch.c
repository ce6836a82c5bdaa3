/* torch.c - PyTorch checkpoints, read as data: the torch.save zip
 * archive (PyTorch >= 1.6) and the legacy pre-1.6 stream. Both keep tensor
 * bytes apart from a pickle that describes them; the pickle goes through the
 * restricted unpickler, storages become checkpoint storages (zero-copy where
 * the bytes are stored as-is), and the unpickled object is flattened into
 * dotted tensor names and metadata. Layouts: docs/formats/pytorch.md. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "formats/torch.h"
#include "formats/table.h"
#include "formats/torch_pickle.h"
#include "formats/zip.h"

#define MAX_KEY_LEN 256u        /* a storage key: torch writes small decimals */
#define MAX_RECORD_BYTES 64u    /* byteorder / version records */
#define MAX_JSON_BYTES (64u << 20) /* one metadata value */
#define LEGACY_VERSION 1001u    /* the legacy format's protocol number */

/* ---- storage slots -------------------------------------------------------- */

typedef struct slot_info {
    const char *key; /* in the pickle buffer, which outlives the slots */
    size_t key_len;
    uint64_t nbytes;
    uint32_t elem_size;
    const ttsm__zip_entry *entry; /* zip archives */
    int listed;                   /* legacy: seen in the storage key list */
} slot_info;

typedef struct torch_ctx {
    ttsm_checkpoint *ck;
    const ttsm__file *f;
    const ttsm__zip *z; /* NULL for a legacy file */
    const char *root;
    size_t root_len;
    slot_info *slots;
    size_t n_slots, cap_slots;
    uint32_t *hash; /* key -> slot + 1; 0 = empty */
    size_t hash_cap;
    int legacy_magic_ok; /* the file starts with torch.save's magic number */
} torch_ctx;

static uint64_t key_hash(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

static size_t hash_slot(const torch_ctx *c, const char *key, size_t len)
{
    size_t mask = c->hash_cap - 1;
    for (size_t i = (size_t)key_hash(key, len) & mask;; i = (i + 1) & mask) {
        uint32_t s = c->hash[i];
        if (s == 0)
            return i;
        const slot_info *si = &c->slots[s - 1];
        if (si->key_len == len && memcmp(si->key, key, len) == 0)
            return i;
    }
}

static int hash_grow(torch_ctx *c)
{
    size_t ncap = c->hash_cap ? c->hash_cap * 2 : 64;
    uint32_t *n = ttsm__calloc(ncap, sizeof *n);
    if (!n)
        return -1;
    ttsm__free(c->hash);
    c->hash = n;
    c->hash_cap = ncap;
    for (size_t s = 0; s < c->n_slots; s++)
        c->hash[hash_slot(c, c->slots[s].key, c->slots[s].key_len)] = (uint32_t)s + 1;
    return 0;
}

static void ctx_reset(torch_ctx *c)
{
    ttsm__free(c->slots);
    ttsm__free(c->hash);
    c->slots = NULL;
    c->hash = NULL;
    c->n_slots = c->cap_slots = c->hash_cap = 0;
}

/* Storage keys name files inside the archive: short, and made of characters
 * that cannot form a path of their own. */
static ttsm_status check_key(const torch_ctx *c, const char *key, size_t len, uint64_t off,
                             ttsm_error *err)
{
    int ok = len > 0 && len <= MAX_KEY_LEN && !(len == 1 && key[0] == '.') &&
             !(len == 2 && key[0] == '.' && key[1] == '.');
    for (size_t i = 0; ok && i < len; i++) {
        char ch = key[i];
        ok = (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
             ch == '_' || ch == '-' || ch == '.';
    }
    if (ok)
        return TTSM_OK;
    return ttsm__err(err, TTSM_ERR_FORMAT, c->f->path, "bad storage key",
                     "the persistent id at pickle offset %llu has a key of %zu bytes that is not "
                     "1-%u letters, digits, '_', '-' or '.'",
                     (unsigned long long)off, len, MAX_KEY_LEN);
}

/* Finds or adds the slot of `key`. *is_new tells which. */
static ttsm_status slot_for(torch_ctx *c, const char *key, size_t len, uint64_t nbytes,
                            uint32_t elem_size, uint64_t off, uint32_t *slot, int *is_new,
                            ttsm_error *err)
{
    ttsm_status st = check_key(c, key, len, off, err);
    if (st != TTSM_OK)
        return st;
    if (c->hash_cap == 0 && hash_grow(c) != 0)
        goto oom;
    size_t h = hash_slot(c, key, len);
    if (c->hash[h]) {
        slot_info *si = &c->slots[c->hash[h] - 1];
        if (si->nbytes != nbytes)
            return ttsm__err(err, TTSM_ERR_FORMAT, c->f->path, "inconsistent storage",
                             "storage '%.*s' is referenced as %llu bytes and as %llu bytes "
                             "(pickle offset %llu)",
                             (int)len, key, (unsigned long long)si->nbytes,
                             (unsigned long long)nbytes, (unsigned long long)off);
        *slot = c->hash[h] - 1;
        *is_new = 0;
        return TTSM_OK;
    }
    if (ttsm__grow((void **)&c->slots, &c->cap_slots, c->n_slots + 1, sizeof *c->slots,
                   TTSM__MAX_TENSORS) != 0)
        goto oom;
    slot_info *si = &c->slots[c->n_slots];
    memset(si, 0, sizeof *si);
    si->key = key;
    si->key_len = len;
    si->nbytes = nbytes;
    si->elem_size = elem_size;
    *slot = (uint32_t)c->n_slots++;
    *is_new = 1;
    if ((c->n_slots) * 2 > c->hash_cap) {
        if (hash_grow(c) != 0)
            goto oom;
    } else {
        c->hash[h] = *slot + 1;
    }
    return TTSM_OK;
oom:
    return ttsm__err(err, TTSM_ERR_OUT_OF_MEMORY, c->f->path, "out of memory",
                     "recording storage %zu", c->n_slots);
}

/* ---- zip archives --------------------------------------------------------- */

static ttsm_status zip_storage(void *vc, const char *key, size_t len, uint64_t nbytes,
                               uint32_t elem_size, uint64_t off, uint32_t *slot, ttsm_error *err)
{
    torch_ctx *c = vc;
    int is_new;
    ttsm_status st = slot_for(c, key, len, nbytes, elem_size, off, slot, &is_new, err);
    if (st != TTSM_OK || !is_new)
        return st;
    char name[MAX_KEY_LEN + 300];
    int nl = snprintf(name, sizeof name, "%.*s/data/%.*s", (int)c->root_len, c->root, (int)len,
                      key);
    const ttsm__zip_entry *e = NULL;
    if (nl > 0 && (size_t)nl < sizeof name)
        e = ttsm__zip_find(c->z, name, (size_t)nl);
    if (!e)
        return ttsm__err(err, TTSM_ERR_FORMAT, c->f->path, "missing storage",
                         "the pickle (offset %llu) references storage '%.*s' but the archive has "
                         "no member '%s'",
                         (unsigned long long)off, (int)len, key, name);
    if (e->size != nbytes)
        return ttsm__err(err, TTSM_ERR_FORMAT, c->f->path, "storage size mismatch",
                         "member '%s' holds %llu bytes; the pickle (offset %llu) describes "
                         "%llu (numel times element size)",
                         name, (unsigned long long)e->size, (unsigned long long)off,
                         (unsigned long long)nbytes);
    c->slots[*slot].entry = e;
    return TTSM_OK;
}

/* A small text record ("little", "3"), whitespace-trimmed into buf. */
static ttsm_status read_record(const ttsm__file *f, const ttsm__zip_entry *e, char *buf,
                               size_t size, ttsm_error *err)
{
    void *mem;
    ttsm_status st = ttsm__zip_extract(f, e, size - 1, &mem, err);
    if (st != TTSM_OK)
        return st;
    size_t n = (size_t)e->size;
    if (n)
        memcpy(buf, mem, n);
    ttsm__free(mem);
    buf[n] = '\0';
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
        buf[--n] = '\0';
    return TTSM_OK;
}

static ttsm_status find_root(torch_ctx *c, const ttsm__zip_entry **pkl, ttsm_error *err)
{
    const ttsm__zip *z = c->z;
    const char *path = c->f->path;
    *pkl = NULL;
    for (size_t i = 0; i < z->n_entries; i++) {
        const ttsm__zip_entry *e = &z->entries[i];
        const char *slash = memchr(e->name, '/', e->name_len);
        if (!slash || (size_t)(slash - e->name) + 1 + 8 != e->name_len ||
            memcmp(slash + 1, "data.pkl", 8) != 0)
            continue;
        if (*pkl)
            return ttsm__err(err, TTSM_ERR_FORMAT, path, "ambiguous archive",
                             "two pickles: '%s' and '%s'", (*pkl)->name, e->name);
        *pkl = e;
        c->root = e->name;
        c->root_len = (size_t)(slash - e->name);
    }
    if (!*pkl) {
        int script = 0;
        for (size_t i = 0; i < z->n_entries; i++)
            if (strstr(z->entries[i].name, "constants.pkl") || strstr(z->entries[i].name, "/code/"))
                script = 1;
        ttsm_status st = ttsm__err(err, TTSM_ERR_FORMAT, path, "not a torch.save archive",
                                   "the zip has no <root>/data.pkl among its %zu entries",
                                   z->n_entries);
        if (script)
            ttsm__err_hint(err, "this looks like a TorchScript archive (torch.jit.save); save the "
                                "weights with torch.save(model.state_dict(), path) instead");
        return st;
    }
    for (size_t i = 0; i < z->n_entries; i++) {
        const ttsm__zip_entry *e = &z->entries[i];
        if (e->name_len <= c->root_len || memcmp(e->name, c->root, c->root_len) != 0 ||
            e->name[c->root_len] != '/')
            return ttsm__err(err, TTSM_ERR_FORMAT, path, "entry outside the archive root",
                             "entry '%.200s' is not under the archive's root folder '%.*s/'",
                             e->name, (int)c->root_len, c->root);
    }
    return TTSM_OK;
}

static const ttsm__zip_entry *find_member(const torch_ctx *c, const char *rel)
{
    char name[600];
    int n = snprintf(name, sizeof name, "%.*s/%s", (int)c->root_len, c->root, rel);
    if (n <= 0 || (size_t)n >= sizeof name)
        return NULL;
    return ttsm__zip_find(c->z, name, (size_t)n);
}

static ttsm_status read_header_records(torch_ctx *c, ttsm_error *err)
{
    const char *path = c->f->path;
    char rec[MAX_RECORD_BYTES + 1];
    ttsm_status st;
    const ttsm__zip_entry *e = find_member(c, "byteorder");
    if (e) {
        if ((st = read_record(c->f, e, rec, sizeof rec, err)) != TTSM_OK)
            return st;
        if (strcmp(rec, "big") == 0)
            return ttsm__err(err, TTSM_ERR_FORMAT, path, "big-endian checkpoint",
                             "the byteorder record says 'big'; ttsm reads little-endian tensor "
                             "data only (re-save the file on a little-endian machine)");
        if (strcmp(rec, "little") != 0)
            return ttsm__err(err, TTSM_ERR_FORMAT, path, "bad byteorder record",
                             "'%s' is neither 'little' nor 'big'", rec);
    }
    e = find_member(c, "version");
    if (!e)
        e = find_member(c, ".data/version");
    if (!e)
        return ttsm__err(err, TTSM_ERR_FORMAT, path, "not a torch.save archive",
                         "no '%.*s/version' record", (int)c->root_len, c->root);
    if ((st = read_record(c->f, e, rec, sizeof rec, err)) != TTSM_OK)
        return st;
    char *end;
    unsigned long long v = rec[0] >= '0' && rec[0] <= '9' ? strtoull(rec, &end, 10) : 0;
    if (rec[0] < '0' || rec[0] > '9' || *end != '\0' || v == 0 || v > UINT32_MAX)
        return ttsm__err(err, TTSM_ERR_FORMAT, path, "bad version record",
                         "'%.40s' is not a positive decimal number", rec);
    c->ck->version = (uint32_t)v;
    return TTSM_OK;
}

/* A deflated storage member, inflated when its bytes are first asked for
 * (table.c); the entry and its name are copied into the arena. */
typedef struct zip_lazy {
    ttsm__lazy base;
    ttsm__zip_entry e;
} zip_lazy;

static ttsm_status inflate_storage(const ttsm__file *f, const ttsm__lazy *lz, void *out,
                                   ttsm_error *err)
{
    const zip_lazy *z = (const zip_lazy *)lz;
    return ttsm__zip_read_into(f, &z->e, out, err);
}

/* Turns each slot into a checkpoint storage: stored members in place,
 * deflated ones made on first access - opening and inspecting an archive
 * never inflates a storage. What they may inflate to together is checked
 * here against the cap (max_inflate_bytes, or proportionate to the file)
 * from their declared sizes, before any byte is inflated. */
static ttsm_status zip_storages(torch_ctx *c, uint32_t file_index, uint32_t *slot_storage,
                                ttsm_error *err)
{
    uint64_t cap = ttsm__ckpt_inflate_cap(c->ck, c->f->size), total = 0;
    for (size_t i = 0; i < c->n_slots; i++) {
        const ttsm__zip_entry *e = c->slots[i].entry;
        ttsm_status st;
        if (e->method == TTSM__ZIP_STORED) {
            /* Stored members are not CRC-checked here: that would read every
             * byte of a multi-GB file at open. */
            st = ttsm__ckpt_add_storage(c->ck, file_index, e->data_offset, e->size, NULL,
                                        &slot_storage[i], err);
        } else {
            st = ttsm__zip_check_size(c->f, e, cap, err);
            if (st == TTSM_OK && (__builtin_add_overflow(total, e->size, &total) || total > cap))
                st = ttsm__err(err, TTSM_ERR_FORMAT, c->f->path, "zip entry too large",
                               "the deflated storages inflate to more than %llu bytes together "
                               "(entry '%.200s' passes it), over the cap of %llu bytes "
                               "(max_inflate_bytes)",
                               (unsigned long long)cap, e->name, (unsigned long long)cap);
            if (st != TTSM_OK) {
                uint64_t most; /* the hint is for the cap, not for an impossible ratio */
                int possible = !__builtin_mul_overflow(e->comp_size, (uint64_t)TTSM__ZIP_MAX_RATIO,
                                                       &most) && e->size <= most + 1024;
                if (st == TTSM_ERR_FORMAT && possible && !c->ck->max_inflate_bytes)
                    ttsm__err_hint(err, "by default deflated storages may inflate to 16 x the "
                                        "file's size (at least 64 MiB); set max_inflate_bytes "
                                        "to read a file that expands more");
                return st;
            }
            zip_lazy *z = ttsm__ckpt_arena(c->ck, sizeof *z, _Alignof(zip_lazy));
            char *name = ttsm__ckpt_arena(c->ck, (size_t)e->name_len + 1, 1);
            if (!z || !name)
                return ttsm__err(err, TTSM_ERR_OUT_OF_MEMORY, c->f->path, "out of memory",
                                 "recording storage %zu", i);
            memcpy(name, e->name, (size_t)e->name_len + 1);
            z->base.file_index = file_index;
            z->base.fill = inflate_storage;
            z->e = *e;
            z->e.name = name;
            st = ttsm__ckpt_add_lazy_storage(c->ck, e->size, &z->base, &slot_storage[i], err);
        }
        if (st != TTSM_OK)
            return st;
    }
    return TTSM_OK;
}

static ttsm_status read_zip(ttsm_checkpoint *ck, uint32_t file_index, ttsm_error *err)
{
    ttsm__zip z;
    torch_ctx c;
    memset(&c, 0, sizeof c);
    c.ck = ck;
    c.f = &ck->files[file_index];
    c.z = &z;
    void *pkl = NULL;
    uint32_t *slot_storage = NULL;
    ttsm__pickle_arena *arena = NULL;
    ttsm_status st = ttsm__zip_open(c.f, &z, err);
    if (st != TTSM_OK)
        return st;
    const ttsm__zip_entry *pe;
    if ((st = find_root(&c, &pe, err)) != TTSM_OK || (st = read_header_records(&c, err)) != TTSM_OK)
        goto done;
    uint64_t cap = ttsm__ckpt_inflate_cap(ck, c.f->size);
    if (cap > TTSM__PICKLE_MAX_BYTES)
        cap = TTSM__PICKLE_MAX_BYTES;
    if ((st = ttsm__zip_extract(c.f, pe, cap, &pkl, err)) != TTSM_OK)
        goto done;
    if (!(arena = ttsm__pickle_arena_new())) {
        st = ttsm__err(err, TTSM_ERR_OUT_OF_MEMORY, c.f->path, "out of memory", "unpickling");
        goto done;
    }
    char stream[300];
    snprintf(stream, sizeof stream, "%.*s/data.pkl", (int)c.root_len, c.root);
    ttsm__pickle_src src = {pkl ? pkl : "", (size_t)pe->size, c.f->path, stream, 0,
                            zip_storage, &c};
    ttsm__pv *root;
    if ((st = ttsm__pickle_load(arena, &src, &root, NULL, NULL, err)) != TTSM_OK)
        goto done;
    slot_storage = ttsm__calloc(c.n_slots ? c.n_slots : 1, sizeof *slot_storage);
    if (!slot_storage) {
        st = ttsm__err(err, TTSM_ERR_OUT_OF_MEMORY, c.f->path, "out of memory", "storages");
        goto done;
    }
    if ((st = zip_storages(&c, file_index, slot_storage, err)) != TTSM_OK)
        goto done;
    if ((st = ttsm__torch_flatten(ck, root, arena, slot_storage, c.n_slots, c.f->path, err)) != TTSM_OK)
        goto done;
    ck->format = TTSM_FORMAT_PYTORCH_ZIP;
done:
    ttsm__pickle_arena_free(arena);
    ttsm__free(slot_storage);
    ttsm__free(pkl);
    ctx_reset(&c);
    ttsm__zip_close(&z);
    return st;
}

/* ---- legacy (pre-1.6) files ------------------------------------------------ */

/* Layout: five pickles back to back - the magic number
 * 0x1950a86a20f9469cfc6c, the protocol version 1001, a sys_info dict, the
 * object, the list of storage keys - then for each listed key an int64
 * element count and the storage's raw bytes. */

static const uint8_t legacy_magic[10] = {0x6c, 0xfc, 0x9c, 0x46, 0xf9,
                                         0x20, 0x6a, 0xa8, 0x50, 0x19};

static ttsm_status legacy_storage(void *vc, const char *key, size_t len, uint64_t nbytes,
                                  uint32_t elem_size, uint64_t off, uint32_t *slot,
                                  ttsm_error *err)
{
    int is_new;
    return slot_for(vc, key, len, nbytes, elem_size, off, slot, &is_new, err);
}

static const ttsm__pv *dict_get(const ttsm__pv *d, const char *key)
{
    size_t kl = strlen(key);
    for (size_t i = 0; d->kind == TTSM__PV_DICT && i + 1 < d->u.seq.n; i += 2) {
        const ttsm__pv *k = d->u.seq.items[i];
        if (k->kind == TTSM__PV_STR && k->u.s.n == kl && memcmp(k->u.s.p, key, kl) == 0)
            return d->u.seq.items[i + 1];
    }
    return NULL;
}

typedef struct legacy_parts {
    ttsm__pv *obj, *keys;
    uint64_t data_start;
} legacy_parts;

static ttsm_status legacy_parse(torch_ctx *c, ttsm__pickle_arena *arena, const uint8_t *buf,
                                size_t len, legacy_parts *out, int *truncated, ttsm_error *err)
{
    static const char *const streams[5] = {"legacy magic pickle", "legacy protocol pickle",
                                           "legacy sys_info pickle", "legacy object pickle",
                                           "legacy storage-key pickle"};
    const char *path = c->f->path;
    ttsm__pv *v[5];
    size_t pos = 0;
    for (int i = 0; i < 5; i++) {
        ttsm__pickle_src src = {buf + pos, len - pos, path, streams[i], pos,
                                i == 3 ? legacy_storage : NULL, c};
        size_t used;
        ttsm_status st = ttsm__pickle_load(arena, &src, &v[i], &used, truncated, err);
        if (st != TTSM_OK)
            return st;
        pos += used;
        if (i == 0 && (v[0]->kind != TTSM__PV_BIGINT || v[0]->u.s.n != sizeof legacy_magic ||
                       memcmp(v[0]->u.s.p, legacy_magic, sizeof legacy_magic) != 0))
            return ttsm__err(err, TTSM_ERR_FORMAT, path, "not a PyTorch checkpoint",
                             "a bare pickle without the torch.save magic number; ttsm reads "
                             "torch.save files, not arbitrary pickles");
        if (i == 0)
            c->legacy_magic_ok = 1;
    }
    if (v[1]->kind != TTSM__PV_INT || v[1]->u.i != LEGACY_VERSION)
        return ttsm__err(err, TTSM_ERR_FORMAT, path, "unsupported legacy version",
                         "the legacy protocol version is not %u", LEGACY_VERSION);
    const ttsm__pv *le = v[2]->kind == TTSM__PV_DICT ? dict_get(v[2], "little_endian") : NULL;
    if (!le || le->kind != TTSM__PV_BOOL)
        return ttsm__err(err, TTSM_ERR_FORMAT, path, "bad legacy header",
                         "sys_info has no little_endian flag");
    if (!le->u.i)
        return ttsm__err(err, TTSM_ERR_FORMAT, path, "big-endian checkpoint",
                         "sys_info says the file was written big-endian; ttsm reads "
                         "little-endian tensor data only");
    if (v[4]->kind != TTSM__PV_LIST)
        return ttsm__err(err, TTSM_ERR_FORMAT, path, "bad legacy storage list",
                         "the pickle after the object is not a list of storage keys");
    out->obj = v[3];
    out->keys = v[4];
    out->data_start = pos;
    return TTSM_OK;
}

static ttsm_status legacy_storages(torch_ctx *c, uint32_t file_index, const legacy_parts *lp,
                                   uint32_t *slot_storage, ttsm_error *err)
{
    const char *path = c->f->path;
    uint64_t off = lp->data_start;
    for (size_t i = 0; i < lp->keys->u.seq.n; i++) {
        const ttsm__pv *k = lp->keys->u.seq.items[i];
        if (k->kind != TTSM__PV_STR)
            return ttsm__err(err, TTSM_ERR_FORMAT, path, "bad legacy storage list",
                             "item %zu is a %s, not a key", i,
                             k->kind == TTSM__PV_INT ? "int" : "non-string");
        size_t h = c->hash_cap ? hash_slot(c, k->u.s.p, k->u.s.n) : 0;
        if (!c->hash_cap || !c->hash[h])
            return ttsm__err(err, TTSM_ERR_FORMAT, path, "bad legacy storage list",
                             "storage '%.*s' is listed but no tensor uses it", (int)k->u.s.n,
                             k->u.s.p);
        uint32_t s = c->hash[h] - 1;
        slot_info *si = &c->slots[s];
        if (si->listed)
            return ttsm__err(err, TTSM_ERR_FORMAT, path, "bad legacy storage list",
                             "storage '%.*s' is listed twice", (int)k->u.s.n, k->u.s.p);
        si->listed = 1;
        unsigned char nb[8];
        ttsm_status st = ttsm__file_read(c->f, off, nb, sizeof nb, err);
        if (st != TTSM_OK)
            return st;
        uint64_t numel = 0, nbytes;
        for (int b = 7; b >= 0; b--)
            numel = numel << 8 | nb[b];
        if (__builtin_mul_overflow(numel, (uint64_t)si->elem_size, &nbytes) ||
            nbytes != si->nbytes)
            return ttsm__err(err, TTSM_ERR_FORMAT, path, "storage size mismatch",
                             "storage '%.*s' at offset %llu records %llu elements; the pickle "
                             "describes %llu bytes of %u-byte elements",
                             (int)k->u.s.n, k->u.s.p, (unsigned long long)off,
                             (unsigned long long)numel, (unsigned long long)si->nbytes,
                             si->elem_size);
        if ((st = ttsm__ckpt_add_storage(c->ck, file_index, off + 8, nbytes, NULL,
                                         &slot_storage[s], err)) != TTSM_OK)
            return st;
        off += 8 + nbytes; /* both within the file: add_storage checked */
    }
    for (size_t s = 0; s < c->n_slots; s++)
        if (!c->slots[s].listed)
            return ttsm__err(err, TTSM_ERR_FORMAT, path, "bad legacy storage list",
                             "storage '%.*s' is used but its data is not listed",
                             (int)c->slots[s].key_len, c->slots[s].key);
    return TTSM_OK;
}

static ttsm_status read_legacy(ttsm_checkpoint *ck, uint32_t file_index, ttsm_error *err)
{
    torch_ctx c;
    memset(&c, 0, sizeof c);
    c.ck = ck;
    c.f = &ck->files[file_index];
    const ttsm__file *f = c.f;
    uint64_t limit = f->size < TTSM__PICKLE_MAX_BYTES ? f->size : TTSM__PICKLE_MAX_BYTES;
    const uint8_t *direct = f->mem ? f->mem : (const uint8_t *)f->map;
    uint8_t *buf = NULL;
    uint32_t *slot_storage = NULL;
    ttsm__pickle_arena *arena = NULL;
    legacy_parts lp = {0};
    ttsm_status st;
    /* The pickles' length is only known by parsing them. With the file in
     * memory they are parsed in place; in read mode a growing prefix is
     * read until they fit, so opening never reads the tensor data. */
    size_t want = direct ? (size_t)limit : (size_t)(limit < (1u << 20) ? limit : (1u << 20));
    for (;;) {
        int truncated = 0;
        const uint8_t *p = direct;
        if (!direct) {
            uint8_t *nb = ttsm__realloc(buf, want ? want : 1);
            if (!nb) {
                st = ttsm__err(err, TTSM_ERR_OUT_OF_MEMORY, f->path, "out of memory",
                               "reading %zu bytes of pickles", want);
                goto done;
            }
            buf = nb;
            if ((st = ttsm__file_read(f, 0, buf, want, err)) != TTSM_OK)
                goto done;
            p = buf;
        }
        ttsm__pickle_arena_free(arena);
        ctx_reset(&c);
        if (!(arena = ttsm__pickle_arena_new())) {
            st = ttsm__err(err, TTSM_ERR_OUT_OF_MEMORY, f->path, "out of memory", "unpickling");
            goto done;
        }
        st = legacy_parse(&c, arena, p, want, &lp, &truncated, err);
        if (st == TTSM_OK || !truncated || want >= limit)
            break;
        want = limit / 4 < want ? (size_t)limit : want * 4;
    }
    if (st != TTSM_OK) {
        /* Refusals carry their own hint; other failures of a file that is
         * a legacy torch.save stream say how to get a zip archive instead. */
        if (c.legacy_magic_ok && err && !err->hint[0])
            ttsm__err_hint(err, "this is a legacy (pre-1.6) torch.save file; re-save it with "
                                "PyTorch >= 1.6: torch.save(torch.load(f, weights_only=True), "
                                "out)");
        goto done;
    }
    slot_storage = ttsm__calloc(c.n_slots ? c.n_slots : 1, sizeof *slot_storage);
    if (!slot_storage) {
        st = ttsm__err(err, TTSM_ERR_OUT_OF_MEMORY, f->path, "out of memory", "storages");
        goto done;
    }
    if ((st = legacy_storages(&c, file_index, &lp, slot_storage, err)) != TTSM_OK)
        goto done;
    if ((st = ttsm__torch_flatten(ck, lp.obj, arena, slot_storage, c.n_slots, f->path,
                                  err)) != TTSM_OK)
        goto done;
    ck->format = TTSM_FORMAT_PYTORCH_ZIP;
    ck->version = LEGACY_VERSION;
done:
    ttsm__pickle_arena_free(arena);
    ttsm__free(slot_storage);
    ttsm__free(buf);
    ctx_reset(&c);
    return st;
}

ttsm_status ttsm__read_torch_zip(ttsm_checkpoint *ck, uint32_t file_index, ttsm_error *err)
{
    unsigned char h[2] = {0, 0};
    const ttsm__file *f = &ck->files[file_index];
    ttsm_status st = ttsm__file_read(f, 0, h, f->size < 2 ? (size_t)f->size : 2, err);
    if (st != TTSM_OK)
        return st;
    if (h[0] == 0x80)
        return read_legacy(ck, file_index, err);
    return read_zip(ck, file_index, err);
}

/* ---- JSON ------------------------------------------------------------------- */

typedef struct jbuf {
    char *p;
    size_t n, cap;
    int failed; /* 1 out of memory, 2 over MAX_JSON_BYTES */
} jbuf;

static void jput(jbuf *b, const char *s, size_t n)
{
    if (b->failed)
        return;
    if (n > MAX_JSON_BYTES - b->n) {
        b->failed = 2;
        return;
    }
    if (b->n + n + 1 > b->cap &&
        ttsm__grow((void **)&b->p, &b->cap, b->n + n + 1, 1, MAX_JSON_BYTES + 1) != 0) {
        b->failed = 1;
        return;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}

static void jputs(jbuf *b, const char *s)
{
    jput(b, s, strlen(s));
}

/* A JSON string. Input is UTF-8 as Python writes it; encoded surrogates
 * (which strict JSON readers reject) become U+FFFD. */
static void jstr(jbuf *b, const char *s, size_t n)
{
    jputs(b, "\"");
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        const char *esc = NULL;
        char tmp[8];
        size_t skip = 0;
        if (ch == '"')
            esc = "\\\"";
        else if (ch == '\\')
            esc = "\\\\";
        else if (ch == '\n')
            esc = "\\n";
        else if (ch == '\t')
            esc = "\\t";
        else if (ch == '\r')
            esc = "\\r";
        else if (ch < 0x20) {
            snprintf(tmp, sizeof tmp, "\\u%04x", ch);
            esc = tmp;
        } else if (ch == 0xed && i + 2 < n && (unsigned char)s[i + 1] >= 0xa0) {
            esc = "\\ufffd";
            skip = 2;
        }
        if (esc) {
            jput(b, s + i - run, run);
            run = 0;
            jputs(b, esc);
            i += skip;
        } else {
            run++;
        }
    }
    jput(b, s + n - run, run);
    jputs(b, "\"");
}

/* Decimal text of a little-endian two's complement integer (<= 1024 bytes). */
static void bigint_text(jbuf *b, const uint8_t *p, size_t n)
{
    uint32_t limbs[TTSM__PICKLE_MAX_LONG / 4 + 1];
    size_t nl = (n + 3) / 4;
    int neg = n && (p[n - 1] & 0x80);
    for (size_t i = 0; i < nl; i++) {
        uint32_t x = 0;
        for (size_t j = 0; j < 4; j++) {
            size_t at = i * 4 + j;
            uint32_t byte = at < n ? p[at] : (neg ? 0xffu : 0u);
            x |= byte << (8 * j);
        }
        limbs[i] = x;
    }
    if (neg) {
        uint64_t carry = 1;
        for (size_t i = 0; i < nl; i++) {
            uint64_t x = (uint64_t)(uint32_t)~limbs[i] + carry;
            limbs[i] = (uint32_t)x;
            carry = x >> 32;
        }
    }
    uint32_t chunks[TTSM__PICKLE_MAX_LONG / 3 + 2]; /* base 10^9 digits, least first */
    size_t nc = 0;
    while (nl > 0 && limbs[nl - 1] == 0)
        nl--;
    while (nl > 0) {
        uint64_t rem = 0;
        for (size_t i = nl; i-- > 0;) {
            uint64_t cur = rem << 32 | limbs[i];
            limbs[i] = (uint32_t)(cur / 1000000000u);
            rem = cur % 1000000000u;
        }
        chunks[nc++] = (uint32_t)rem;
        while (nl > 0 && limbs[nl - 1] == 0)
            nl--;
    }
    char tmp[16];
    if (neg)
        jputs(b, "-");
    if (nc == 0)
        jputs(b, "0");
    for (size_t i = nc; i-- > 0;) {
        snprintf(tmp, sizeof tmp, i == nc - 1 ? "%u" : "%09u", chunks[i]);
        jputs(b, tmp);
    }
}

/* Shortest text that reads back as the same double, with '.' as the
 * decimal point whatever the locale. Not finite: "NaN", "Infinity". */
static void float_text(jbuf *b, double x, int quote_special)
{
    if (isnan(x) || isinf(x)) {
        const char *s = isnan(x) ? "NaN" : x > 0 ? "Infinity" : "-Infinity";
        if (quote_special)
            jstr(b, s, strlen(s));
        else
            jputs(b, s);
        return;
    }
    char tmp[40];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*g", prec, x);
        if (strtod(tmp, NULL) == x)
            break;
    }
    int has_point = 0;
    for (char *q = tmp; *q; q++) {
        if (*q == ',' || (*q != '-' && *q != '+' && *q != 'e' && (*q < '0' || *q > '9')))
            *q = '.';
        if (*q == '.' || *q == 'e')
            has_point = 1;
    }
    jputs(b, tmp);
    if (!has_point)
        jputs(b, ".0");
}

/* ---- flattening --------------------------------------------------------- */

#define SC_DONE 1u
#define SC_HAS 2u
#define SC_BUSY 4u

typedef struct fl {
    ttsm_checkpoint *ck;
    const uint32_t *slots;
    size_t n_slots;
    const char *subject;
    ttsm_error *err;
    jbuf name;
    uint64_t visits, max_visits;
} fl;

/* The current name for messages. */
#define NAME(f) ((f)->name.n ? (f)->name.p : "(root)")

static ttsm_status visit(fl *f, unsigned depth)
{
    if (++f->visits > f->max_visits)
        return ttsm__err(f->err, TTSM_ERR_FORMAT, f->subject, "pickle too large to flatten",
                         "more than %llu values visited for an object of %llu values and "
                         "references (shared containers nested many times?)",
                         (unsigned long long)f->max_visits,
                         (unsigned long long)((f->max_visits - 1024) / 4));
    if (depth > TTSM__PICKLE_MAX_DEPTH)
        return ttsm__err(f->err, TTSM_ERR_FORMAT, f->subject, "nesting too deep",
                         "containers nest deeper than %u levels at '%.200s'",
                         TTSM__PICKLE_MAX_DEPTH, NAME(f));
    return TTSM_OK;
}

static int is_container(const ttsm__pv *v)
{
    return v->kind == TTSM__PV_TUPLE || v->kind == TTSM__PV_LIST || v->kind == TTSM__PV_DICT;
}

/* Whether a value holds a tensor anywhere below; detects containers that
 * contain themselves. Results are cached in scratch. */
static ttsm_status has_tensor(fl *f, ttsm__pv *v, unsigned depth, int *out)
{
    ttsm_status st = visit(f, depth);
    if (st != TTSM_OK)
        return st;
    if (v->kind == TTSM__PV_TENSOR || v->kind == TTSM__PV_STORAGE) {
        *out = 1;
        return TTSM_OK;
    }
    if (!is_container(v)) {
        *out = 0;
        return TTSM_OK;
    }
    if (v->scratch & SC_DONE) {
        *out = (v->scratch & SC_HAS) != 0;
        return TTSM_OK;
    }
    if (v->scratch & SC_BUSY)
        return ttsm__err(f->err, TTSM_ERR_FORMAT, f->subject, "recursive container",
                         "a %s contains itself (at '%.200s')",
                         v->kind == TTSM__PV_DICT ? "dict" : "list",
                         NAME(f));
    v->scratch |= SC_BUSY;
    int any = 0;
    size_t step = v->kind == TTSM__PV_DICT ? 2 : 1;
    for (size_t i = step - 1; i < v->u.seq.n && !any; i += step)
        if ((st = has_tensor(f, v->u.seq.items[i], depth + 1, &any)) != TTSM_OK)
            return st;
    v->scratch = (uint8_t)((v->scratch & ~SC_BUSY) | SC_DONE | (any ? SC_HAS : 0));
    *out = any;
    return TTSM_OK;
}

/* Appends a dict key or list index as text (names and JSON keys). */
static ttsm_status key_text(fl *f, jbuf *b, const ttsm__pv *k)
{
    char tmp[32];
    switch (k->kind) {
    case TTSM__PV_STR:
        jput(b, k->u.s.p, k->u.s.n);
        return TTSM_OK;
    case TTSM__PV_INT:
        snprintf(tmp, sizeof tmp, "%lld", (long long)k->u.i);
        jputs(b, tmp);
        return TTSM_OK;
    case TTSM__PV_BIGINT:
        bigint_text(b, (const uint8_t *)k->u.s.p, k->u.s.n);
        return TTSM_OK;
    case TTSM__PV_BOOL:
        jputs(b, k->u.i ? "True" : "False");
        return TTSM_OK;
    case TTSM__PV_NONE:
        jputs(b, "None");
        return TTSM_OK;
    case TTSM__PV_FLOAT:
        float_text(b, k->u.f, 0);
        return TTSM_OK;
    default:
        return ttsm__err(f->err, TTSM_ERR_FORMAT, f->subject, "unsupported dict key",
                         "a dict at '%.200s' has a key that is not a str, int, float, bool or "
                         "None",
                         NAME(f));
    }
}

static const char *meta_type(const ttsm__pv *v)
{
    ttsm_dtype dt;
    switch (v->kind) {
    case TTSM__PV_NONE: return "none";
    case TTSM__PV_BOOL: return "bool";
    case TTSM__PV_INT:
    case TTSM__PV_BIGINT: return "int";
    case TTSM__PV_FLOAT: return "float";
    case TTSM__PV_STR: return "str";
    case TTSM__PV_BYTES: return "bytes";
    case TTSM__PV_TUPLE: return "tuple";
    case TTSM__PV_LIST: return "list";
    case TTSM__PV_DICT: return "dict";
    case TTSM__PV_GLOBAL: return ttsm__pickle_global_dtype(v->u.global, &dt) ? "dtype" : "global";
    default: return "?";
    }
}

static ttsm_status json_value(fl *f, jbuf *b, const ttsm__pv *v, unsigned depth)
{
    ttsm_status st = visit(f, depth);
    if (st != TTSM_OK)
        return st;
    char tmp[96];
    switch (v->kind) {
    case TTSM__PV_NONE: jputs(b, "null"); break;
    case TTSM__PV_BOOL: jputs(b, v->u.i ? "true" : "false"); break;
    case TTSM__PV_INT:
        snprintf(tmp, sizeof tmp, "%lld", (long long)v->u.i);
        jputs(b, tmp);
        break;
    case TTSM__PV_BIGINT: /* as a string: many JSON readers stop at 64 bits */
        jputs(b, "\"");
        bigint_text(b, (const uint8_t *)v->u.s.p, v->u.s.n);
        jputs(b, "\"");
        break;
    case TTSM__PV_FLOAT: float_text(b, v->u.f, 1); break;
    case TTSM__PV_STR: jstr(b, v->u.s.p, v->u.s.n); break;
    case TTSM__PV_BYTES: /* hex digits */
        jputs(b, "\"");
        for (size_t i = 0; i < v->u.s.n; i++) {
            snprintf(tmp, sizeof tmp, "%02x", (unsigned char)v->u.s.p[i]);
            jput(b, tmp, 2);
        }
        jputs(b, "\"");
        break;
    case TTSM__PV_GLOBAL:
        ttsm__pickle_global_name(v->u.global, tmp, sizeof tmp);
        jstr(b, tmp, strlen(tmp));
        break;
    case TTSM__PV_TUPLE:
    case TTSM__PV_LIST:
        if (v->scratch & SC_BUSY)
            return ttsm__err(f->err, TTSM_ERR_FORMAT, f->subject, "recursive container",
                             "a list contains itself (at '%.200s')", NAME(f));
        ((ttsm__pv *)v)->scratch |= SC_BUSY;
        jputs(b, "[");
        for (size_t i = 0; i < v->u.seq.n; i++) {
            if (i)
                jputs(b, ",");
            if ((st = json_value(f, b, v->u.seq.items[i], depth + 1)) != TTSM_OK)
                return st;
        }
        jputs(b, "]");
        ((ttsm__pv *)v)->scratch &= (uint8_t)~SC_BUSY;
        break;
    case TTSM__PV_DICT:
        if (v->scratch & SC_BUSY)
            return ttsm__err(f->err, TTSM_ERR_FORMAT, f->subject, "recursive container",
                             "a dict contains itself (at '%.200s')", NAME(f));
        ((ttsm__pv *)v)->scratch |= SC_BUSY;
        jputs(b, "{");
        for (size_t i = 0; i + 1 < v->u.seq.n; i += 2) {
            jbuf k = {0};
            if (i)
                jputs(b, ",");
            st = key_text(f, &k, v->u.seq.items[i]);
            if (st == TTSM_OK && k.failed)
                st = ttsm__err(f->err, TTSM_ERR_OUT_OF_MEMORY, f->subject, "out of memory",
                               "formatting metadata");
            /* JSON could carry it as \u0000, but common readers (jansson)
             * refuse NUL in object keys; names refuse it too. */
            if (st == TTSM_OK && k.n && memchr(k.p, '\0', k.n))
                st = ttsm__err(f->err, TTSM_ERR_FORMAT, f->subject, "bad name",
                               "a dict key inside metadata '%.200s' holds a NUL byte", NAME(f));
            if (st == TTSM_OK)
                jstr(b, k.p ? k.p : "", k.n);
            ttsm__free(k.p);
            if (st != TTSM_OK)
                return st;
            jputs(b, ":");
            if ((st = json_value(f, b, v->u.seq.items[i + 1], depth + 1)) != TTSM_OK)
                return st;
        }
        jputs(b, "}");
        ((ttsm__pv *)v)->scratch &= (uint8_t)~SC_BUSY;
        break;
    default:
        return ttsm__err(f->err, TTSM_ERR_FORMAT, f->subject, "bad metadata",
                         "a %s at '%.200s' cannot be metadata", meta_type(v), NAME(f));
    }
    if (b->failed)
        return ttsm__err(f->err, b->failed == 1 ? TTSM_ERR_OUT_OF_MEMORY : TTSM_ERR_FORMAT,
                         f->subject, b->failed == 1 ? "out of memory" : "metadata too large",
                         "value '%.200s' (the limit is %u bytes of JSON)", NAME(f),
                         MAX_JSON_BYTES);
    return TTSM_OK;
}

static ttsm_status name_ok(fl *f)
{
    if (f->name.failed || f->name.n > TTSM__MAX_NAME_LEN)
        return ttsm__err(f->err, f->name.failed == 1 ? TTSM_ERR_OUT_OF_MEMORY : TTSM_ERR_FORMAT,
                         f->subject, "name too long",
                         "a dotted tensor or metadata name passes %u bytes",
                         TTSM__MAX_NAME_LEN);
    if (f->name.n && memchr(f->name.p, '\0', f->name.n))
        return ttsm__err(f->err, TTSM_ERR_FORMAT, f->subject, "bad name",
                         "a dict key holds a NUL byte ('%s...')", NAME(f));
    return TTSM_OK;
}

static ttsm_status add_meta(fl *f, const ttsm__pv *v, unsigned depth)
{
    jbuf j = {0};
    ttsm_status st = json_value(f, &j, v, depth);
    if (st == TTSM_OK)
        st = ttsm__ckpt_add_meta(f->ck, f->name.n ? f->name.p : "value", meta_type(v), j.p, f->err);
    ttsm__free(j.p);
    return st;
}

static ttsm_status add_tensor(fl *f, const ttsm__pv *v)
{
    ttsm__tensor_desc d;
    memset(&d, 0, sizeof d);
    d.name = f->name.n ? f->name.p : "tensor";
    d.name_len = f->name.n ? f->name.n : 6;
    const ttsm__pv *s = v->kind == TTSM__PV_STORAGE ? v : v->u.tensor.storage;
    if (s->u.storage.slot >= f->n_slots)
        return ttsm__err(f->err, TTSM_ERR_FORMAT, f->subject, "bad storage",
                         "tensor '%.200s' names storage slot %u of %zu", d.name, s->u.storage.slot,
                         f->n_slots);
    d.storage = f->slots[s->u.storage.slot];
    int64_t numel;
    if (v->kind == TTSM__PV_STORAGE) {
        /* A bare storage: its bytes as a 1-D tensor of its element type. */
        uint32_t bb = 1;
        ttsm_dtype_block(s->u.storage.dtype, NULL, &bb);
        numel = (int64_t)(s->u.storage.nbytes / bb);
        d.dtype = s->u.storage.dtype;
        d.rank = 1;
        d.shape = &numel;
    } else {
        d.dtype = v->u.tensor.dtype;
        d.rank = v->u.tensor.rank;
        d.shape = v->u.tensor.shape;
        d.strides = v->u.tensor.strides;
        d.storage_offset = v->u.tensor.offset;
    }
    return ttsm__ckpt_add_tensor(f->ck, &d, f->err);
}

static ttsm_status flatten(fl *f, ttsm__pv *v, unsigned depth)
{
    ttsm_status st = visit(f, depth);
    if (st != TTSM_OK || (st = name_ok(f)) != TTSM_OK)
        return st;
    if (v->kind == TTSM__PV_TENSOR || v->kind == TTSM__PV_STORAGE)
        return add_tensor(f, v);
    int descend = 0;
    if (is_container(v) && (depth == 0 || ((st = has_tensor(f, v, depth, &descend)) == TTSM_OK &&
                                           descend)))
        descend = 1;
    if (st != TTSM_OK)
        return st;
    if (!descend)
        return add_meta(f, v, depth);
    /* Descend: each item under "<name>.<key>" (no dot at the root). */
    size_t step = v->kind == TTSM__PV_DICT ? 2 : 1;
    size_t keep = f->name.n;
    for (size_t i = 0; i < v->u.seq.n; i += step) {
        if (keep)
            jputs(&f->name, ".");
        if (v->kind == TTSM__PV_DICT) {
            if ((st = key_text(f, &f->name, v->u.seq.items[i])) != TTSM_OK)
                return st;
        } else {
            char tmp[32];
            snprintf(tmp, sizeof tmp, "%zu", i);
            jputs(&f->name, tmp);
        }
        if ((st = flatten(f, v->u.seq.items[i + step - 1], depth + 1)) != TTSM_OK)
            return st;
        f->name.n = keep;
        if (f->name.p)
            f->name.p[keep] = '\0';
    }
    return TTSM_OK;
}

ttsm_status ttsm__torch_flatten(ttsm_checkpoint *ck, ttsm__pv *root,
                                const ttsm__pickle_arena *arena, const uint32_t *slot_storage,
                                size_t n_slots, const char *subject, ttsm_error *err)
{
    fl f;
    memset(&f, 0, sizeof f);
    uint64_t refs = ttsm__pickle_arena_refs(arena);
    f.max_visits = refs > (TTSM__PICKLE_MAX_VISITS - 1024) / 4 ? TTSM__PICKLE_MAX_VISITS
                                                               : refs * 4 + 1024;
    f.ck = ck;
    f.slots = slot_storage;
    f.n_slots = n_slots;
    f.subject = subject;
    f.err = err;
    jputs(&f.name, "");
    ttsm_status st = flatten(&f, root, 0);
    ttsm__free(f.name.p);
    return st;
}
