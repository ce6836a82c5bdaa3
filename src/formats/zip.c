/* zip.c - strict zip directory reader and member extraction for PyTorch
 * archives (layout in zip.h). Every size and offset comes from the
 * file, so each is range-checked before use; the classic and ZIP64 records
 * and the central and local headers must agree with each other. */
#include "formats/zip.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "base/alloc.h"
#include "base/text.h"

#define EOCD_SIZE 22u
#define EOCD_MAX_COMMENT 65535u
#define Z64_LOCATOR_SIZE 20u
#define Z64_EOCD_SIZE 56u
#define CDH_SIZE 46u
#define LFH_SIZE 30u

#define FLAG_ENCRYPTED 0x0001u
#define FLAG_DESCRIPTOR 0x0008u
#define FLAG_STRONG_ENCRYPTION 0x0040u
#define FLAG_MASKED_HEADERS 0x2000u

static uint16_t rd16(const unsigned char *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t rd32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t rd64(const unsigned char *p)
{
    return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32;
}

/* A name printable in messages: at most 120 bytes, through the one
 * sanitiser (base/text.h). */
static const char *shown(const char *name, size_t len, char buf[128])
{
    return ttsm__printable(name, len, buf, 124);
}

/* ---- end records -------------------------------------------------------- */

typedef struct dir_loc {
    uint64_t n_entries, cd_size, cd_offset;
    uint64_t end; /* where the directory must end: the first end record */
    int zip64;
} dir_loc;

static ttsm_status find_end(const ttsm__file *f, dir_loc *loc, ttsm_error *err)
{
    const char *path = f->path;
    if (f->size < EOCD_SIZE)
        return ttsm__err(err, TTSM_ERR_FORMAT, path, "not a zip archive",
                         "%llu bytes is shorter than a zip end record (22 bytes)",
                         (unsigned long long)f->size);
    size_t tail = (size_t)(f->size < EOCD_SIZE + EOCD_MAX_COMMENT ? f->size
                                                                    : EOCD_SIZE + EOCD_MAX_COMMENT);
    uint64_t tail_off = f->size - tail;
    unsigned char *buf = ttsm__malloc(tail);
    if (!buf)
        return ttsm__err(err, TTSM_ERR_OUT_OF_MEMORY, path, "out of memory",
                         "reading the zip end record");
    ttsm_status st = ttsm__file_read(f, tail_off, buf, tail, err);
    if (st != TTSM_OK) {
        ttsm__free(buf);
        return st;
    }
    /* The record is the last "PK\5\6" whose comment length reaches exactly
     * the end of the file; a signature inside a comment does not qualify. */
    size_t at = SIZE_MAX;
    for (size_t i = tail - EOCD_SIZE + 1; i-- > 0;) {
        if (memcmp(buf + i, "PK\5\6", 4) == 0 && rd16(buf + i + 20) == tail - i - EOCD_SIZE) {
            at = i;
            break;
        }
    }
    if (at == SIZE_MAX) {
        ttsm__free(buf);
        return ttsm__err(err, TTSM_ERR_FORMAT, path, "not a zip archive",
                         "no end of central directory record in the last %zu bytes "
                         "(truncated file?)",
                         tail);
    }
    const unsigned char *e = buf + at;
    uint64_t eocd_off = tail_off + at;
    uint16_t disk = rd16(e + 4), cd_disk = rd16(e + 6), n_disk = rd16(e + 8), n_total = rd16(e + 10);
    uint32_t cd_size = rd32(e + 12), cd_off = rd32(e + 16);
    ttsm__free(buf);
    unsigned char locator[Z64_LOCATOR_SIZE];
    int has_locator = 0;
    if (eocd_off >= Z64_LOCATOR_SIZE) {
        if ((st = ttsm__file_read(f, eocd_off - Z64_LOCATOR_SIZE, locator, sizeof locator, err)) !=
            TTSM_OK)
            return st;
        has_locator = memcmp(locator, "PK\6\7", 4) == 0;
    }

    int saturated = disk == 0xffff || cd_disk == 0xffff || n_disk == 0xffff ||
                    n_total == 0xffff || cd_size == 0xffffffffu || cd_off == 0xffffffffu;
    memset(loc, 0, sizeof *loc);
    if (!has_locator) {
        if (saturated)
            return ttsm__err(err, TTSM_ERR_FORMAT, path, "bad zip end record",
                             "end record at offset %llu has ZIP64 placeholder values but no "
                             "ZIP64 locator precedes it",
                             (unsigned long long)eocd_off);
        if (disk != 0 || cd_disk != 0 || n_disk != n_total)
            return ttsm__err(err, TTSM_ERR_FORMAT, path, "multi-disk zip",
                             "end record at offset %llu describes a split archive (disk %u, "
                             "directory disk %u); join the parts first",
                             (unsigned long long)eocd_off, disk, cd_disk);
        loc->n_entries = n_total;
        loc->cd_size = cd_size;
        loc->cd_offset = cd_off;
        loc->end = eocd_off;
        return TTSM_OK;
    }

    uint64_t loc_off = eocd_off - Z64_LOCATOR_SIZE;
    uint32_t z64_disk = rd32(locator + 4), n_disks = rd32(locator + 16);
    uint64_t z64_off = rd64(locator + 8);
    if (z64_disk != 0 || n_disks > 1)
        return ttsm__err(err, TTSM_ERR_FORMAT, path, "multi-disk zip",
                         "ZIP64 locator at offset %llu names disk %u of %u; join the parts first",
                         (unsigned long long)loc_off, z64_disk, n_disks);
    if (z64_off > loc_off || loc_off - z64_off < Z64_EOCD_SIZE)
        return ttsm__err(err, TTSM_ERR_FORMAT, path, "bad ZIP64 locator",
                         "locator at offset %llu points to offset %llu, which leaves no room "
                         "for the 56-byte ZIP64 end record before it",
                         (unsigned long long)loc_off, (unsigned long long)z64_off);
    unsigned char z[Z64_EOCD_SIZE];
    if ((st = ttsm__file_read(f, z64_off, z, sizeof z, err)) != TTSM_OK)
        return st;
    uint64_t rec_size = rd64(z + 4);
    if (memcmp(z, "PK\6\6", 4) != 0 || rec_size < Z64_EOCD_SIZE - 12 ||
        rec_size > loc_off - z64_off - 12)
        return ttsm__err(err, TTSM_ERR_FORMAT, path, "bad ZIP64 end record",
                         "no valid ZIP64 end record at offset %llu (signature or record size "
                         "%llu wrong)",
                         (unsigned long long)z64_off, (unsigned long long)rec_size);
    uint32_t zdisk = rd32(z + 16), zcd_disk = rd32(z + 20);
    uint64_t zn_disk = rd64(z + 24), zn_total = rd64(z + 32), zcd_size = rd64(z + 40),
             zcd_off = rd64(z + 48);
    if (zdisk != 0 || zcd_disk != 0 || zn_disk != zn_total)
        return ttsm__err(err, TTSM_ERR_FORMAT, path, "multi-disk zip",
                         "ZIP64 end record at offset %llu describes a split archive",
                         (unsigned long long)z64_off);
    /* Classic fields are either placeholders or the same values. */
    if ((n_total != 0xffff && n_total != zn_total) ||
        (cd_size != 0xffffffffu && cd_size != zcd_size) ||
        (cd_off != 0xffffffffu && cd_off != zcd_off))
        return ttsm__err(err, TTSM_ERR_FORMAT, path, "inconsistent zip end records",
                         "end record at offset %llu says %u entries / %u directory bytes at "
                         "offset %u, the ZIP64 record says %llu / %llu at %llu",
                         (unsigned long long)eocd_off, n_total, cd_size, cd_off,
                         (unsigned long long)zn_total, (unsigned long long)zcd_size,
                         (unsigned long long)zcd_off);
    loc->n_entries = zn_total;
    loc->cd_size = zcd_size;
    loc->cd_offset = zcd_off;
    loc->end = z64_off;
    loc->zip64 = 1;
    return TTSM_OK;
}

/* ---- names -------------------------------------------------------------- */

/* Member names are paths inside the archive: relative, '/'-separated, no
 * "." or ".." component, no backslash, drive colon or control bytes. A
 * trailing '/' marks a folder entry. */
static ttsm_status check_name(const char *path, const char *name, size_t len, uint64_t cd_off,
                              ttsm_error *err)
{
    char sb[128];
    const char *why = NULL;
    if (len == 0)
        why = "is empty";
    else if (name[0] == '/')
        why = "is absolute: it would point outside the archive";
    for (size_t i = 0; !why && i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c < 0x20 || c == 0x7f)
            why = "holds a control byte";
        else if (c == '\\')
            why = "holds a backslash (a Windows path separator)";
        else if (c == ':')
            why = "holds a colon (a drive or stream name)";
    }
    for (size_t s = 0; !why && s < len;) {
        size_t e = s;
        while (e < len && name[e] != '/')
            e++;
        size_t n = e - s;
        if (n == 2 && name[s] == '.' && name[s + 1] == '.')
            why = "has a '..' component: it would point outside the archive";
        else if (n == 1 && name[s] == '.')
            why = "has a '.' component";
        else if (n == 0 && e < len)
            why = "has an empty component";
        s = e + 1;
    }
    if (!why)
        return TTSM_OK;
    return ttsm__err(err, TTSM_ERR_FORMAT, path, "bad zip entry name",
                     "entry '%s' (central directory offset %llu) %s", shown(name, len, sb),
                     (unsigned long long)cd_off, why);
}

