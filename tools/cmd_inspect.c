/* cmd_inspect.c - `ttsm inspect FILE`: a checkpoint's format, files, tensor
 * count, total bytes, dtype histogram and metadata, and with --tensors every
 * tensor; --json prints the one schema every reader shares. */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#define SHORT_VALUE 72 /* metadata values longer than this are shortened */

/* ---- human form -------------------------------------------------------- */

/* Names and values come from untrusted files: never send control bytes to a
 * terminal. */
static void put_safe(FILE *out, const char *s, size_t max)
{
    size_t n = 0;
    for (; *s && n < max; s++, n++) {
        unsigned char c = (unsigned char)*s;
        fputc(c < 0x20 || c == 0x7f ? '?' : c, out);
    }
    if (*s)
        fputs("...", out);
}

static void put_bytes(FILE *out, uint64_t b)
{
    static const char *const unit[] = {"KiB", "MiB", "GiB", "TiB", "PiB"};
    fprintf(out, "%llu", (unsigned long long)b);
    if (b >= 1024) {
        double v = (double)b;
        int u = -1;
        while (v >= 1024 && u < 4) {
            v /= 1024;
            u++;
        }
        fprintf(out, " (%.1f %s)", v, unit[u]);
    }
}

static void put_shape(FILE *out, const ttsm_tensor_info *t)
{
    fputc('[', out);
    for (uint32_t i = 0; i < t->rank; i++)
        fprintf(out, "%s%lld", i ? ", " : "", (long long)t->shape[i]);
    fputc(']', out);
}

static void print_human(const char *path, const ttsm_checkpoint *ck, int tensors)
{
    size_t nf = ttsm_checkpoint_file_count(ck), nt = ttsm_checkpoint_tensor_count(ck);
    printf("path:        ");
    put_safe(stdout, path, 4096);
    printf("\nformat:      %s\nversion:     %u\nio mode:     %s\nfiles:       %zu\n",
           ttsm_format_name(ttsm_checkpoint_format(ck)), ttsm_checkpoint_version(ck),
           ttsm_checkpoint_io_mode(ck) == TTSM_IO_READ ? "read" : "mmap", nf);
    for (size_t i = 0; i < nf; i++) {
        printf("  [%zu] ", i);
        put_safe(stdout, ttsm_checkpoint_file_path(ck, i), 4096);
        printf("  ");
        put_bytes(stdout, ttsm_checkpoint_file_size(ck, i));
        printf(" bytes\n");
    }
    printf("tensors:     %zu\ntotal bytes: ", nt);
    put_bytes(stdout, ttsm_checkpoint_total_bytes(ck));
    printf("\ndtypes:      ");
    size_t counts[256] = {0};
    for (size_t i = 0; i < nt; i++)
        counts[(unsigned)ttsm_checkpoint_tensor(ck, i)->dtype & 255u]++;
    int any = 0;
    for (unsigned d = 0; d < 256; d++)
        if (counts[d]) {
            const char *name = ttsm_dtype_name((ttsm_dtype)d);
            printf("%s%s %zu", any++ ? ", " : "", name ? name : "?", counts[d]);
        }
    printf("%s\n", any ? "" : "(none)");
    size_t nm = ttsm_checkpoint_metadata_count(ck);
    printf("metadata:    %zu\n", nm);
    for (size_t i = 0; i < nm; i++) {
        const ttsm_metadata_entry *m = ttsm_checkpoint_metadata(ck, i);
        printf("  ");
        put_safe(stdout, m->key, 200);
        printf(" (%s) = ", m->type);
        put_safe(stdout, m->json, SHORT_VALUE);
        size_t len = strlen(m->json);
        if (len > SHORT_VALUE)
            printf(" (%zu bytes)", len);
        printf("\n");
    }
    if (!tensors)
        return;
    printf("tensor list:\n");
    for (size_t i = 0; i < nt; i++) {
        const ttsm_tensor_info *t = ttsm_checkpoint_tensor(ck, i);
        printf("  ");
        put_safe(stdout, t->name, 4096);
        printf("  %s ", ttsm_dtype_name(t->dtype));
        put_shape(stdout, t);
        printf("  %llu bytes  file %u ", (unsigned long long)t->nbytes, t->file_index);
        if (t->file_offset == UINT64_MAX)
            printf("in memory");
        else
            printf("offset %llu", (unsigned long long)t->file_offset);
        if (!t->contiguous)
            printf("  strided");
        printf("\n");
    }
}

/* ---- JSON form --------------------------------------------------------- */

/* A JSON string of untrusted text: bytes that are not valid UTF-8 become
 * U+FFFD so the output always parses. */
static json_t *jstr(const char *s)
{
    json_t *j = json_string(s);
    if (j)
        return j;
    size_t n = strlen(s);
    char *fixed = malloc(n * 3 + 1);
    if (!fixed)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x80) {
            fixed[o++] = (char)c;
        } else {
            memcpy(fixed + o, "\xef\xbf\xbd", 3);
            o += 3;
        }
    }
    fixed[o] = '\0';
    j = json_string(fixed);
    free(fixed);
    return j;
}

