/* cmd_convert.c - `ttsm convert IN OUT.safetensors`: rewrites any checkpoint
 * ttsm reads (PyTorch, safetensors, GGUF with plain element types) as one
 * safetensors file, without running any code from IN. The output is written
 * to a temporary file beside OUT and renamed into place, so a failure never
 * leaves a partial OUT; the temporary file is removed on every failure,
 * SIGINT, SIGTERM and SIGHUP included, and the output size is capped
 * before a byte is written (a view can repeat a 4-byte storage 2^34 times). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <jansson.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

/* The reference safetensors reader refuses headers above 100 MB. */
#define MAX_HEADER_BYTES 100000000u
#define GATHER_CHUNK (1u << 16)
/* The output may be at most this many times the input's tensor bytes plus
 * OUTPUT_SLACK (tied weights and expanded views are copied), and never more
 * than OUTPUT_MAX, unless --max-output says otherwise. */
#define OUTPUT_RATIO 16u
#define OUTPUT_SLACK (64ull << 20)
#define OUTPUT_MAX (256ull << 30)

/* Element types the safetensors format defines. */
static int safetensors_dtype(ttsm_dtype d)
{
    switch (d) {
    case TTSM_DTYPE_BOOL: case TTSM_DTYPE_U8: case TTSM_DTYPE_I8: case TTSM_DTYPE_U16:
    case TTSM_DTYPE_I16: case TTSM_DTYPE_F16: case TTSM_DTYPE_BF16: case TTSM_DTYPE_U32:
    case TTSM_DTYPE_I32: case TTSM_DTYPE_F32: case TTSM_DTYPE_U64: case TTSM_DTYPE_I64:
    case TTSM_DTYPE_F64: case TTSM_DTYPE_F8_E5M2: case TTSM_DTYPE_F8_E4M3:
    case TTSM_DTYPE_F8_E8M0: case TTSM_DTYPE_F4: case TTSM_DTYPE_F6_E2M3:
    case TTSM_DTYPE_F6_E3M2: case TTSM_DTYPE_C64:
        return 1;
    default:
        return 0;
    }
}

/* Bytes of the tensor once contiguous. @return 0, or -1 when they do not
 * fit in 64 bits (a shape of [2^62] over a 4-byte storage, by stride 0). */
static int dense_bytes(const ttsm_tensor_info *t, uint64_t *out)
{
    uint32_t be = 1, bb = 1;
    ttsm_dtype_block(t->dtype, &be, &bb);
    return __builtin_mul_overflow(t->n_elements / be, (uint64_t)bb, out) ? -1 : 0;
}

static char *printable(const char *s, char buf[128])
{
    return (char *)ttsm_text_printable(s, buf, 128);
}