/* ---- extra fields --------------------------------------------------------- */

/* Fills the 0xffffffff placeholders of the sizes and header offset from
 * the ZIP64 extra field (id 1), whose values come in APPNOTE order and only
 * for the fields that need them. @return 0; 1 when a field runs past the
 * extra area; 2 when a needed ZIP64 value is missing. */
static int zip64_extra(const unsigned char *extra, size_t len, uint64_t *usize, uint64_t *csize,
                       uint64_t *hoff, int need_u, int need_c, int need_h)
{
    size_t p = 0;
    int found = 0;
    while (p < len) {
        if (len - p < 4)
            break; /* alignment padding some writers leave */
        uint16_t id = rd16(extra + p), n = rd16(extra + p + 2);
        if (n > len - p - 4)
            return 1;
        if (id == 0x0001 && !found) {
            const unsigned char *d = extra + p + 4;
            size_t q = 0;
            uint64_t *dst[3] = {need_u ? usize : NULL, need_c ? csize : NULL,
                                need_h ? hoff : NULL};
            for (int k = 0; k < 3; k++) {
                if (!dst[k])
                    continue;
                if (q + 8 > n)
                    return 2;
                *dst[k] = rd64(d + q);
                q += 8;
            }
            found = 1;
        }
        p += 4 + (size_t)n;
    }
    return !found && (need_u || need_c || need_h) ? 2 : 0;
}

