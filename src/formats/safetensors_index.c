/* safetensors_index.c - HuggingFace sharded checkpoints: a JSON index
 * (`*.safetensors.index.json`) whose "weight_map" maps every tensor to a
 * shard file in the index's folder. Opens each shard with the safetensors
 * reader and checks that shards and map agree exactly, so one table holds
 * every tensor once. Rules: docs/formats/safetensors.md. */
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "base/alloc.h"
#include "formats/safetensors_index.h"
#include "base/json.h"
#include "base/text.h"
#include "formats/safetensors.h"

#define NAME_SHOW 160

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

void ttsm__st_index_free(ttsm__st_index *ix)
{
    if (!ix)
        return;
    ttsm__free((void *)ix->shards);
    json_decref(ix->root);
    memset(ix, 0, sizeof *ix);
}

/* Shard names must stay in the index's folder: a plain file name. */
static ttsm_status check_shard_name(const char *subject, const char *tensor, size_t tlen,
                                    const json_t *v, ttsm_error *err)
{
    char t[NAME_SHOW], s[NAME_SHOW];
    ttsm__printable(tensor, tlen, t, sizeof t);
    if (!json_is_string(v))
        return ttsm__err(err, TTSM_ERR_FORMAT, subject, "bad shard name",
                         "weight_map entry '%s' is a JSON %s, not a file name", t,
                         ttsm__json_kind(v));
    const char *name = json_string_value(v);
    size_t len = json_string_length(v);
    ttsm__printable(name, len, s, sizeof s);
    const char *why = NULL;
    if (len == 0)
        why = "is empty";
    else if (memchr(name, '\0', len))
        why = "holds a NUL byte";
    else if (len > TTSM__ST_MAX_SHARD_NAME)
        why = "is longer than 255 bytes";
    if (why)
        return ttsm__err(err, TTSM_ERR_FORMAT, subject, "bad shard name",
                         "weight_map entry '%s' names a shard that %s", t, why);
    if (name[0] == '/')
        why = "is an absolute path";
    else if (strchr(name, '/') || strchr(name, '\\'))
        why = "holds a path separator";
    else if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
        why = "is '.' or '..'";
    if (why)
        return ttsm__err(err, TTSM_ERR_FORMAT, subject, "unsafe shard name",
                         "weight_map entry '%s' names '%s', which %s; shards must be plain file "
                         "names in the index's folder",
                         t, s, why);
    return TTSM_OK;
}

ttsm_status ttsm__st_index_parse(const char *subject, const void *data, size_t len,
                                 ttsm__st_index *out, ttsm_error *err)
{
    ttsm__st_index ix;
    memset(&ix, 0, sizeof ix);
    memset(out, 0, sizeof *out);
    ttsm_status st = TTSM_OK;
    size_t bad = ttsm__utf8_check(data, len);
    if (bad < len)
        return ttsm__err(err, TTSM_ERR_FORMAT, subject, "index not UTF-8",
                         "invalid UTF-8 byte 0x%02x at offset %zu",
                         ((const unsigned char *)data)[bad], bad);
    json_error_t je;
    ix.root = json_loadb(data, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &je);
    if (!ix.root) {
        enum json_error_code code = json_error_code(&je);
        if (ttsm__json_oom(&je))
            return ttsm__err(err, TTSM_ERR_OUT_OF_MEMORY, subject, "out of memory",
                             "parsing the index");
        return ttsm__err(err, TTSM_ERR_FORMAT, subject,
                         code == json_error_duplicate_key ? "duplicate key" : "invalid JSON",
                         "%s at offset %d (line %d, column %d)", je.text, je.position, je.line,
                         je.column);
    }
    if (!json_is_object(ix.root)) {
        st = ttsm__err(err, TTSM_ERR_FORMAT, subject, "not a sharded index",
                       "the file is a JSON %s, not an object with a weight_map",
                       ttsm__json_kind(ix.root));
        goto fail;
    }
    ix.weight_map = json_object_get(ix.root, "weight_map");
    if (!ix.weight_map) {
        st = ttsm__err(err, TTSM_ERR_FORMAT, subject, "not a sharded index",
                       "a JSON object without \"weight_map\" (a config or tokenizer file?)");
        goto fail;
    }
    if (!json_is_object(ix.weight_map)) {
        st = ttsm__err(err, TTSM_ERR_FORMAT, subject, "bad weight_map",
                       "weight_map is a JSON %s, not an object of tensor name -> shard file",
                       ttsm__json_kind(ix.weight_map));
        goto fail;
    }
    size_t n = json_object_size(ix.weight_map);
    if (n == 0) {
        st = ttsm__err(err, TTSM_ERR_FORMAT, subject, "empty weight_map",
                       "the weight_map names no tensors, so there is nothing to load");
        goto fail;
    }
    if (n > TTSM__MAX_TENSORS) {
        st = ttsm__err(err, TTSM_ERR_FORMAT, subject, "too many tensors",
                       "the weight_map has %zu entries, the limit is %u", n, TTSM__MAX_TENSORS);
        goto fail;
    }
    ix.metadata = json_object_get(ix.root, "metadata");
    if (ix.metadata && json_is_null(ix.metadata))
        ix.metadata = NULL;
    if (ix.metadata && !json_is_object(ix.metadata)) {
        st = ttsm__err(err, TTSM_ERR_FORMAT, subject, "bad metadata",
                       "metadata is a JSON %s, not an object", ttsm__json_kind(ix.metadata));
        goto fail;
    }
    ix.shards = ttsm__malloc(n * sizeof *ix.shards);
    if (!ix.shards) {
        st = ttsm__err(err, TTSM_ERR_OUT_OF_MEMORY, subject, "out of memory",
                       "listing %zu shard names", n);
        goto fail;
    }
    const char *k;
    size_t klen;
    json_t *v;
    size_t i = 0;
    json_object_keylen_foreach(ix.weight_map, k, klen, v)
    {
        if (klen == 0) {
            st = ttsm__err(err, TTSM_ERR_FORMAT, subject, "bad tensor name",
                           "the weight_map has an empty tensor name");
            goto fail;
        }
        if ((st = check_shard_name(subject, k, klen, v, err)) != TTSM_OK)
            goto fail;
        ix.shards[i++] = json_string_value(v);
    }
    qsort(ix.shards, n, sizeof *ix.shards, cmp_str);
    for (i = 0; i < n; i++)
        if (ix.n_shards == 0 || strcmp(ix.shards[ix.n_shards - 1], ix.shards[i]) != 0)
            ix.shards[ix.n_shards++] = ix.shards[i];
    if (ix.n_shards > TTSM__MAX_FILES) {
        st = ttsm__err(err, TTSM_ERR_FORMAT, subject, "too many shards",
                       "the weight_map names %zu shard files, the limit is %u", ix.n_shards,
                       TTSM__MAX_FILES);
        goto fail;
    }
    *out = ix;
    return TTSM_OK;
fail:
    ttsm__st_index_free(&ix);
    return st;
}

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