static json_t *jint(uint64_t v)
{
    return json_integer((json_int_t)v);
}

/* The value as JSON: integers past 2^63 (GGUF u64) do not fit jansson's
 * integers and come out as reals; text that does not parse as a string. */
static json_t *meta_value(const char *text)
{
    json_t *v = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    if (!v)
        v = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL | JSON_DECODE_INT_AS_REAL, NULL);
    return v ? v : jstr(text);
}

/* Metadata values this long are written as the library's own JSON text
 * instead of being parsed into a tree and dumped again: a GGUF array of 2^24
 * bytes is 64 MB of text but would be 700 MB of jansson nodes. */
#define RAW_VALUE_MIN (64u << 10)

static int utf8_ok(const unsigned char *s)
{
    while (*s) {
        unsigned c = *s++;
        int n = c < 0x80 ? 0 : c >= 0xc2 && c <= 0xdf ? 1 : (c & 0xf0) == 0xe0 ? 2
                : c >= 0xf0 && c <= 0xf4 ? 3 : -1;
        if (n < 0)
            return 0;
        for (int i = 0; i < n; i++, s++)
            if ((*s & 0xc0) != 0x80)
                return 0;
    }
    return 1;
}

/* The placeholder a long value stands as in the tree, dumped as
 * "\u0001ttsm-raw-N" (checked to occur exactly once before it is used). */
static void raw_token(size_t i, char *buf, size_t size)
{
    snprintf(buf, size, "\001ttsm-raw-%zu", i);
}

static int is_raw(const ttsm_metadata_entry *m)
{
    return strlen(m->json) >= RAW_VALUE_MIN && utf8_ok((const unsigned char *)m->json);
}

static json_t *build_json(const char *path, const ttsm_checkpoint *ck, int tensors, int raw)
{
    json_t *o = json_object();
    size_t nf = ttsm_checkpoint_file_count(ck), nt = ttsm_checkpoint_tensor_count(ck);
    json_object_set_new(o, "path", jstr(path));
    json_object_set_new(o, "format", json_string(ttsm_format_name(ttsm_checkpoint_format(ck))));
    json_object_set_new(o, "version", jint(ttsm_checkpoint_version(ck)));
    json_object_set_new(o, "io_mode",
                        json_string(ttsm_checkpoint_io_mode(ck) == TTSM_IO_READ ? "read" : "mmap"));
    json_t *files = json_array();
    for (size_t i = 0; i < nf; i++) {
        json_t *f = json_object();
        json_object_set_new(f, "path", jstr(ttsm_checkpoint_file_path(ck, i)));
        json_object_set_new(f, "size", jint(ttsm_checkpoint_file_size(ck, i)));
        json_array_append_new(files, f);
    }
    json_object_set_new(o, "files", files);
    json_object_set_new(o, "tensor_count", jint(nt));
    json_object_set_new(o, "total_bytes", jint(ttsm_checkpoint_total_bytes(ck)));
    size_t counts[256] = {0};
    for (size_t i = 0; i < nt; i++)
        counts[(unsigned)ttsm_checkpoint_tensor(ck, i)->dtype & 255u]++;
    json_t *dt = json_object();
    for (unsigned d = 0; d < 256; d++)
        if (counts[d]) {
            const char *name = ttsm_dtype_name((ttsm_dtype)d);
            json_object_set_new(dt, name ? name : "?", jint(counts[d]));
        }
    json_object_set_new(o, "dtypes", dt);
    json_t *meta = json_object();
    for (size_t i = 0; i < ttsm_checkpoint_metadata_count(ck); i++) {
        const ttsm_metadata_entry *m = ttsm_checkpoint_metadata(ck, i);
        json_t *e = json_object();
        json_object_set_new(e, "type", jstr(m->type));
        char tok[48];
        raw_token(i, tok, sizeof tok);
        json_object_set_new(e, "value", raw && is_raw(m) ? json_string(tok) : meta_value(m->json));
        json_t *key = jstr(m->key);
        json_object_set_new(meta, key ? json_string_value(key) : "?", e);
        json_decref(key);
    }
    json_object_set_new(o, "metadata", meta);
    if (!tensors)
        return o;
    json_t *ts = json_array();
    for (size_t i = 0; i < nt; i++) {
        const ttsm_tensor_info *t = ttsm_checkpoint_tensor(ck, i);
        json_t *j = json_object(), *shape = json_array(), *strides = json_array();
        for (uint32_t k = 0; k < t->rank; k++) {
            json_array_append_new(shape, json_integer(t->shape[k]));
            json_array_append_new(strides, json_integer(t->strides[k]));
        }
        json_object_set_new(j, "name", jstr(t->name));
        json_object_set_new(j, "dtype", json_string(ttsm_dtype_name(t->dtype)));
        json_object_set_new(j, "shape", shape);
        json_object_set_new(j, "strides", strides);
        json_object_set_new(j, "contiguous", json_boolean(t->contiguous));
        json_object_set_new(j, "nbytes", jint(t->nbytes));
        json_object_set_new(j, "file", jint(t->file_index));
        json_object_set_new(j, "offset",
                            t->file_offset == UINT64_MAX ? json_null() : jint(t->file_offset));
        json_object_set_new(j, "storage", jint(t->storage_index));
        json_object_set_new(j, "storage_offset", jint(t->storage_offset));
        json_array_append_new(ts, j);
    }
    json_object_set_new(o, "tensors", ts);
    return o;
}