/* ---- directory ------------------------------------------------------------ */

static int by_name_cmp(const void *a, const void *b)
{
    const ttsm__zip_entry *x = *(const ttsm__zip_entry *const *)a;
    const ttsm__zip_entry *y = *(const ttsm__zip_entry *const *)b;
    size_t n = x->name_len < y->name_len ? x->name_len : y->name_len;
    int c = memcmp(x->name, y->name, n);
    if (c)
        return c;
    return x->name_len < y->name_len ? -1 : x->name_len > y->name_len;
}

typedef struct span {
    uint64_t start, end;
    uint32_t entry;
} span;

static int span_cmp(const void *a, const void *b)
{
    const span *x = a, *y = b;
    return x->start < y->start ? -1 : x->start > y->start;
}

/* Checks one entry against its local header and sets data_offset. */
static ttsm_status check_local(const ttsm__file *f, ttsm__zip_entry *e, uint64_t cd_offset,
                               unsigned char *scratch, ttsm_error *err)
{
    char sb[128];
    const char *path = f->path;
    const char *nm = shown(e->name, e->name_len, sb);
    if (e->header_offset > cd_offset || cd_offset - e->header_offset < LFH_SIZE)
        return ttsm__err(err, TTSM_ERR_FORMAT, path, "bad zip entry",
                         "entry '%s': local header offset %llu is not before the central "
                         "directory (offset %llu)",
                         nm, (unsigned long long)e->header_offset, (unsigned long long)cd_offset);
    /* One read for the header, its name and (usually) its extra field: a
     * system call per member is most of the cost of opening a zip. */
    unsigned char *h = scratch;
    uint64_t room = cd_offset - e->header_offset, want = LFH_SIZE + (uint64_t)e->name_len + 256;
    size_t got = (size_t)(want < room ? want : room);
    ttsm_status st = ttsm__file_read(f, e->header_offset, h, got, err);
    if (st != TTSM_OK)
        return st;
    if (memcmp(h, "PK\3\4", 4) != 0)
        return ttsm__err(err, TTSM_ERR_FORMAT, path, "bad zip entry",
                         "entry '%s': no local header signature at offset %llu", nm,
                         (unsigned long long)e->header_offset);
    uint16_t lflags = rd16(h + 6), lmethod = rd16(h + 8), lname = rd16(h + 26), lextra = rd16(h + 28);
    uint32_t lcrc = rd32(h + 14), lcsize = rd32(h + 18), lusize = rd32(h + 22);
    if (lflags & (FLAG_ENCRYPTED | FLAG_STRONG_ENCRYPTION))
        return ttsm__err(err, TTSM_ERR_FORMAT, path, "encrypted zip entry",
                         "entry '%s' is encrypted (local header at offset %llu)", nm,
                         (unsigned long long)e->header_offset);
    if (lmethod != e->method || lname != e->name_len)
        return ttsm__err(err, TTSM_ERR_FORMAT, path, "zip headers disagree",
                         "entry '%s': local header at offset %llu says method %u and a %u-byte "
                         "name, the central directory method %u and %u bytes",
                         nm, (unsigned long long)e->header_offset, lmethod, lname, e->method,
                         e->name_len);
    uint64_t var = (uint64_t)lname + lextra;
    if (var > cd_offset - e->header_offset - LFH_SIZE)
        return ttsm__err(err, TTSM_ERR_FORMAT, path, "bad zip entry",
                         "entry '%s': local header at offset %llu runs into the central "
                         "directory",
                         nm, (unsigned long long)e->header_offset);
    if (LFH_SIZE + var > got &&
        (st = ttsm__file_read(f, e->header_offset + got, h + got, (size_t)(LFH_SIZE + var - got),
                              err)) != TTSM_OK)
        return st;
    scratch = h + LFH_SIZE;
    if (memcmp(scratch, e->name, lname) != 0)
        return ttsm__err(err, TTSM_ERR_FORMAT, path, "zip headers disagree",
                         "entry '%s': the local header at offset %llu names another file", nm,
                         (unsigned long long)e->header_offset);
    if (!(lflags & FLAG_DESCRIPTOR)) {
        /* Without a data descriptor the local header carries the real
         * values, and they must be the central directory's. */
        uint64_t us = lusize, cs = lcsize, unused = 0;
        int x = zip64_extra(scratch + lname, lextra, &us, &cs, &unused, lusize == 0xffffffffu,
                            lcsize == 0xffffffffu, 0);
        if (x != 0)
            return ttsm__err(err, TTSM_ERR_FORMAT, path, "bad zip extra field",
                             "entry '%s': local header at offset %llu %s", nm,
                             (unsigned long long)e->header_offset,
                             x == 1 ? "has malformed extra fields"
                                    : "needs ZIP64 sizes it does not have");
        if (lcrc != e->crc32 || us != e->size || cs != e->comp_size)
            return ttsm__err(err, TTSM_ERR_FORMAT, path, "zip headers disagree",
                             "entry '%s': local header at offset %llu says crc %08x, %llu/%llu "
                             "bytes; the central directory says %08x, %llu/%llu",
                             nm, (unsigned long long)e->header_offset, lcrc,
                             (unsigned long long)cs, (unsigned long long)us, e->crc32,
                             (unsigned long long)e->comp_size, (unsigned long long)e->size);
    }
    e->data_offset = e->header_offset + LFH_SIZE + var;
    if (e->comp_size > cd_offset - e->data_offset)
        return ttsm__err(err, TTSM_ERR_FORMAT, path, "bad zip entry",
                         "entry '%s': %llu bytes of data at offset %llu run past the start of "
                         "the central directory (offset %llu)",
                         nm, (unsigned long long)e->comp_size, (unsigned long long)e->data_offset,
                         (unsigned long long)cd_offset);
    return TTSM_OK;
}