static size_t count_in_shard(const json_t *weight_map, const char *shard, const char **example)
{
    size_t c = 0;
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)weight_map, k, v)
    {
        if (strcmp(json_string_value(v), shard) == 0) {
            if (c++ == 0)
                *example = k;
        }
    }
    return c;
}

static const char *meta_type(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_STRING: return "str";
    case JSON_INTEGER: return "i64";
    case JSON_REAL: return "f64";
    case JSON_TRUE:
    case JSON_FALSE: return "bool";
    case JSON_NULL: return "null";
    case JSON_ARRAY: return "array";
    case JSON_OBJECT: return "object";
    }
    return "null";
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
            size_t c = count_in_shard(ix->weight_map, name, &example);
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
        ttsm__st_shard sh = {.weight_map = ix->weight_map, .name = name, .index_path = ck->path};
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
    if (ck->n_tensors == json_object_size(ix->weight_map))
        return TTSM_OK;
    const char *k;
    json_t *v;
    json_object_foreach(ix->weight_map, k, v)
    {
        if (!ttsm_checkpoint_find(ck, k)) {
            char t[NAME_SHOW];
            return ttsm__err(err, TTSM_ERR_FORMAT, ck->path, "tensor missing from shard",
                             "the weight_map places tensor '%s' in shard '%s', which does not "
                             "hold it",
                             ttsm__printable(k, strlen(k), t, sizeof t), json_string_value(v));
        }
    }
    return TTSM_OK; /* unreachable: every tensor added was checked against the map */
}

static ttsm_status add_index_metadata(ttsm_checkpoint *ck, const ttsm__st_index *ix,
                                      ttsm_error *err)
{
    if (!ix->metadata)
        return TTSM_OK;
    const char *k;
    json_t *v;
    json_object_foreach(ix->metadata, k, v)
    {
        char *text = ttsm__json_text(v);
        if (!text)
            return ttsm__err(err, TTSM_ERR_OUT_OF_MEMORY, ck->path, "out of memory",
                             "encoding metadata value");
        ttsm_status st = ttsm__ckpt_add_meta(ck, k, meta_type(v), text, err);
        ttsm__free(text);
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
    char *dir = NULL;
    void *buf = ttsm__malloc((size_t)f->size);
    if (!buf)
        return ttsm__err(err, TTSM_ERR_OUT_OF_MEMORY, f->path, "out of memory",
                         "reading a %llu-byte index", (unsigned long long)f->size);
    ttsm_status st = ttsm__file_read(f, 0, buf, (size_t)f->size, err);
    if (st == TTSM_OK)
        st = ttsm__st_index_parse(f->path, buf, (size_t)f->size, &ix, err);
    ttsm__free(buf);
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
    if ((st = open_shards(ck, &ix, dir, dir_len, err)) != TTSM_OK ||
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