static int fail_msg(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail_msg(int code, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "ttsm convert: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return code;
}

/* Strict UTF-8 (no overlong forms, surrogates or values past U+10FFFF), as
 * jansson checks keys and strings: lets a refusal be told from memory
 * running out. */
static int utf8_valid(const char *str)
{
    const unsigned char *s = (const unsigned char *)str;
    while (*s) {
        unsigned c = *s++;
        int n = c < 0x80 ? 0 : c >= 0xc2 && c <= 0xdf ? 1 : (c & 0xf0) == 0xe0 ? 2
                : c >= 0xf0 && c <= 0xf4 ? 3 : -1;
        if (n < 0)
            return 0;
        unsigned v = n == 0 ? c : c & (0x3fu >> n);
        for (int i = 0; i < n; i++, s++) {
            if ((*s & 0xc0) != 0x80)
                return 0;
            v = v << 6 | (*s & 0x3fu);
        }
        if ((n == 2 && (v < 0x800 || (v >= 0xd800 && v <= 0xdfff))) ||
            (n == 3 && (v < 0x10000 || v > 0x10ffff)))
            return 0;
    }
    return 1;
}

/* The safetensors header, for at most `max_data` bytes of tensor data;
 * NULL after printing why. */
static char *build_header(ttsm_checkpoint *ck, uint64_t max_data, size_t *len, int *code)
{
    json_t *root = json_object(), *meta = json_object();
    char *text = NULL;
    *code = CLI_EXIT_FAILURE;
    if (!root || !meta)
        goto oom;
    size_t nm = ttsm_checkpoint_metadata_count(ck);
    for (size_t i = 0; i < nm; i++) {
        const ttsm_metadata_entry *m = ttsm_checkpoint_metadata(ck, i);
        json_t *v = NULL;
        if (strcmp(m->type, "str") == 0) {
            json_error_t je;
            json_t *s = json_loads(m->json, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
            /* jansson reports a failed first allocation with no text */
            if (!s && (json_error_code(&je) == json_error_out_of_memory || !je.text[0]))
                goto oom;
            if (s && json_is_string(s) &&
                !(v = json_stringn(json_string_value(s), json_string_length(s)))) {
                json_decref(s);
                goto oom;
            }
            json_decref(s);
        }
        if (!utf8_valid(m->key) || (!v && !utf8_valid(m->json))) {
            json_decref(v);
            *code = CLI_EXIT_FORMAT;
            char pb[128];
            fprintf(stderr, "ttsm convert: metadata key or value of '%s' is not valid "
                            "UTF-8\n", printable(m->key, pb));
            goto fail;
        }
        if (!v && !(v = json_string(m->json)))
            goto oom;
        if (json_object_set_new(meta, m->key, v) != 0)
            goto oom;
    }
    if (nm && json_object_set(root, "__metadata__", meta) != 0)
        goto oom;
    uint64_t offset = 0;
    size_t nt = ttsm_checkpoint_tensor_count(ck);
    for (size_t i = 0; i < nt; i++) {
        const ttsm_tensor_info *t = ttsm_checkpoint_tensor(ck, i);
        char pb[128];
        if (!safetensors_dtype(t->dtype)) {
            *code = CLI_EXIT_FORMAT;
            fprintf(stderr, "ttsm convert: tensor '%s' has element type %s, which safetensors "
                            "cannot store\n", printable(t->name, pb), ttsm_dtype_name(t->dtype));
            goto fail;
        }
        if (strcmp(t->name, "__metadata__") == 0) {
            *code = CLI_EXIT_FORMAT;
            fprintf(stderr, "ttsm convert: a tensor is named '__metadata__', which safetensors "
                            "reserves\n");
            goto fail;
        }
        if (!utf8_valid(t->name)) {
            *code = CLI_EXIT_FORMAT;
            fprintf(stderr, "ttsm convert: tensor name '%s' is not valid UTF-8\n",
                    printable(t->name, pb));
            goto fail;
        }
        uint64_t dense, end;
        if (dense_bytes(t, &dense) != 0 || __builtin_add_overflow(offset, dense, &end)) {
            *code = CLI_EXIT_FORMAT;
            fprintf(stderr, "ttsm convert: output too large: with tensor '%s' (%" PRIu64
                            " elements of %s) it would need more than 2^64 bytes; nothing was "
                            "written\n", printable(t->name, pb), t->n_elements,
                    ttsm_dtype_name(t->dtype));
            goto fail;
        }
        if (end > max_data) {
            *code = CLI_EXIT_FORMAT;
            fprintf(stderr, "ttsm convert: output too large: it would pass its limit of %" PRIu64
                            " bytes of tensor data at tensor '%s' (%" PRIu64 " bytes once "
                            "contiguous), from %" PRIu64 " bytes of tensor data in IN (a view "
                            "that repeats its storage is written out in full); nothing was "
                            "written. --max-output BYTES raises the limit\n",
                    max_data, printable(t->name, pb), dense, ttsm_checkpoint_total_bytes(ck));
            goto fail;
        }
        /* The *_new calls take their value even when they fail, so one
         * flag collects every failure (all of them out of memory here). */
        json_t *shape = json_array(), *offs = json_array(), *ent = json_object();
        int bad = !shape || !offs || !ent;
        for (uint32_t d = 0; d < t->rank; d++)
            bad |= json_array_append_new(shape, json_integer(t->shape[d])) != 0;
        bad |= json_array_append_new(offs, json_integer((json_int_t)offset)) != 0;
        bad |= json_array_append_new(offs, json_integer((json_int_t)end)) != 0;
        bad |= json_object_set_new(ent, "dtype", json_string(ttsm_dtype_name(t->dtype))) != 0;
        bad |= json_object_set_new(ent, "shape", shape) != 0;
        bad |= json_object_set_new(ent, "data_offsets", offs) != 0;
        if (bad) {
            json_decref(ent);
            goto oom;
        }
        if (json_object_set_new(root, t->name, ent) != 0)
            goto oom;
        offset = end;
    }
    text = json_dumps(root, JSON_COMPACT | JSON_ENSURE_ASCII);
    if (!text)
        goto oom;
    size_t n = strlen(text);
    /* Tensor data starts 8-byte aligned: pad the header with spaces. */
    size_t padded = (n + 7) & ~(size_t)7;
    if (padded > MAX_HEADER_BYTES) {
        *code = CLI_EXIT_FORMAT;
        fprintf(stderr, "ttsm convert: the safetensors header would be %zu bytes; readers "
                        "refuse more than %u\n", padded, MAX_HEADER_BYTES);
        goto fail;
    }
    char *p = realloc(text, padded + 1);
    if (!p)
        goto oom;
    text = p;
    memset(text + n, ' ', padded - n);
    text[padded] = '\0';
    *len = padded;
    json_decref(root);
    json_decref(meta);
    return text;
oom:
    fprintf(stderr, "ttsm convert: out of memory building the header\n");
    *code = CLI_EXIT_OUT_OF_MEMORY;
fail:
    free(text);
    json_decref(root);
    json_decref(meta);
    return NULL;
}

/* Writes a strided view element by element, in row-major order. */
static int write_gathered(FILE *fp, const ttsm_tensor_info *t, const unsigned char *base)
{
    uint32_t bb = 1;
    ttsm_dtype_block(t->dtype, NULL, &bb);
    size_t es = bb;
    unsigned char buf[GATHER_CHUNK];
    size_t used = 0;
    int64_t idx[64] = {0};
    for (uint64_t n = 0; n < t->n_elements; n++) {
        uint64_t off = 0;
        for (uint32_t d = 0; d < t->rank; d++)
            off += (uint64_t)idx[d] * (uint64_t)t->strides[d];
        if (used + es > sizeof buf) {
            if (fwrite(buf, 1, used, fp) != used)
                return -1;
            used = 0;
        }
        memcpy(buf + used, base + off * es, es);
        used += es;
        for (uint32_t d = t->rank; d-- > 0;) {
            if (++idx[d] < t->shape[d])
                break;
            idx[d] = 0;
        }
    }
    return used && fwrite(buf, 1, used, fp) != used ? -1 : 0;
}

static int write_all(ttsm_checkpoint *ck, int fd, const char *header, size_t hlen,
                     size_t *n_strided)
{
    FILE *fp = fdopen(fd, "wb");
    if (!fp) {
        close(fd);
        return fail_msg(CLI_EXIT_IO, "cannot write: %s", strerror(errno));
    }
    unsigned char lenb[8];
    for (int i = 0; i < 8; i++)
        lenb[i] = (unsigned char)((uint64_t)hlen >> (8 * i));
    int ok = fwrite(lenb, 1, 8, fp) == 8 && fwrite(header, 1, hlen, fp) == hlen;
    size_t nt = ttsm_checkpoint_tensor_count(ck);
    for (size_t i = 0; ok && i < nt; i++) {
        const ttsm_tensor_info *t = ttsm_checkpoint_tensor(ck, i);
        if (t->n_elements == 0)
            continue;
        const void *data;
        ttsm_error err;
        ttsm_status st = ttsm_checkpoint_tensor_data(ck, t, &data, &err);
        if (st != TTSM_OK) {
            fclose(fp);
            return cli_fail(st, &err);
        }
        if (t->contiguous) {
            ok = fwrite(data, 1, (size_t)t->nbytes, fp) == t->nbytes;
        } else {
            ok = write_gathered(fp, t, data) == 0;
            (*n_strided)++;
        }
    }
    if (ok)
        ok = fflush(fp) == 0 && fsync(fileno(fp)) == 0;
    int e = errno;
    if (fclose(fp) != 0 && ok) {
        ok = 0;
        e = errno;
    }
    if (!ok)
        return fail_msg(CLI_EXIT_IO, "writing failed: %s", strerror(e));
    return CLI_EXIT_OK;
}

/* Moves tmp to out: replacing it with --force, else only if out is still
 * absent (link fails on an existing name, so a racing writer is not lost). */
static int publish(const char *tmp, const char *out, int force)
{
    if (force) {
        if (rename(tmp, out) != 0)
            return fail_msg(CLI_EXIT_IO, "cannot rename to %s: %s", out, strerror(errno));
        return CLI_EXIT_OK;
    }
    if (link(tmp, out) == 0) {
        unlink(tmp);
        return CLI_EXIT_OK;
    }
    if (errno == EEXIST)
        return fail_msg(CLI_EXIT_FAILURE, "%s appeared while converting; use --force to "
                                          "replace it", out);
    /* File systems without hard links: check, then rename. */
    if (access(out, F_OK) == 0)
        return fail_msg(CLI_EXIT_FAILURE, "%s exists; use --force to replace it", out);
    if (rename(tmp, out) != 0)
        return fail_msg(CLI_EXIT_IO, "cannot rename to %s: %s", out, strerror(errno));
    return CLI_EXIT_OK;
}

/* ---- the temporary file and signals ----------------------------------- */

/* The temporary file's name for the signal handler, which removes it:
 * a signal that ends the process must not leave a partial file behind. */
static char pending_tmp[PATH_MAX + 64];
static volatile sig_atomic_t have_pending;
static const int fatal_signals[] = {SIGINT, SIGTERM, SIGHUP};

static void on_fatal_signal(int sig)
{
    if (have_pending)
        unlink(pending_tmp);
    /* then die of the signal, as the caller expects */
    signal(sig, SIG_DFL);
    raise(sig);
}

static void block_fatal(int how)
{
    sigset_t set;
    sigemptyset(&set);
    for (size_t i = 0; i < sizeof fatal_signals / sizeof fatal_signals[0]; i++)
        sigaddset(&set, fatal_signals[i]);
    sigprocmask(how, &set, NULL);
}

typedef struct saved_signals {
    struct sigaction fatal[sizeof fatal_signals / sizeof fatal_signals[0]], xfsz;
} saved_signals;

static void signals_install(saved_signals *saved)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_fatal_signal;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < sizeof fatal_signals / sizeof fatal_signals[0]; i++)
        sigaction(fatal_signals[i], &sa, &saved->fatal[i]);
    /* Past RLIMIT_FSIZE, write(2) raises SIGXFSZ, which kills by default:
     * ignored, the write fails with EFBIG instead, and the usual path
     * removes the temporary file and exits 7. */
    sa.sa_handler = SIG_IGN;
    sigaction(SIGXFSZ, &sa, &saved->xfsz);
}

