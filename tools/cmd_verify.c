/* cmd_verify.c - `ttsm verify FILE... | ENGINE [...]`: reads every byte of
 * a checkpoint (or of every file of a model), checks its structure and
 * sizes, and where a file is a HuggingFace hub-cache blob - named by its
 * SHA-256 - checks the hash (OpenSSL's libcrypto). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

typedef struct result {
    json_t *files;
    int bad, missing;
    uint64_t total, done;
} result;

/* The SHA-256 a blob path promises, or NULL. */
static const char *blob_hash(const char *real)
{
    const char *slash = strrchr(real, '/');
    if (!slash || slash - real < 6 || strncmp(slash - 6, "/blobs", 6) != 0)
        return NULL;
    const char *name = slash + 1;
    if (strlen(name) != 64)
        return NULL;
    for (const char *c = name; *c; c++)
        if (!((*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'f')))
            return NULL;
    return name;
}

/* Hashes a whole file, feeding the progress bar. */
static int hash_file(const char *path, char hex[65], uint64_t *bytes, result *r, char *why,
                     size_t why_size)
{
    /* O_NONBLOCK and fstat: a FIFO put in the file's place after the
     * check in check_one() is refused, not waited on. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        snprintf(why, why_size, "cannot open: %s", strerror(errno));
        return -1;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        snprintf(why, why_size, "not a regular file");
        close(fd);
        return -1;
    }
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
    static unsigned char buf[1 << 20];
    ssize_t n;
    *bytes = 0;
    while ((n = read(fd, buf, sizeof buf)) > 0) {
        EVP_DigestUpdate(ctx, buf, (size_t)n);
        *bytes += (uint64_t)n;
        r->done += (uint64_t)n;
        cli_progress(NULL, path, r->done, r->total);
    }
    int err = n < 0 ? errno : 0;
    close(fd);
    unsigned char md[32];
    unsigned int len = 0;
    EVP_DigestFinal_ex(ctx, md, &len);
    EVP_MD_CTX_free(ctx);
    if (err) {
        snprintf(why, why_size, "read failed after %llu bytes: %s", (unsigned long long)*bytes,
                 strerror(err));
        return -1;
    }
    for (unsigned i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    return 0;
}

static const char *file_type(mode_t mode)
{
    return S_ISDIR(mode)    ? "a directory"
           : S_ISFIFO(mode) ? "a FIFO (named pipe)"
           : S_ISCHR(mode)  ? "a character device"
           : S_ISBLK(mode)  ? "a block device"
           : S_ISSOCK(mode) ? "a socket"
                            : "not a regular file";
}

/* The strict readers refuse anything that is not a checkpoint with one of
 * these rules (docs/errors.md: the rule after the subject is stable); any
 * other refusal is a checkpoint that is broken. */
static int not_a_checkpoint(const char *path, const ttsm_error *err)
{
    static const char *const rules[] = {"unknown format:", "not a checkpoint:",
                                        "not a sharded index:"};
    size_t pl = strlen(path);
    if (strncmp(err->message, path, pl) != 0 || strncmp(err->message + pl, ": ", 2) != 0)
        return 0;
    for (size_t i = 0; i < sizeof rules / sizeof rules[0]; i++)
        if (strncmp(err->message + pl + 2, rules[i], strlen(rules[i])) == 0)
            return 1;
    return 0;
}

/* What to check a file named on the command line as. A checkpoint when a
 * strict reader takes it - or refuses it for what it is (a broken index,
 * a truncated file, a zip that is no archive): that refusal must fail the
 * check, whatever the file is called. Otherwise its name decides: JSON,
 * a checkpoint by its extension (which then fails with the reader's
 * message), else bytes. */
static const char *kind_of(const char *file)
{
    ttsm_checkpoint_options co = ttsm_checkpoint_options_default();
    co.io_mode = TTSM_IO_READ;
    ttsm_checkpoint *ck = NULL;
    ttsm_error err;
    ttsm_status st = ttsm_checkpoint_open(file, &co, &ck, &err);
    ttsm_checkpoint_close(ck);
    if (st == TTSM_OK || (ttsm_status_is(st, TTSM_ERR_FORMAT) && !not_a_checkpoint(file, &err)) ||
        st == TTSM_ERR_NOT_FOUND)
        return "tensors";
    size_t l = strlen(file);
    static const char *const exts[] = {".safetensors", ".gguf", ".pt", ".pth", ".bin", ".ckpt",
                                       ".index.json"};
    if (l > 5 && strcmp(file + l - 5, ".json") == 0 &&
        !(l > 11 && strcmp(file + l - 11, ".index.json") == 0))
        return "json";
    for (size_t i = 0; i < sizeof exts / sizeof exts[0]; i++) {
        size_t el = strlen(exts[i]);
        if (l > el && strcmp(file + l - el, exts[i]) == 0)
            return "tensors";
    }
    return "blob";
}

static void check_one(const char *path, const char *kind, result *r)
{
    char why[512] = "";
    char hex[65] = "";
    uint64_t bytes = 0;
    int ok = 1, blob_checked = 0;
    struct stat sb;
    char *real = realpath(path, NULL);
    if (!real || stat(real, &sb) != 0) {
        snprintf(why, sizeof why, "cannot open: %s", strerror(errno));
        ok = 0;
    } else if (!S_ISREG(sb.st_mode)) {
        snprintf(why, sizeof why, "not a regular file: it is %s", file_type(sb.st_mode));
        ok = 0;
    }
    /* Structure first: the strict readers (every shard of an index). */
    if (ok && strcmp(kind, "tensors") == 0) {
        ttsm_checkpoint_options co = ttsm_checkpoint_options_default();
        co.io_mode = TTSM_IO_READ;
        ttsm_checkpoint *ck = NULL;
        ttsm_error err;
        ttsm_status st = ttsm_checkpoint_open(path, &co, &ck, &err);
        /* Bytes that exist only once made - deflated storages, inflated on
         * first access - are made here, so their streams and CRCs are
         * checked; bytes in the file are read by the hash below. */
        for (size_t i = 0; st == TTSM_OK && i < ttsm_checkpoint_tensor_count(ck); i++) {
            const ttsm_tensor_info *t = ttsm_checkpoint_tensor(ck, i);
            const void *data;
            if (t->file_offset == UINT64_MAX)
                st = ttsm_checkpoint_tensor_data(ck, t, &data, &err);
        }
        if (st != TTSM_OK) {
            snprintf(why, sizeof why, "%s", err.message);
            ok = 0;
        } else {
            for (size_t i = 1; i < ttsm_checkpoint_file_count(ck); i++)
                check_one(ttsm_checkpoint_file_path(ck, i), "shard", r);
            if (ttsm_checkpoint_format(ck) == TTSM_FORMAT_SAFETENSORS_SHARDED &&
                ttsm_checkpoint_file_count(ck) > 0)
                check_one(ttsm_checkpoint_file_path(ck, 0), "shard", r);
        }
        ttsm_checkpoint_close(ck);
    } else if (ok && strcmp(kind, "json") == 0) {
        json_error_t je;
        json_t *j = json_load_file(path, 0, &je);
        if (!j) {
            /* jansson quotes the token it stopped at: show a few bytes of
             * it at most, made printable. */
            char *near = strstr(je.text, " near '"), excerpt[24] = "";
            if (near) {
                char *tok = near + 7;
                tok[strcspn(tok, "'")] = '\0';
                int cut = strlen(tok) > 16;
                tok[cut ? 16 : strlen(tok)] = '\0';
                ttsm_text_printable(tok, excerpt, 17);
                if (cut)
                    strcat(excerpt, "...");
                *near = '\0';
            }
            char rule[sizeof je.text];
            snprintf(why, sizeof why, "invalid JSON: %s%s%s%s at line %d, column %d",
                     ttsm_text_printable(je.text, rule, sizeof rule), near ? " near '" : "",
                     excerpt, near ? "'" : "", je.line, je.column);
            ok = 0;
        }
        json_decref(j);
    }
    /* Then every byte, and the hash where the name promises one. */
    if (ok && hash_file(real, hex, &bytes, r, why, sizeof why) != 0)
        ok = 0;
    if (ok && bytes != (uint64_t)sb.st_size) {
        snprintf(why, sizeof why, "read %llu bytes, the file has %lld", (unsigned long long)bytes,
                 (long long)sb.st_size);
        ok = 0;
    }
    const char *want = real ? blob_hash(real) : NULL;
    if (ok && want) {
        blob_checked = 1;
        if (strcmp(want, hex) != 0) {
            snprintf(why, sizeof why, "SHA-256 %s does not match its blob name %s", hex, want);
            ok = 0;
        }
    }
    r->bad += !ok;
    json_array_append_new(r->files,
                          json_pack("{s:s, s:s, s:I, s:s?, s:b, s:b, s:s?}", "path", path, "kind",
                                    kind, "bytes", (json_int_t)bytes, "sha256", *hex ? hex : NULL,
                                    "blob_checked", blob_checked, "ok", ok, "error",
                                    ok ? NULL : why));
    free(real);
}

/* A required file the model lacks: its component, the names looked for
 * and the place it goes (the first root's folder, else the hub path). */
static json_t *missing_entry(json_t *c)
{
    const char *comp = json_string_value(json_object_get(c, "name"));
    json_t *names = json_object_get(c, "names");
    const char *first = json_string_value(json_array_get(names, 0));
    const char *dir = json_string_value(json_array_get(json_object_get(c, "where"), 0));
    char path[4096], list[2048] = "", why[8192];
    size_t used = 0, i;
    json_t *n;
    json_array_foreach(names, i, n)
        used += (size_t)snprintf(list + used, used < sizeof list ? sizeof list - used : 0,
                                 "%s%s", i ? "|" : "", json_string_value(n));
    if (dir && first)
        snprintf(path, sizeof path, "%s/%s", dir, first);
    else
        snprintf(path, sizeof path, "%s", first ? first : comp);
    const char *broken = json_string_value(json_object_get(c, "broken"));
    if (broken)
        snprintf(why, sizeof why, "broken hub cache link %.4000s: delete it and download the "
                                  "file again", broken);
    else
        snprintf(why, sizeof why, "missing: put it at %s (ttsm resolve --where lists every place)",
                 path);
    return json_pack("{s:s, s:s, s:I, s:n, s:b, s:b, s:s, s:b, s:s, s:s}", "path", path, "kind",
                     json_string_value(json_object_get(c, "kind")), "bytes", (json_int_t)0,
                     "sha256", "blob_checked", 0, "ok", 0, "error", why, "missing", 1,
                     "component", comp, "names", list);
}

static uint64_t size_of(const char *p)
{
    struct stat sb;
    return stat(p, &sb) == 0 ? (uint64_t)sb.st_size : 0;
}

static int run(cli_args *a)
{
    int json = a->given[OPT_JSON];
    ttsm_load_config cfg = ttsm_load_config_default();
    cfg.device = "cpu";
    const char *files[256];
    size_t n_files = 0;
    int rc = CLI_EXIT_OK;
    if (a->value[OPT_ENGINE])
        files[n_files++] = a->value[OPT_ENGINE];
    for (size_t i = 0; i < a->n_pos && rc == CLI_EXIT_OK; i++) {
        if (n_files == 256) {
            rc = cli_usage_error("verify", "at most 256 files");
            goto out;
        }
        files[n_files++] = a->pos[i];
    }
    cli_load_config(a, &cfg);
    cfg.engine = NULL;
    if (n_files == 0) {
        rc = cli_usage_error("verify", "name FILEs or an ENGINE");
        goto out;
    }
    result r = {json_array(), 0, 0, 0, 0};
    /* One name that is an engine (and not a file): verify its model. */
    struct stat sb;
    if (n_files == 1 && (a->value[OPT_ENGINE] || stat(files[0], &sb) != 0) &&
        ttsm_engine_find(files[0])) {
        cfg.engine = files[0];
        cli_root_warnings();
        char *report;
        ttsm_error err;
        ttsm_manager_options where = ttsm_manager_options_default();
        cli_manager_options(&where);
        ttsm_status st = ttsm_resolve_with(&cfg, &where, &report, &err);
        if (st != TTSM_OK) {
            json_decref(r.files);
            rc = cli_fail(st, &err);
            goto out;
        }
        json_t *rep = json_loads(report, 0, NULL);
        ttsm_free(report);
        size_t i;
        json_t *c;
        json_array_foreach(json_object_get(rep, "components"), i, c) {
            const char *p = json_string_value(json_object_get(c, "path"));
            if (p)
                r.total += size_of(p);
        }
        cli_progress_start();
        json_array_foreach(json_object_get(rep, "components"), i, c) {
            const char *p = json_string_value(json_object_get(c, "path"));
            if (p) {
                check_one(p, json_string_value(json_object_get(c, "kind")), &r);
            } else if (!json_is_true(json_object_get(c, "optional"))) {
                r.missing++;
                json_array_append_new(r.files, missing_entry(c));
            }
        }
        cli_progress_end();
        json_decref(rep);
    } else {
        for (size_t i = 0; i < n_files; i++)
            r.total += size_of(files[i]);
        cli_progress_start();
        for (size_t i = 0; i < n_files; i++) {
            check_one(files[i], kind_of(files[i]), &r);
        }
        cli_progress_end();
    }
    int ok = r.bad == 0 && r.missing == 0;
    if (json) {
        json_t *root = json_pack("{s:b, s:o}", "ok", ok, "files", r.files);
        char *s = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        puts(s);
        free(s);
        json_decref(root);
    } else {
        size_t i;
        json_t *f;
        json_array_foreach(r.files, i, f) {
            const char *path = json_string_value(json_object_get(f, "path"));
            if (json_is_true(json_object_get(f, "ok")))
                printf("ok        %s  %llu bytes  sha256 %s%s\n", path,
                       (unsigned long long)json_integer_value(json_object_get(f, "bytes")),
                       json_string_value(json_object_get(f, "sha256")),
                       json_is_true(json_object_get(f, "blob_checked")) ? " (= blob name)" : "");
            else if (json_is_true(json_object_get(f, "missing")))
                printf("MISSING   %s (%s): %s\n", json_string_value(json_object_get(f, "component")),
                       json_string_value(json_object_get(f, "names")),
                       json_string_value(json_object_get(f, "error")));
            else
                printf("FAILED    %s  %s\n", path, json_string_value(json_object_get(f, "error")));
        }
        json_decref(r.files);
    }
    rc = ok ? CLI_EXIT_OK : r.bad ? CLI_EXIT_FORMAT : CLI_EXIT_NOT_FOUND;
out:
    return rc;
}

static const cli_opt options[] = {OPT_ENGINE,     OPT_MODEL,   OPT_LANGUAGE, OPT_TYPE,
                                  OPT_MODEL_PATH, OPT_REPO_ID, OPT_PARAM,    OPT_JSON,
                                  OPT_END};

const cli_command cli_cmd_verify = {
    "verify",
    "read every byte of a model's files and check them",
    "FILE... | ENGINE",
    options,
    256,
    "Reads every byte of each file and checks it: checkpoints are opened by the\n"
    "strict readers (every shard of an index), JSON is parsed, and a file that\n"
    "is a hub-cache blob (.../blobs/<64 hex digits>) must hash to its name\n"
    "(SHA-256). A file a reader refuses fails with the reader's message, whatever\n"
    "its name; only a file the readers call no checkpoint at all is checked by its\n"
    "name (JSON, or bytes). With ENGINE (or -e), checks every file of the model as\n"
    "`ttsm resolve` finds it; a missing one is named with its component, the file\n"
    "names looked for and the place it goes (path).",
    "{\"ok\", \"files\": [{\"path\", \"kind\", \"bytes\", \"sha256\", \"blob_checked\", "
    "\"ok\", \"error\"}]}; a missing file also has \"missing\": true, \"component\" and "
    "\"names\", and its path is where it goes in the first models root",
    "ttsm verify ~/.cache/huggingface/hub/models--ResembleAI--chatterbox/snapshots/*/ve.pt\n"
    "ttsm verify chatterbox -l fr --models-dir ~/ComfyUI/models\n"
    "ttsm verify -e vibevoice --json | jq '.files[] | select(.ok | not)'",
    "exit codes: 0 ok, 2 usage, 3 a required file is missing, 6 a mismatch or an invalid "
    "file.",
    run};