static ttsm_status parse_directory(const ttsm__file *f, ttsm__zip *z, const unsigned char *cd,
                                   const dir_loc *loc, ttsm_error *err)
{
    const char *path = f->path;
    char sb[128];
    size_t pos = 0, names_used = 0;
    for (size_t i = 0; i < z->n_entries; i++) {
        uint64_t at = loc->cd_offset + pos;
        if (loc->cd_size - pos < CDH_SIZE || memcmp(cd + pos, "PK\1\2", 4) != 0)
            return ttsm__err(err, TTSM_ERR_FORMAT, path, "bad central directory",
                             "entry %zu of %zu: no central header at offset %llu", i,
                             z->n_entries, (unsigned long long)at);
        const unsigned char *h = cd + pos;
        uint16_t flags = rd16(h + 8), method = rd16(h + 10), nlen = rd16(h + 28),
                 xlen = rd16(h + 30), clen = rd16(h + 32), disk = rd16(h + 34);
        uint32_t crc = rd32(h + 16), csize = rd32(h + 20), usize = rd32(h + 24),
                 hoff = rd32(h + 42);
        size_t rec = (size_t)CDH_SIZE + nlen + xlen + clen;
        if (rec > loc->cd_size - pos)
            return ttsm__err(err, TTSM_ERR_FORMAT, path, "bad central directory",
                             "entry %zu at offset %llu runs past the end of the directory", i,
                             (unsigned long long)at);
        const char *name = (const char *)h + CDH_SIZE;
        ttsm_status st = check_name(path, name, nlen, at, err);
        if (st != TTSM_OK)
            return st;
        const char *nm = shown(name, nlen, sb);
        if (flags & (FLAG_ENCRYPTED | FLAG_STRONG_ENCRYPTION | FLAG_MASKED_HEADERS))
            return ttsm__err(err, TTSM_ERR_FORMAT, path, "encrypted zip entry",
                             "entry '%s' is encrypted; ttsm reads plain archives only", nm);
        if (method != TTSM__ZIP_STORED && method != TTSM__ZIP_DEFLATED)
            return ttsm__err(err, TTSM_ERR_FORMAT, path, "unsupported zip compression",
                             "entry '%s' uses compression method %u; only stored (0) and "
                             "deflated (8) are supported",
                             nm, method);
        uint64_t us = usize, cs = csize, ho = hoff;
        int x = zip64_extra(h + CDH_SIZE + nlen, xlen, &us, &cs, &ho, usize == 0xffffffffu,
                            csize == 0xffffffffu, hoff == 0xffffffffu);
        if (x != 0)
            return ttsm__err(err, TTSM_ERR_FORMAT, path, "bad zip extra field",
                             "entry '%s' at central directory offset %llu %s", nm,
                             (unsigned long long)at,
                             x == 1 ? "has malformed extra fields"
                                    : "has ZIP64 placeholders without a complete ZIP64 extra "
                                      "field");
        if (disk != 0 && !(disk == 0xffff && loc->zip64))
            return ttsm__err(err, TTSM_ERR_FORMAT, path, "multi-disk zip",
                             "entry '%s' starts on disk %u", nm, disk);
        if (method == TTSM__ZIP_STORED && us != cs)
            return ttsm__err(err, TTSM_ERR_FORMAT, path, "bad zip entry",
                             "stored entry '%s' has %llu compressed but %llu uncompressed bytes",
                             nm, (unsigned long long)cs, (unsigned long long)us);
        ttsm__zip_entry *e = &z->entries[i];
        char *copy = z->names + names_used;
        memcpy(copy, name, nlen);
        copy[nlen] = '\0';
        names_used += (size_t)nlen + 1;
        e->name = copy;
        e->name_len = nlen;
        e->method = method;
        e->flags = flags;
        e->crc32 = crc;
        e->comp_size = cs;
        e->size = us;
        e->header_offset = ho;
        pos += rec;
    }
    if (pos != loc->cd_size)
        return ttsm__err(err, TTSM_ERR_FORMAT, path, "bad central directory",
                         "%zu entries use %zu of the %llu directory bytes the end record "
                         "declares",
                         z->n_entries, pos, (unsigned long long)loc->cd_size);
    return TTSM_OK;
}

