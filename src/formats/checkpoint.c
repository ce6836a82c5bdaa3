/* checkpoint.c - ttsm_checkpoint_open(): detects a file's format from its
 * first bytes and hands it to that format's reader; files that are not
 * checkpoints are named ("a Git LFS pointer", "a FAISS index"). */
#include <stdio.h>
#include <string.h>

#include "base/error.h"
#include "formats/checkpoint.h"
#include "formats/gguf.h"
#include "formats/safetensors.h"
#include "formats/safetensors_index.h"
#include "formats/table.h"
#include "formats/torch.h"

/* A safetensors start: a header length that fits the file, then '{' -
 * after JSON whitespace, which the reference reader accepts too. */
static uint64_t le64(const unsigned char *h)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | h[i];
    return v;
}

static int safetensors_start(const unsigned char *h, size_t n, uint64_t size)
{
    uint64_t len = le64(h);
    if (n < 9 || len > size - 8)
        return 0;
    size_t i = 8;
    while (i < n && i - 8 < len && (h[i] == ' ' || h[i] == '\t' || h[i] == '\n' || h[i] == '\r'))
        i++;
    return i < n && i - 8 < len && h[i] == '{';
}

static ttsm_status detect_and_read(ttsm_checkpoint *ck, ttsm_error *err)
{
    const ttsm__file *f = &ck->files[0];
    unsigned char h[64] = {0}; /* bytes past a short file read as 0 */
    size_t n = f->size < sizeof h ? (size_t)f->size : sizeof h;
    ttsm_status st = ttsm__file_read(f, 0, h, n, err);
    if (st != TTSM_OK)
        return st;
    if (n == 0)
        return ttsm__err(err, TTSM_ERR_FORMAT, f->path, "not a checkpoint", "the file is empty");
    if (n >= 4 && memcmp(h, "GGUF", 4) == 0)
        return ttsm__read_gguf(ck, 0, err);
    if (n >= 4 && memcmp(h, "FUGG", 4) == 0)
        return ttsm__err(err, TTSM_ERR_FORMAT, f->path, "bad magic",
                         "magic 'FUGG' at offset 0: a pre-release GGUF prototype (mid-2023), not the "
                         "released format; convert the model again with a current llama.cpp");
    /* Before the pickle test: header lengths such as 0x280 begin 80 02. */
    if (safetensors_start(h, n, f->size))
        return ttsm__read_safetensors(ck, 0, err);
    if (n >= 4 && h[0] == 'P' && h[1] == 'K' &&
        ((h[2] == 3 && h[3] == 4) || (h[2] == 5 && h[3] == 6)))
        return ttsm__read_torch_zip(ck, 0, err);
    if (h[0] == 0x80 && n >= 2 && h[1] >= 2 && h[1] <= 5)
        return ttsm__read_torch_zip(ck, 0, err); /* a bare pickle: legacy torch.save */
    if (n >= 9 && h[8] == '{') /* a header length that does not fit: says so */
        return ttsm__read_safetensors(ck, 0, err);
    /* A header or an index saved with a UTF-8 byte order mark: the readers
     * name it (JSON does not allow one). */
    if (n >= 11 && memcmp(h + 8, "\xef\xbb\xbf", 3) == 0 && le64(h) <= f->size - 8)
        return ttsm__read_safetensors(ck, 0, err);
    size_t i = n >= 3 && memcmp(h, "\xef\xbb\xbf", 3) == 0 ? 3 : 0;
    while (i < n && (h[i] == ' ' || h[i] == '\t' || h[i] == '\n' || h[i] == '\r'))
        i++;
    if (i < n && h[i] == '{')
        return ttsm__read_safetensors_index(ck, 0, err);

    const char *what = NULL;
    if (n >= 23 && memcmp(h, "version https://git-lfs", 23) == 0)
        what = "a Git LFS pointer, not the file itself; fetch the real file (git lfs pull)";
    else if (n >= 6 && memcmp(h, "\x93NUMPY", 6) == 0)
        what = "a NumPy .npy array, which ttsm does not read";
    else if (n >= 4 && memcmp(h, "\x89HDF", 4) == 0)
        what = "an HDF5 file (Keras?), which ttsm does not read";
    else if (n >= 2 && h[0] == 0x1f && h[1] == 0x8b)
        what = "a gzip stream; decompress it first";
    else if (n >= 4 && memcmp(h, "\x7f" "ELF", 4) == 0)
        what = "an ELF executable or library";
    else if (n >= 2 && h[0] == 'I' && (h[1] == 'x' || h[1] == 'w' || h[1] == 'b'))
        what = "a FAISS index (a blob for engines, not a checkpoint)";
    if (what)
        return ttsm__err(err, TTSM_ERR_FORMAT, f->path, "not a checkpoint", "looks like %s", what);
    uint64_t len = le64(h);
    if (n >= 9 && len >= 2 && len < (1ull << 32)) {
        /* The first 8 bytes read like a safetensors header length (its
         * high bytes are zero): most likely a damaged safetensors file. */
        char fits[96];
        if (len <= f->size - 8)
            snprintf(fits, sizeof fits, "which fits the file");
        else
            snprintf(fits, sizeof fits, "more than the %llu bytes the file has after them",
                     (unsigned long long)(f->size - 8));
        return ttsm__err(err, TTSM_ERR_FORMAT, f->path, "unknown format",
                         "first bytes %02x %02x %02x %02x %02x %02x %02x %02x read as a safetensors "
                         "header length of %llu bytes (%s), but the byte at offset 8 is 0x%02x, "
                         "not the '{' that starts the header: the header length or the header is "
                         "damaged; download the file again (ttsm verify checks a file)",
                         h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7], (unsigned long long)len,
                         fits, h[8]);
    }
    return ttsm__err(err, TTSM_ERR_FORMAT, f->path, "unknown format",
                     "first bytes %02x %02x %02x %02x %02x %02x %02x %02x match no supported "
                     "format (safetensors, sharded safetensors index, GGUF, PyTorch zip)",
                     h[0], n > 1 ? h[1] : 0, n > 2 ? h[2] : 0, n > 3 ? h[3] : 0,
                     n > 4 ? h[4] : 0, n > 5 ? h[5] : 0, n > 6 ? h[6] : 0, n > 7 ? h[7] : 0);
}

