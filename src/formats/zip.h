/* zip.h - a strict read-only zip reader for checkpoint archives
 * (torch.save >= 1.6 writes one). It reads the central directory, checks
 * every entry against its local header and hands out where each member's
 * bytes lie, so stored members can be used in place; deflated members are
 * inflated into owned buffers under a size cap (storages lazily, when their
 * bytes are first asked for: torch.c).
 *
 * On-disk layout (all integers little-endian; APPNOTE 6.3):
 *   [local header 30 B + name + extra][data][data descriptor?] ... per member
 *   [central directory: 46 B + name + extra + comment per member]
 *   [ZIP64 end record 56 B][ZIP64 locator 20 B]   (only in ZIP64 archives)
 *   [end of central directory 22 B + comment]
 */
#ifndef TTSM_ZIP_INTERNAL_H
#define TTSM_ZIP_INTERNAL_H

#include "formats/table.h"

/* Caps on what a directory may make us allocate or scan. */
#define TTSM__ZIP_MAX_ENTRIES (1u << 24)
#define TTSM__ZIP_MAX_CD_BYTES (1ull << 30)
/* Deflate cannot expand by more than about 1032:1 (258-byte matches coded
 * in 2 bits); a member that claims more is a bomb or a lie. */
#define TTSM__ZIP_MAX_RATIO 1032u

#define TTSM__ZIP_STORED 0
#define TTSM__ZIP_DEFLATED 8

typedef struct ttsm__zip_entry {
    const char *name;       /* NUL-terminated copy, owned by the ttsm__zip */
    uint32_t name_len;
    uint16_t method;        /* TTSM__ZIP_STORED or TTSM__ZIP_DEFLATED */
    uint16_t flags;
    uint32_t crc32;
    uint64_t comp_size;     /* bytes of (compressed) data at data_offset */
    uint64_t size;          /* bytes once inflated */
    uint64_t header_offset; /* the local header */
    uint64_t data_offset;   /* absolute offset of the member's data */
} ttsm__zip_entry;

typedef struct ttsm__zip {
    ttsm__zip_entry *entries; /* central directory order */
    size_t n_entries;
    const ttsm__zip_entry **by_name; /* sorted by name, for ttsm__zip_find */
    char *names;
    uint64_t cd_offset, cd_size;
    int zip64; /* 1 when the archive has ZIP64 end records */
} ttsm__zip;

/* Reads and validates the directory of the zip in `f`: end record found
 * within the last 64 KiB + 22 bytes, ZIP64 records when present (and
 * consistent with the classic ones), every central entry's name (relative,
 * no "..", no backslash or control bytes, unique), method (stored or
 * deflated, never encrypted), sizes against its local header, data inside
 * the file and before the directory, no two members overlapping. Does not
 * read member data. On failure `z` is left empty (ttsm__zip_close is still
 * safe). @return TTSM_OK, TTSM_ERR_FORMAT or TTSM_ERR_OUT_OF_MEMORY. */
ttsm_status ttsm__zip_open(const ttsm__file *f, ttsm__zip *z, ttsm_error *err);
void ttsm__zip_close(ttsm__zip *z);

/* O(log n) lookup by exact name. @return NULL when absent. */
const ttsm__zip_entry *ttsm__zip_find(const ttsm__zip *z, const char *name, size_t len);

/* The checks a member passes before any of it is read: its size is at most
 * `cap`, its declared ratio possible for deflate, its size addressable. */
ttsm_status ttsm__zip_check_size(const ttsm__file *f, const ttsm__zip_entry *e, uint64_t cap,
                                 ttsm_error *err);

/* Reads (stored) or inflates (deflated) a member that passed
 * ttsm__zip_check_size into `out` (e->size bytes), refusing a stream that
 * inflates to more or fewer bytes than declared, and checks the CRC-32. */
ttsm_status ttsm__zip_read_into(const ttsm__file *f, const ttsm__zip_entry *e, void *out,
                                ttsm_error *err);

/* Reads a member into a new 64-byte-aligned buffer (free with ttsm__free):
 * stored members are copied, deflated ones inflated. Refuses a member whose
 * size is over `cap`, whose declared ratio is impossible for deflate, or
 * that inflates to more or fewer bytes than declared; checks the CRC-32.
 * `*out` is NULL for an empty member. */
ttsm_status ttsm__zip_extract(const ttsm__file *f, const ttsm__zip_entry *e, uint64_t cap,
                              void **out, ttsm_error *err);

#endif