static ttsm_status cross_check(const ttsm__file *f, ttsm__zip *z, ttsm_error *err)
{
    const char *path = f->path;
    char sb[128], sb2[128];
    unsigned char *scratch = ttsm__malloc(2u * 65536u + LFH_SIZE);
    span *sp = ttsm__calloc(z->n_entries ? z->n_entries : 1, sizeof *sp);
    ttsm_status st = TTSM_OK;
    if (!scratch || !sp) {
        st = ttsm__err(err, TTSM_ERR_OUT_OF_MEMORY, path, "out of memory",
                       "checking %zu zip entries", z->n_entries);
        goto done;
    }
    for (size_t i = 0; i < z->n_entries; i++) {
        if ((st = check_local(f, &z->entries[i], z->cd_offset, scratch, err)) != TTSM_OK)
            goto done;
        sp[i].start = z->entries[i].header_offset;
        sp[i].end = z->entries[i].data_offset + z->entries[i].comp_size;
        sp[i].entry = (uint32_t)i;
    }
    /* Members that share bytes are the classic way to make a small file
     * inflate without bound; a writer never produces them. */
    qsort(sp, z->n_entries, sizeof *sp, span_cmp);
    for (size_t i = 1; i < z->n_entries; i++) {
        if (sp[i].start < sp[i - 1].end) {
            const ttsm__zip_entry *a = &z->entries[sp[i - 1].entry], *b = &z->entries[sp[i].entry];
            st = ttsm__err(err, TTSM_ERR_FORMAT, path, "overlapping zip entries",
                           "entry '%s' (offset %llu) begins inside entry '%s' (offset %llu to "
                           "%llu)",
                           shown(b->name, b->name_len, sb), (unsigned long long)sp[i].start,
                           shown(a->name, a->name_len, sb2), (unsigned long long)sp[i - 1].start,
                           (unsigned long long)sp[i - 1].end);
            goto done;
        }
    }
    for (size_t i = 0; i < z->n_entries; i++)
        z->by_name[i] = &z->entries[i];
    qsort(z->by_name, z->n_entries, sizeof *z->by_name, by_name_cmp);
    for (size_t i = 1; i < z->n_entries; i++) {
        if (by_name_cmp(&z->by_name[i - 1], &z->by_name[i]) == 0) {
            st = ttsm__err(err, TTSM_ERR_FORMAT, path, "duplicate zip entry",
                           "entry '%s' appears twice",
                           shown(z->by_name[i]->name, z->by_name[i]->name_len, sb));
            goto done;
        }
    }
done:
    ttsm__free(scratch);
    ttsm__free(sp);
    return st;
}