/* A file, or memory (fuzzing), then detection and the reader. */
static ttsm_status open_source(const char *name, int memory, const void *data, size_t size,
                               const ttsm_checkpoint_options *opts, ttsm_checkpoint **out,
                               ttsm_error *err)
{
    ttsm_checkpoint *ck = NULL;
    ttsm_status st = ttsm__ckpt_new(name, opts, &ck, err);
    if (st != TTSM_OK)
        return st;
    uint32_t fi;
    st = memory ? ttsm__ckpt_add_memory(ck, name, data, size, 0, &fi, err)
              : ttsm__ckpt_add_file(ck, name, &fi, err);
    if (st == TTSM_OK)
        st = detect_and_read(ck, err);
    if (st != TTSM_OK) {
        ttsm_checkpoint_close(ck);
        return st;
    }
    *out = ck;
    return TTSM_OK;
}

ttsm_status ttsm_checkpoint_open(const char *path, const ttsm_checkpoint_options *options,
                                 ttsm_checkpoint **out, ttsm_error *err)
{
    if (!path || !*path || !out)
        return ttsm__err(err, TTSM_ERR_INVALID_ARGUMENT, NULL, "ttsm_checkpoint_open",
                         "path and out must be given");
    ttsm_status st = open_source(path, 0, NULL, 0, options, out, err);
    /* A file that breaks a rule is damaged (a cut download, a disk error)
     * or not what its name says: say how to check it and what to do. */
    if (st == TTSM_ERR_FORMAT && err && !err->hint[0])
        ttsm__err_hint(err, "the file is damaged or not a checkpoint: `ttsm verify %s` checks "
                            "every byte; if it was downloaded, download it again",
                       path);
    return st;
}

ttsm_status ttsm__checkpoint_open_memory(const void *data, size_t size, const char *name,
                                         const ttsm_checkpoint_options *opts,
                                         ttsm_checkpoint **out, ttsm_error *err)
{
    return open_source(name, 1, data, size, opts, out, err);
}