static void signals_restore(const saved_signals *saved)
{
    for (size_t i = 0; i < sizeof fatal_signals / sizeof fatal_signals[0]; i++)
        sigaction(fatal_signals[i], &saved->fatal[i], NULL);
    sigaction(SIGXFSZ, &saved->xfsz, NULL);
}

/* "123", "64M", "2G" (powers of 1024). @return 0, or -1. */
static int parse_size(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    if (*s < '0' || *s > '9')
        return -1;
    unsigned long long v = strtoull(s, &end, 10);
    unsigned shift = 0;
    switch (*end) {
    case '\0': break;
    case 'K': shift = 10; break;
    case 'M': shift = 20; break;
    case 'G': shift = 30; break;
    case 'T': shift = 40; break;
    default: return -1;
    }
    if (*end && end[1] != '\0')
        return -1;
    if (errno || (shift && v > (UINT64_MAX >> shift)))
        return -1;
    *out = (uint64_t)v << shift;
    return 0;
}

static int run(cli_args *a)
{
    const char *in = a->n_pos > 0 ? a->pos[0] : NULL, *out = a->n_pos > 1 ? a->pos[1] : NULL;
    int force = a->given[OPT_FORCE] > 0;
    uint64_t max_output = 0; /* 0: the default caps */
    if (a->given[OPT_MAX_OUTPUT] &&
        (parse_size(a->value[OPT_MAX_OUTPUT], &max_output) != 0 || max_output == 0))
        return cli_usage_error("convert", "--max-output wants a size such as 500M or 2G, not "
                                          "'%s'", a->value[OPT_MAX_OUTPUT]);
    if (!in || !out)
        return cli_usage_error("convert", "needs IN and OUT");
    struct stat sb;
    if (!force && stat(out, &sb) == 0)
        return fail_msg(CLI_EXIT_FAILURE, "%s exists; use --force to replace it", out);

    ttsm_error err;
    ttsm_checkpoint *ck;
    ttsm_status st = ttsm_checkpoint_open(in, NULL, &ck, &err);
    if (st != TTSM_OK)
        return cli_fail(st, &err);
    /* What OUT may hold, decided before anything is written. */
    uint64_t max_data = max_output;
    if (!max_output) {
        uint64_t in_bytes = ttsm_checkpoint_total_bytes(ck);
        if (__builtin_mul_overflow(in_bytes, (uint64_t)OUTPUT_RATIO, &max_data) ||
            __builtin_add_overflow(max_data, OUTPUT_SLACK, &max_data) || max_data > OUTPUT_MAX)
            max_data = OUTPUT_MAX;
    }
    size_t hlen;
    int code;
    char *header = build_header(ck, max_data, &hlen, &code);
    if (!header) {
        ttsm_checkpoint_close(ck);
        return code;
    }

    /* The temporary file lives beside OUT, so the rename stays on one file
     * system and is atomic. */
    const char *slash = strrchr(out, '/');
    size_t dlen = slash ? (size_t)(slash - out) + 1 : 0;
    size_t tlen = strlen(out) + 32;
    char *tmp = malloc(tlen);
    if (!tmp) {
        free(header);
        ttsm_checkpoint_close(ck);
        return fail_msg(CLI_EXIT_OUT_OF_MEMORY, "out of memory");
    }
    snprintf(tmp, tlen, "%.*s.%s.ttsm-XXXXXX", (int)dlen, out, out + dlen);
    saved_signals saved;
    signals_install(&saved);
    /* Blocked while the name is made and handed to the handler, so no
     * signal finds a file the handler does not know of. */
    block_fatal(SIG_BLOCK);
    int fd = mkstemp(tmp);
    int e = errno;
    if (fd >= 0 && strlen(tmp) < sizeof pending_tmp) {
        memcpy(pending_tmp, tmp, strlen(tmp) + 1);
        have_pending = 1;
    }
    block_fatal(SIG_UNBLOCK);
    if (fd < 0) {
        code = fail_msg(CLI_EXIT_IO, "cannot create a temporary file beside %s: %s", out,
                        strerror(e));
    } else {
        mode_t um = umask(0);
        umask(um);
        fchmod(fd, 0666 & ~um);
        size_t n_strided = 0;
        code = write_all(ck, fd, header, hlen, &n_strided);
        block_fatal(SIG_BLOCK);
        if (code == CLI_EXIT_OK)
            code = publish(tmp, out, force);
        if (code != CLI_EXIT_OK)
            unlink(tmp);
        have_pending = 0;
        block_fatal(SIG_UNBLOCK);
        if (code == CLI_EXIT_OK && a->given[OPT_JSON]) {
            json_t *o = json_pack("{s:s, s:s, s:I, s:I, s:I}", "input", in, "output", out,
                                  "tensors", (json_int_t)ttsm_checkpoint_tensor_count(ck),
                                  "made_contiguous", (json_int_t)n_strided, "metadata",
                                  (json_int_t)ttsm_checkpoint_metadata_count(ck));
            json_dumpf(o, stdout, JSON_INDENT(2));
            fputc('\n', stdout);
            json_decref(o);
        } else if (code == CLI_EXIT_OK) {
            printf("wrote %s: %zu tensors (%zu strided views made contiguous), %zu metadata "
                   "entries\n",
                   out, ttsm_checkpoint_tensor_count(ck), n_strided,
                   ttsm_checkpoint_metadata_count(ck));
        }
    }
    signals_restore(&saved);
    free(tmp);
    free(header);
    ttsm_checkpoint_close(ck);
    return code;
}