ttsm_status ttsm__zip_open(const ttsm__file *f, ttsm__zip *z, ttsm_error *err)
{
    memset(z, 0, sizeof *z);
    const char *path = f->path;
    dir_loc loc;
    ttsm_status st = find_end(f, &loc, err);
    if (st != TTSM_OK)
        return st;
    if (loc.cd_offset > loc.end || loc.cd_size > loc.end - loc.cd_offset)
        return ttsm__err(err, TTSM_ERR_FORMAT, path, "bad central directory",
                         "%llu directory bytes at offset %llu pass the end records at offset "
                         "%llu",
                         (unsigned long long)loc.cd_size, (unsigned long long)loc.cd_offset,
                         (unsigned long long)loc.end);
    if (loc.cd_size > TTSM__ZIP_MAX_CD_BYTES)
        return ttsm__err(err, TTSM_ERR_FORMAT, path, "central directory too large",
                         "%llu bytes, the limit is %llu", (unsigned long long)loc.cd_size,
                         (unsigned long long)TTSM__ZIP_MAX_CD_BYTES);
    if (loc.n_entries > TTSM__ZIP_MAX_ENTRIES || loc.n_entries > loc.cd_size / CDH_SIZE)
        return ttsm__err(err, TTSM_ERR_FORMAT, path, "bad central directory",
                         "%llu entries cannot fit in %llu directory bytes (limit %u entries)",
                         (unsigned long long)loc.n_entries, (unsigned long long)loc.cd_size,
                         TTSM__ZIP_MAX_ENTRIES);
    z->n_entries = (size_t)loc.n_entries;
    z->cd_offset = loc.cd_offset;
    z->cd_size = loc.cd_size;
    z->zip64 = loc.zip64;
    unsigned char *cd = ttsm__malloc((size_t)loc.cd_size);
    z->entries = ttsm__calloc(z->n_entries ? z->n_entries : 1, sizeof *z->entries);
    z->by_name = ttsm__calloc(z->n_entries ? z->n_entries : 1, sizeof *z->by_name);
    /* Names are shorter than their records, so the directory size bounds them. */
    z->names = ttsm__malloc((size_t)loc.cd_size + 1);
    if (!cd || !z->entries || !z->by_name || !z->names) {
        st = ttsm__err(err, TTSM_ERR_OUT_OF_MEMORY, path, "out of memory",
                       "reading a zip directory of %llu bytes", (unsigned long long)loc.cd_size);
        goto fail;
    }
    if ((st = ttsm__file_read(f, loc.cd_offset, cd, (size_t)loc.cd_size, err)) != TTSM_OK)
        goto fail;
    if ((st = parse_directory(f, z, cd, &loc, err)) != TTSM_OK)
        goto fail;
    if ((st = cross_check(f, z, err)) != TTSM_OK)
        goto fail;
    ttsm__free(cd);
    return TTSM_OK;
fail:
    ttsm__free(cd);
    ttsm__zip_close(z);
    return st;
}

void ttsm__zip_close(ttsm__zip *z)
{
    if (!z)
        return;
    ttsm__free(z->entries);
    ttsm__free((void *)z->by_name);
    ttsm__free(z->names);
    memset(z, 0, sizeof *z);
}