/* Dumps the tree with long values as placeholders, then writes it with
 * each placeholder replaced by the value's text. A placeholder that does
 * not occur exactly once (a file whose own strings mimic one) makes it
 * fall back to parsing every value. @return 0, or -1 out of memory. */
static int write_json(const char *path, const ttsm_checkpoint *ck, int tensors)
{
    json_t *o = build_json(path, ck, tensors, 1);
    char *text = o ? json_dumps(o, JSON_INDENT(2)) : NULL;
    json_decref(o);
    if (!text)
        return -1;
    size_t nm = ttsm_checkpoint_metadata_count(ck);
    int unique = 1;
    const char *last = text;
    for (size_t i = 0; i < nm && unique; i++) {
        if (!is_raw(ttsm_checkpoint_metadata(ck, i)))
            continue;
        char tok[64];
        snprintf(tok, sizeof tok, "\"\\u0001ttsm-raw-%zu\"", i);
        const char *at = strstr(text, tok);
        unique = at && at >= last && !strstr(at + 1, tok); /* once, and in order */
        last = at;
    }
    if (!unique) {
        free(text);
        o = build_json(path, ck, tensors, 0);
        int bad = !o || json_dumpf(o, stdout, JSON_INDENT(2)) != 0;
        json_decref(o);
        if (!bad)
            fputc('\n', stdout);
        return bad ? -1 : 0;
    }
    const char *p = text;
    for (size_t i = 0; i < nm; i++) {
        const ttsm_metadata_entry *m = ttsm_checkpoint_metadata(ck, i);
        if (!is_raw(m))
            continue;
        char tok[64];
        snprintf(tok, sizeof tok, "\"\\u0001ttsm-raw-%zu\"", i);
        const char *at = strstr(p, tok);
        fwrite(p, 1, (size_t)(at - p), stdout);
        fputs(m->json, stdout);
        p = at + strlen(tok);
    }
    fputs(p, stdout);
    fputc('\n', stdout);
    free(text);
    return 0;
}

static int run(cli_args *a)
{
    const char *path = a->n_pos ? a->pos[0] : NULL;
    int as_json = a->given[OPT_JSON], tensors = a->given[OPT_TENSORS];
    ttsm_checkpoint_options opts = ttsm_checkpoint_options_default();
    if (!path)
        return cli_usage_error("inspect", "missing FILE");
    if (cli_g.io_set)
        opts.io_mode = cli_g.io;

    ttsm_error err;
    ttsm_checkpoint *ck;
    ttsm_status st = ttsm_checkpoint_open(path, &opts, &ck, &err);
    if (st != TTSM_OK)
        return cli_fail(st, &err);
    int rc = CLI_EXIT_OK;
    if (as_json) {
        if (write_json(path, ck, tensors) != 0) {
            fprintf(stderr, "ttsm: inspect: out of memory writing JSON\n");
            rc = CLI_EXIT_FAILURE;
        }
    } else {
        print_human(path, ck, tensors);
    }
    ttsm_checkpoint_close(ck);
    if (fflush(stdout) != 0 && rc == CLI_EXIT_OK) {
        fprintf(stderr, "ttsm: inspect: cannot write output\n");
        rc = CLI_EXIT_FAILURE;
    }
    return rc;
}

static const cli_opt options[] = {OPT_TENSORS, OPT_JSON, OPT_END};

const cli_command cli_cmd_inspect = {
    "inspect",
    "show a checkpoint's format, tensors and metadata",
    "FILE",
    options,
    1,
    "Opens a checkpoint (safetensors, a sharded *.safetensors.index.json, GGUF or a\n"
    "PyTorch zip; detected from the bytes, not the name), reads only its headers\n"
    "and shows its format, version, files, tensor count, total bytes, dtype\n"
    "histogram and metadata; --tensors adds every tensor (name, dtype, shape,\n"
    "bytes, file, offset). --io read reads with pread instead of mmap.",
    "{\"path\", \"format\", \"version\", \"io_mode\", \"files\": [{\"path\", \"size\"}], "
    "\"tensor_count\", \"total_bytes\", \"dtypes\": {\"NAME\": count}, \"metadata\": "
    "{\"key\": {\"type\", \"value\"}}, \"tensors\" (with --tensors): [{\"name\", \"dtype\", "
    "\"shape\", \"strides\", \"contiguous\", \"nbytes\", \"file\", \"offset\", "
    "\"storage\", \"storage_offset\"}]}",
    "ttsm inspect model.safetensors\n"
    "ttsm inspect model.safetensors.index.json --tensors\n"
    "ttsm inspect model.gguf --json --tensors | jq '.tensors[].name'",
    "exit codes: 0 ok, 2 usage, 3 not found (file or shard), 6 invalid checkpoint, 7 I/O "
    "error.",
    run};