static const cli_opt options[] = {OPT_FORCE, OPT_MAX_OUTPUT, OPT_JSON, OPT_END};

const cli_command cli_cmd_convert = {
    "convert",
    "write a checkpoint as safetensors (no code run)",
    "IN OUT.safetensors",
    options,
    2,
    "Writes the tensors of IN (a PyTorch .pt/.pth/.bin, a safetensors or a GGUF\n"
    "file) to OUT in safetensors format. IN is read as data: pickled code in a\n"
    "PyTorch file is refused, never run. Tensor bytes are copied unchanged;\n"
    "views with strides (transposes, slices) are written as contiguous copies,\n"
    "since safetensors has no strides; tensors that share storage (tied\n"
    "weights) each get their own copy; non-tensor values (an RVC model's config,\n"
    "sr, f0, version ...) go into __metadata__ as strings, a str as itself and\n"
    "anything else as its JSON text; element types safetensors lacks (C128, C32,\n"
    "block-quantised GGUF types) are refused. The size of OUT is checked before\n"
    "anything is written: by default at most 16 times the tensor bytes of IN plus\n"
    "64 MiB, and never more than 256 GiB (a view that repeats a small storage\n"
    "would otherwise write without bound); --max-output replaces both. OUT is\n"
    "written to a temporary file in its folder and renamed when complete; the\n"
    "temporary file is removed on any failure and on SIGINT, SIGTERM or SIGHUP.\n"
    "An existing OUT is an error without --force.",
    "{\"input\", \"output\", \"tensors\", \"made_contiguous\", \"metadata\"}",
    "ttsm convert model.pth model.safetensors\n"
    "ttsm convert voices/Claire.pth /tmp/claire.safetensors --force\n"
    "ttsm convert model-q8.gguf model.safetensors --json",
    "exit codes: 0 ok, 1 OUT exists or cannot be written, 2 usage, 3 IN not found, 6 IN is "
    "not a valid checkpoint, has a type safetensors cannot store or would make OUT larger "
    "than allowed, 7 I/O (a full disk, a file-size limit).",
    run};