const ttsm__zip_entry *ttsm__zip_find(const ttsm__zip *z, const char *name, size_t len)
{
    size_t lo = 0, hi = z->n_entries;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const ttsm__zip_entry *e = z->by_name[mid];
        size_t n = e->name_len < len ? e->name_len : len;
        int c = memcmp(e->name, name, n);
        if (c == 0)
            c = e->name_len < len ? -1 : e->name_len > len;
        if (c == 0)
            return e;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* ---- extraction ----------------------------------------------------------- */

/* zlib allocates through the library's allocator, so allocation-failure
 * tests reach inside inflate too. */
static voidpf z_alloc(voidpf opaque, uInt items, uInt size)
{
    (void)opaque;
    return ttsm__calloc(items, size);
}

static void z_free(voidpf opaque, voidpf p)
{
    (void)opaque;
    ttsm__free(p);
}

#define INFLATE_READ_CHUNK (256u * 1024u)

static ttsm_status inflate_member(const ttsm__file *f, const ttsm__zip_entry *e, unsigned char *out,
                                  ttsm_error *err)
{
    char sb[128];
    const char *path = f->path;
    const char *nm = shown(e->name, e->name_len, sb);
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    zs.zalloc = z_alloc;
    zs.zfree = z_free;
    if (inflateInit2(&zs, -MAX_WBITS) != Z_OK)
        return ttsm__err(err, TTSM_ERR_OUT_OF_MEMORY, path, "out of memory",
                         "starting to inflate entry '%s'", nm);
    const unsigned char *direct = f->mem ? f->mem : (const unsigned char *)f->map;
    unsigned char *chunk = NULL;
    if (!direct && !(chunk = ttsm__malloc(INFLATE_READ_CHUNK))) {
        inflateEnd(&zs);
        return ttsm__err(err, TTSM_ERR_OUT_OF_MEMORY, path, "out of memory",
                         "inflating entry '%s'", nm);
    }
    ttsm_status st = TTSM_OK;
    uint64_t in_done = 0, out_done = 0;
    unsigned char spill[64];
    int spilling = 0;
    for (;;) {
        if (zs.avail_in == 0 && in_done < e->comp_size) {
            uint64_t left = e->comp_size - in_done;
            if (direct) {
                uInt n = left > (1u << 30) ? (1u << 30) : (uInt)left;
                zs.next_in = (Bytef *)(uintptr_t)(direct + e->data_offset + in_done);
                zs.avail_in = n;
            } else {
                size_t n = left > INFLATE_READ_CHUNK ? INFLATE_READ_CHUNK : (size_t)left;
                if ((st = ttsm__file_read(f, e->data_offset + in_done, chunk, n, err)) != TTSM_OK)
                    break;
                zs.next_in = chunk;
                zs.avail_in = (uInt)n;
            }
            in_done += zs.avail_in;
        }
        if (zs.avail_out == 0) {
            if (out_done < e->size) {
                uint64_t left = e->size - out_done;
                zs.next_out = out + out_done;
                zs.avail_out = left > (1u << 30) ? (1u << 30) : (uInt)left;
            } else {
                /* The declared size is full: any further byte is a bomb. */
                spilling = 1;
                zs.next_out = spill;
                zs.avail_out = sizeof spill;
            }
        }
        uInt before_out = zs.avail_out;
        int rc = inflate(&zs, Z_NO_FLUSH);
        uInt produced = before_out - zs.avail_out;
        if (spilling && produced > 0) {
            st = ttsm__err(err, TTSM_ERR_FORMAT, path, "zip bomb",
                           "entry '%s' inflates past its declared %llu bytes", nm,
                           (unsigned long long)e->size);
            break;
        }
        if (!spilling)
            out_done += produced;
        if (rc == Z_STREAM_END)
            break;
        if (rc == Z_OK)
            continue;
        if (rc == Z_BUF_ERROR) {
            /* No progress: either more input or more room is needed; the
             * loop supplies both, unless the compressed bytes are used up. */
            if (zs.avail_in == 0 && in_done == e->comp_size) {
                st = ttsm__err(err, TTSM_ERR_FORMAT, path, "corrupt deflate data",
                               "entry '%s': the deflate stream does not end within its %llu "
                               "compressed bytes (%llu of %llu bytes inflated)",
                               nm, (unsigned long long)e->comp_size, (unsigned long long)out_done,
                               (unsigned long long)e->size);
                break;
            }
            continue;
        }
        if (rc == Z_MEM_ERROR)
            st = ttsm__err(err, TTSM_ERR_OUT_OF_MEMORY, path, "out of memory",
                           "inflating entry '%s'", nm);
        else
            st = ttsm__err(err, TTSM_ERR_FORMAT, path, "corrupt deflate data",
                           "entry '%s' at offset %llu: %s", nm,
                           (unsigned long long)e->data_offset, zs.msg ? zs.msg : "bad stream");
        break;
    }
    if (st == TTSM_OK && out_done != e->size)
        st = ttsm__err(err, TTSM_ERR_FORMAT, path, "bad zip entry size",
                       "entry '%s' inflates to %llu bytes but declares %llu", nm,
                       (unsigned long long)out_done, (unsigned long long)e->size);
    inflateEnd(&zs);
    ttsm__free(chunk);
    return st;
}

ttsm_status ttsm__zip_check_size(const ttsm__file *f, const ttsm__zip_entry *e, uint64_t cap,
                                 ttsm_error *err)
{
    char sb[128];
    const char *path = f->path;
    const char *nm = shown(e->name, e->name_len, sb);
    /* An impossible ratio first: that is a lie, not just a big member. */
    if (e->method == TTSM__ZIP_DEFLATED) {
        uint64_t most;
        if (__builtin_mul_overflow(e->comp_size, (uint64_t)TTSM__ZIP_MAX_RATIO, &most) ||
            __builtin_add_overflow(most, (uint64_t)1024, &most))
            most = UINT64_MAX;
        if (e->size > most)
            return ttsm__err(err, TTSM_ERR_FORMAT, path, "zip bomb",
                             "entry '%s' claims %llu bytes from %llu compressed bytes, more than "
                             "deflate can expand (%u:1)",
                             nm, (unsigned long long)e->size, (unsigned long long)e->comp_size,
                             TTSM__ZIP_MAX_RATIO);
    }
    if (e->size > cap)
        return ttsm__err(err, TTSM_ERR_FORMAT, path, "zip entry too large",
                         "entry '%s' holds %llu bytes, over the cap of %llu bytes "
                         "(max_inflate_bytes)",
                         nm, (unsigned long long)e->size, (unsigned long long)cap);
    if (e->size > SIZE_MAX - 64)
        return ttsm__err(err, TTSM_ERR_OUT_OF_MEMORY, path, "out of memory",
                         "entry '%s' of %llu bytes", nm, (unsigned long long)e->size);
    return TTSM_OK;
}

ttsm_status ttsm__zip_read_into(const ttsm__file *f, const ttsm__zip_entry *e, void *out,
                                ttsm_error *err)
{
    char sb[128];
    const char *path = f->path;
    const char *nm = shown(e->name, e->name_len, sb);
    unsigned char *buf = out;
    ttsm_status st;
    if (e->method == TTSM__ZIP_STORED)
        st = ttsm__file_read(f, e->data_offset, buf, (size_t)e->size, err);
    else
        st = inflate_member(f, e, buf, err);
    if (st == TTSM_OK) {
        uLong crc = crc32_z(0L, Z_NULL, 0);
        crc = crc32_z(crc, buf, (z_size_t)e->size);
        if ((uint32_t)crc != e->crc32)
            st = ttsm__err(err, TTSM_ERR_FORMAT, path, "zip CRC mismatch",
                           "entry '%s': CRC-32 of its %llu bytes is %08lx, the directory says "
                           "%08x",
                           nm, (unsigned long long)e->size, (unsigned long)crc, e->crc32);
    }
    return st;
}

ttsm_status ttsm__zip_extract(const ttsm__file *f, const ttsm__zip_entry *e, uint64_t cap,
                              void **out, ttsm_error *err)
{
    char sb[128];
    *out = NULL;
    ttsm_status st = ttsm__zip_check_size(f, e, cap, err);
    if (st != TTSM_OK)
        return st;
    if (e->size == 0 && e->method == TTSM__ZIP_STORED)
        return TTSM_OK;
    unsigned char *buf = ttsm__aligned_alloc(64, (size_t)e->size);
    if (!buf)
        return ttsm__err(err, TTSM_ERR_OUT_OF_MEMORY, f->path, "out of memory",
                         "%llu bytes for entry '%s'", (unsigned long long)e->size,
                         shown(e->name, e->name_len, sb));
    st = ttsm__zip_read_into(f, e, buf, err);
    if (st != TTSM_OK) {
        ttsm__free(buf);
        return st;
    }
    if (e->size == 0) {
        ttsm__free(buf);
        buf = NULL;
    }
    *out = buf;
    return TTSM_OK;
}
