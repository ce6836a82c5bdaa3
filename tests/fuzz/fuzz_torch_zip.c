/* fuzz_torch_zip.c - libFuzzer harness for the zip reader and the PyTorch
 * archive reader: the input is a zip (or a legacy torch.save stream); every
 * member it lists is extracted under a small cap, then the whole torch reader
 * runs. Failures must carry their code and a message naming the file; on
 * success every tensor byte is touched, each in-file tensor must lie inside
 * the input and every metadata value must be JSON. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "fuzz_common.h"
#include "formats/torch.h"
#include "formats/zip.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_error(ttsm_status st, const ttsm_error *err)
{
    if (err->code != st || !strstr(err->message, "fuzz.pt: "))
        abort();
    fuzz_check_message(err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ttsm_error err;
    ttsm__file f;
    memset(&f, 0, sizeof f);
    f.path = (char *)"fuzz.pt";
    f.fd = -1;
    f.mem = data;
    f.size = size;
    ttsm__zip z;
    ttsm_status st = ttsm__zip_open(&f, &z, &err);
    if (st == TTSM_OK) {
        for (size_t i = 0; i < z.n_entries; i++) {
            const ttsm__zip_entry *e = &z.entries[i];
            if (e->data_offset > size || e->comp_size > size - e->data_offset ||
                ttsm__zip_find(&z, e->name, e->name_len) != e)
                abort();
            void *out;
            st = ttsm__zip_extract(&f, e, 1u << 20, &out, &err);
            if (st != TTSM_OK)
                check_error(st, &err);
            ttsm__free(out);
        }
    } else {
        check_error(st, &err);
    }
    ttsm__zip_close(&z);

    ttsm_checkpoint_options o = ttsm_checkpoint_options_default();
    o.max_inflate_bytes = 16u << 20;
    ttsm_checkpoint *ck = NULL;
    uint32_t fi;
    if (ttsm__ckpt_new("fuzz.pt", &o, &ck, &err) != TTSM_OK)
        return 0;
    if (ttsm__ckpt_add_memory(ck, "fuzz.pt", data, size, 0, &fi, &err) != TTSM_OK) {
        ttsm_checkpoint_close(ck);
        return 0;
    }
    st = ttsm__read_torch_zip(ck, fi, &err);
    if (st != TTSM_OK) {
        check_error(st, &err);
        ttsm_checkpoint_close(ck);
        return 0;
    }
    if (ttsm_checkpoint_format(ck) != TTSM_FORMAT_PYTORCH_ZIP)
        abort();
    fuzz_check_checkpoint(ck, size, TTSM__MAX_RANK);
    ttsm_checkpoint_close(ck);
    return 0;
}
