/* fuzz_st_diff.c - differential libFuzzer harness: the single-pass header
 * scanner (src/formats/jscan.c, under the safetensors and index readers)
 * against the jansson-based readers it replaced (st_oracle.h). The same
 * bytes go to both, read as a safetensors file, as an index, and (past an
 * 8-byte length) as an index again, each from memory and through a small
 * window as a file is read; both must accept or refuse, refuse by
 * the same rule (with the same message, except for JSON syntax, whose
 * wording is jansson's own), and accept with the same tensors, weight_map,
 * shards and metadata. Any difference aborts. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "st_oracle.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "fuzz_st_diff: %s (line %d)\n", #c, __LINE__);                         \
            __builtin_trap();                                                                      \
        }                                                                                          \
    } while (0)

/* "<subject>: <rule>: <detail>" -> rule. */
static void rule_of(const char *msg, const char *subject, char *out, size_t cap)
{
    size_t sl = strlen(subject);
    const char *r = strncmp(msg, subject, sl) == 0 && msg[sl] == ':' ? msg + sl + 2 : msg;
    const char *end = strstr(r, ": ");
    size_t n = end ? (size_t)(end - r) : strlen(r);
    if (n >= cap)
        n = cap - 1;
    memcpy(out, r, n);
    out[n] = '\0';
}

/* Syntax failures are worded by each parser in its own way. */
static int syntax_rule(const char *rule)
{
    return strcmp(rule, "invalid JSON header") == 0 || strcmp(rule, "duplicate key") == 0 ||
           strcmp(rule, "invalid JSON") == 0;
}

static void same_refusal(ttsm_status a, const ttsm_error *ea, ttsm_status b, const ttsm_error *eb,
                         const char *subject)
{
    char ra[128], rb[128];
    rule_of(ea->message, subject, ra, sizeof ra);
    rule_of(eb->message, subject, rb, sizeof rb);
    if (a != b || strcmp(ra, rb) != 0 || (!syntax_rule(ra) && strcmp(ea->message, eb->message)))
        fprintf(stderr, "scanner: %s\noracle:  %s\n", ea->message, eb->message);
    CHECK(a == b);
    CHECK(strcmp(ra, rb) == 0);
    if (!syntax_rule(ra))
        CHECK(strcmp(ea->message, eb->message) == 0);
}

static void diff_safetensors(const uint8_t *data, size_t size, size_t window)
{
    ttsm_checkpoint *a = NULL, *b = NULL;
    ttsm_error ea, eb;
    uint32_t fi;
    ttsm_status sa = ttsm__ckpt_new("diff.safetensors", NULL, &a, &ea);
    if (sa != TTSM_OK)
        return;
    a->json_window = window;
    sa = ttsm__ckpt_add_memory(a, "diff.safetensors", data, size, 0, &fi, &ea);
    if (sa == TTSM_OK)
        sa = ttsm__read_safetensors(a, fi, &ea);
    ttsm_status sb = oracle_open_safetensors(data, size, &b, &eb);
    if (sa == TTSM_ERR_OUT_OF_MEMORY || sb == TTSM_ERR_OUT_OF_MEMORY)
        goto done;
    if (sa != TTSM_OK || sb != TTSM_OK) {
        same_refusal(sa, &ea, sb, &eb, "diff.safetensors");
        goto done;
    }
    CHECK(ttsm_checkpoint_tensor_count(a) == ttsm_checkpoint_tensor_count(b));
    for (size_t i = 0; i < ttsm_checkpoint_tensor_count(a); i++) {
        const ttsm_tensor_info *x = ttsm_checkpoint_tensor(a, i), *y = ttsm_checkpoint_tensor(b, i);
        CHECK(strcmp(x->name, y->name) == 0);
        CHECK(ttsm_checkpoint_find(a, x->name) == x);
        CHECK(x->dtype == y->dtype && x->rank == y->rank && x->contiguous == y->contiguous);
        for (uint32_t k = 0; k < x->rank; k++)
            CHECK(x->shape[k] == y->shape[k] && x->strides[k] == y->strides[k]);
        CHECK(x->n_elements == y->n_elements && x->nbytes == y->nbytes);
        CHECK(x->file_index == y->file_index && x->file_offset == y->file_offset);
        CHECK(x->storage_index == y->storage_index && x->storage_offset == y->storage_offset);
    }
    CHECK(ttsm_checkpoint_metadata_count(a) == ttsm_checkpoint_metadata_count(b));
    for (size_t i = 0; i < ttsm_checkpoint_metadata_count(a); i++) {
        const ttsm_metadata_entry *x = ttsm_checkpoint_metadata(a, i),
                                  *y = ttsm_checkpoint_metadata(b, i);
        CHECK(strcmp(x->key, y->key) == 0 && strcmp(x->type, y->type) == 0 &&
              strcmp(x->json, y->json) == 0);
    }
done:
    ttsm_checkpoint_close(a);
    if (sb == TTSM_OK)
        ttsm_checkpoint_close(b);
}

static const char *oracle_meta_type(const json_t *v)
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

static void diff_index(const uint8_t *data, size_t size, size_t window)
{
    ttsm__st_index a;
    oracle_index b;
    ttsm_error ea, eb;
    ttsm_status sa = ttsm__st_index_parse_window("diff.index.json", data, size, window, &a, &ea);
    ttsm_status sb = oracle_index_parse("diff.index.json", data, size, &b, &eb);
    if (sa == TTSM_ERR_OUT_OF_MEMORY || sb == TTSM_ERR_OUT_OF_MEMORY)
        goto done;
    if (sa != TTSM_OK || sb != TTSM_OK) {
        same_refusal(sa, &ea, sb, &eb, "diff.index.json");
        goto done;
    }
    CHECK(a.n_shards == b.n_shards);
    for (size_t i = 0; i < a.n_shards; i++)
        CHECK(strcmp(a.shards[i], b.shards[i]) == 0);
    CHECK(a.n_map == json_object_size(b.weight_map));
    size_t i = 0;
    const char *k;
    size_t klen;
    json_t *v;
    json_object_keylen_foreach(b.weight_map, k, klen, v)
    {
        CHECK(a.map[i].name_len == klen && memcmp(a.map[i].name, k, klen) == 0);
        CHECK(strcmp(a.shards[a.map[i].shard], json_string_value(v)) == 0);
        CHECK(ttsm__st_index_find(&a, k, klen) == (long)i);
        i++;
    }
    CHECK(a.n_meta == (b.metadata ? json_object_size(b.metadata) : 0));
    i = 0;
    if (b.metadata) {
        json_object_foreach(b.metadata, k, v)
        {
            char *text = ttsm__json_text(v);
            CHECK(text != NULL);
            CHECK(strcmp(a.meta[i].key, k) == 0);
            CHECK(strcmp(a.meta[i].type, oracle_meta_type(v)) == 0);
            CHECK(strcmp(a.meta[i].json, text) == 0);
            ttsm__free(text);
            i++;
        }
    }
done:
    if (sa == TTSM_OK)
        ttsm__st_index_free(&a);
    if (sb == TTSM_OK)
        oracle_index_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* In memory, and through a small window as from a file, so that every
     * token can straddle a refill. */
    size_t window = 16 + size % 48;
    for (int w = 0; w < 2; w++) {
        diff_safetensors(data, size, w ? window : 0);
        diff_index(data, size, w ? window : 0);
        if (size > 8)
            diff_index(data + 8, size - 8, w ? window : 0);
    }
    return 0;
}
