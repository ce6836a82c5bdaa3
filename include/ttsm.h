/* ttsm.h - the public interface of libttsm, the model-loading core of a
 * multi-engine text-to-speech system. This is the only header users include.
 *
 * Conventions: every function that can fail returns a ttsm_status and takes an
 * optional `ttsm_error *err` last (NULL is always allowed). Outputs go through
 * pointer parameters and are written only on success. Strings passed in are
 * copied unless a comment says otherwise. Handles are opaque; every destroy or
 * close function accepts NULL. The library never prints and never exits.
 */
#ifndef TTSM_H
#define TTSM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(TTSM_BUILDING) && defined(__GNUC__)
#define TTSM_API __attribute__((visibility("default")))
#else
#define TTSM_API
#endif

#define TTSM_VERSION_MAJOR 0
#define TTSM_VERSION_MINOR 1
#define TTSM_VERSION_PATCH 0

/** @return the library version as "MAJOR.MINOR.PATCH" (static storage). */
TTSM_API const char *ttsm_version(void);

/* ------------------------------------------------------------------------ */
/* Status codes and errors (DESIGN §3). The numbers never change.           */
/* ------------------------------------------------------------------------ */

/* X(name, value, parent, description). The parent column is the is-a tree:
 * every load failure is a TTSM_ERR_LOAD; OUT_OF_MEMORY is also a DEVICE. */
#define TTSM_STATUS_MAP(X)                                                      \
    X(OK, 0, OK, "success")                                                     \
    X(ERR_LOAD, 1, ERR_LOAD, "model loading failed")                            \
    X(ERR_NOT_FOUND, 2, ERR_LOAD, "engine, model, file or language not found")  \
    X(ERR_DEVICE, 3, ERR_LOAD, "device unknown, unsupported or failing")        \
    X(ERR_OUT_OF_MEMORY, 4, ERR_DEVICE, "budget or allocation exceeded")        \
    X(ERR_FORMAT, 5, ERR_LOAD, "not a valid or supported checkpoint")           \
    X(ERR_IO, 6, ERR_LOAD, "open, read, map or permission failure")             \
    X(ERR_ENGINE, 7, ERR_LOAD, "engine initialisation or synthesis failed")     \
    X(ERR_INVALID_ARGUMENT, 8, ERR_INVALID_ARGUMENT, "invalid argument")        \
    X(ERR_CANCELLED, 9, ERR_CANCELLED, "cancelled by a progress callback")

typedef enum ttsm_status {
#define TTSM__STATUS_ENUM(name, value, parent, desc) TTSM_##name = value,
    TTSM_STATUS_MAP(TTSM__STATUS_ENUM)
#undef TTSM__STATUS_ENUM
    TTSM_STATUS_COUNT_ /* not a status; the number of codes */
} ttsm_status;

/** @return the stable name of a code, e.g. "TTSM_ERR_NOT_FOUND";
 *  "TTSM_STATUS_UNKNOWN" for a value that is not a code. Static storage. */
TTSM_API const char *ttsm_status_name(ttsm_status code);

/** @return a one-line description of a code (static storage). */
TTSM_API const char *ttsm_status_description(ttsm_status code);

/** @return 1 when `code` is `category` or lies below it in the is-a tree
 *  (like `except Base:` in Python), else 0. TTSM_OK is only TTSM_OK. */
TTSM_API int ttsm_status_is(ttsm_status code, ttsm_status category);

#define TTSM_ERROR_MESSAGE_MAX 512
#define TTSM_ERROR_HINT_MAX 256
#define TTSM_ERROR_ATTEMPT_MAX 256
#define TTSM_ERROR_MAX_ATTEMPTS 8

/** One attempt of a fallback chain: what was tried and how it failed. */
typedef struct ttsm_error_attempt {
    ttsm_status code;
    char message[TTSM_ERROR_ATTEMPT_MAX];
} ttsm_error_attempt;

/** Filled by a failing call. Fixed size, owned by the caller (usually on the
 *  stack), so reporting an error never allocates and can never fail.
 *  `message` has one shape: "<engine>[/<model>]: <what>: <detail>" (readers
 *  use the file path as the subject). Text that does not fit ends in "...". */
typedef struct ttsm_error {
    ttsm_status code;
    char message[TTSM_ERROR_MESSAGE_MAX];
    char hint[TTSM_ERROR_HINT_MAX]; /* "" when there is none */
    size_t n_attempts;              /* entries used in attempts[] */
    size_t n_attempts_dropped;      /* attempts that did not fit */
    ttsm_error_attempt attempts[TTSM_ERROR_MAX_ATTEMPTS];
} ttsm_error;

/** Resets `err` to code TTSM_OK with empty texts. NULL is ignored. */
TTSM_API void ttsm_error_clear(ttsm_error *err);

/* ------------------------------------------------------------------------ */
/* Load configuration and factories (DESIGN §5).                            */
/* ------------------------------------------------------------------------ */

typedef struct ttsm_param {
    const char *key, *value;
} ttsm_param;

/** What to load. Strings are borrowed for the duration of the call only. */
typedef struct ttsm_load_config {
    size_t struct_size;     /* set by ttsm_load_config_default() */
    const char *engine;     /* required: "chatterbox", ... */
    const char *model_type; /* "tts" (default), "vc", "hubert", ... */
    const char *model_name; /* NULL: the engine's default model */
    const char *device;     /* "auto" (default), "cpu", "cuda", "cuda:N" */
    const char *language;   /* optional */
    const char *model_path; /* optional explicit folder or file */
    const char *repo_id;    /* optional HuggingFace repo id (+ "@revision") */
    const ttsm_param *params;
    size_t n_params; /* additional_params */
} ttsm_load_config;

/* Limits checked by ttsm_load_config_validate(). */
#define TTSM_CONFIG_NAME_MAX 256    /* engine, model_type, model_name, language */
#define TTSM_CONFIG_VALUE_MAX 4096  /* device, paths, repo ids, param values */
#define TTSM_CONFIG_PARAMS_MAX 128

/** @return a config with struct_size set, model_type "tts", device "auto"
 *  and every other field NULL/0. */
TTSM_API ttsm_load_config ttsm_load_config_default(void);

/** Checks a config without touching the file system or devices: engine set,
 *  no empty strings, no control characters, lengths within the limits above,
 *  param keys non-empty and unique. @return TTSM_OK or
 *  TTSM_ERR_INVALID_ARGUMENT naming the field. */
TTSM_API ttsm_status ttsm_load_config_validate(const ttsm_load_config *cfg, ttsm_error *err);

/** Normalises a language name or code: "English", "english", "EN" and "en"
 *  all give "en". Unknown names are lower-cased and kept.
 *  @return TTSM_OK, or TTSM_ERR_INVALID_ARGUMENT when `out` is too small. */
TTSM_API ttsm_status ttsm_language_normalize(const char *language, char *out, size_t out_size,
                                             ttsm_error *err);

/* ------------------------------------------------------------------------ */
/* Devices (DESIGN §6).                                                     */
/* ------------------------------------------------------------------------ */

/* Device strings are lower-case ASCII, like PyTorch's: "auto", "cpu",
 * "cuda", "cuda:N" (N a decimal index without sign or leading zeros, < 2^16).
 * "cuda" means "cuda:0". Anything else is TTSM_ERR_DEVICE. */
#define TTSM_DEVICE_NAME_MAX 64

typedef struct ttsm_device_info {
    char name[TTSM_DEVICE_NAME_MAX];   /* "cpu", "cuda:0" */
    char description[128];             /* "NVIDIA H100 80GB HBM3", "host memory" */
    uint64_t total_bytes;
    uint64_t free_bytes;
} ttsm_device_info;

/** Enumerates the devices that exist on this machine: "cpu" first, then each
 *  CUDA device the driver reports. CUDA discovery runs once per process
 *  (thread-safe); without a driver it finds none and remembers why.
 *  @return the number of devices (at least 1). */
TTSM_API size_t ttsm_device_count(void);

/** Fills `out` for device `index` (< ttsm_device_count()), memory read now.
 *  @return TTSM_OK, TTSM_ERR_INVALID_ARGUMENT for a bad index, or
 *  TTSM_ERR_DEVICE when the driver fails. */
TTSM_API ttsm_status ttsm_device_get(size_t index, ttsm_device_info *out, ttsm_error *err);

/** Why CUDA has no devices here ("libcuda.so.1: cannot open shared object
 *  file..."), or "" when it has some. Static storage, valid until the process ends. */
TTSM_API const char *ttsm_cuda_status(void);

/** Resolves a device string to the canonical name of a device that exists:
 *  "auto" -> "cuda:0" when a CUDA device works, else "cpu"; "cuda" ->
 *  "cuda:0"; NULL means "auto". @return TTSM_OK, or TTSM_ERR_DEVICE whose
 *  message lists the devices that exist. */
TTSM_API ttsm_status ttsm_device_resolve(const char *device, char *out, size_t out_size,
                                         ttsm_error *err);

/* ------------------------------------------------------------------------ */
/* Cache key (DESIGN §4; spec and test vectors in docs/cache-key.md).       */
/* ------------------------------------------------------------------------ */

#define TTSM_KEY_HEX_SIZE 33 /* 32 lowercase hex digits + NUL */

/** Computes the cache key of a config: XXH3-128 of its canonical form, as 32
 *  lowercase hex digits. Validates the config, resolves the device and makes
 *  model_path absolute and canonical (it must exist).
 *  @return TTSM_OK, TTSM_ERR_INVALID_ARGUMENT, TTSM_ERR_DEVICE or
 *  TTSM_ERR_NOT_FOUND. */
TTSM_API ttsm_status ttsm_cache_key(const ttsm_load_config *cfg, char out[TTSM_KEY_HEX_SIZE],
                                    ttsm_error *err);

/** The canonical byte string the key hashes, for explanations and for other
 *  implementations. On success `*out` is a NUL-terminated string you must
 *  free with ttsm_free(); `*out_len` (may be NULL) gets its length. */
TTSM_API ttsm_status ttsm_cache_key_canonical(const ttsm_load_config *cfg, char **out,
                                              size_t *out_len, ttsm_error *err);

/** Frees memory the library handed out (strings from ttsm_cache_key_canonical
 *  and the like). NULL is ignored. */
TTSM_API void ttsm_free(void *p);

/* ------------------------------------------------------------------------ */
/* Element types. Values are stable. X(name, value, block_elems, block_bytes):
 * a tensor of n elements takes n / block_elems * block_bytes bytes, and n must
 * be a multiple of block_elems (sub-byte and block-quantised types).       */
/* ------------------------------------------------------------------------ */
#define TTSM_DTYPE_MAP(X)                                                       \
    X(BOOL, 1, 1, 1) X(U8, 2, 1, 1) X(I8, 3, 1, 1) X(U16, 4, 1, 2)               \
    X(I16, 5, 1, 2) X(F16, 6, 1, 2) X(BF16, 7, 1, 2) X(U32, 8, 1, 4)             \
    X(I32, 9, 1, 4) X(F32, 10, 1, 4) X(U64, 11, 1, 8) X(I64, 12, 1, 8)           \
    X(F64, 13, 1, 8) X(F8_E5M2, 14, 1, 1) X(F8_E4M3, 15, 1, 1)                   \
    X(F8_E8M0, 16, 1, 1) X(F4, 17, 2, 1) X(F6_E2M3, 18, 4, 3)                    \
    X(F6_E3M2, 19, 4, 3) X(C64, 20, 1, 8) X(C128, 21, 1, 16) X(C32, 22, 1, 4)    \
    X(Q4_0, 32, 32, 18) X(Q4_1, 33, 32, 20) X(Q5_0, 34, 32, 22)                  \
    X(Q5_1, 35, 32, 24) X(Q8_0, 36, 32, 34) X(Q8_1, 37, 32, 36)                  \
    X(Q2_K, 38, 256, 84) X(Q3_K, 39, 256, 110) X(Q4_K, 40, 256, 144)             \
    X(Q5_K, 41, 256, 176) X(Q6_K, 42, 256, 210) X(Q8_K, 43, 256, 292)            \
    X(IQ2_XXS, 44, 256, 66) X(IQ2_XS, 45, 256, 74) X(IQ3_XXS, 46, 256, 98)       \
    X(IQ1_S, 47, 256, 50) X(IQ4_NL, 48, 32, 18) X(IQ3_S, 49, 256, 110)           \
    X(IQ2_S, 50, 256, 82) X(IQ4_XS, 51, 256, 136) X(IQ1_M, 52, 256, 56)          \
    X(TQ1_0, 53, 256, 54) X(TQ2_0, 54, 256, 66) X(MXFP4, 55, 32, 17)

typedef enum ttsm_dtype {
    TTSM_DTYPE_INVALID = 0,
#define TTSM__DTYPE_ENUM(name, value, be, bb) TTSM_DTYPE_##name = value,
    TTSM_DTYPE_MAP(TTSM__DTYPE_ENUM)
#undef TTSM__DTYPE_ENUM
} ttsm_dtype;

/** @return the dtype's name ("F32", "Q4_K"), or NULL for a value that is not one. */
TTSM_API const char *ttsm_dtype_name(ttsm_dtype dtype);
/** Looks a dtype up by its exact name. @return TTSM_DTYPE_INVALID when unknown. */
TTSM_API ttsm_dtype ttsm_dtype_from_name(const char *name);
/** Block geometry: elements per block and bytes per block (1 and the element
 *  size for plain types). @return 0 on success, -1 for an invalid dtype. */
TTSM_API int ttsm_dtype_block(ttsm_dtype dtype, uint32_t *block_elems, uint32_t *block_bytes);

/* ------------------------------------------------------------------------ */
/* Checkpoints: strict readers for safetensors (single and sharded), GGUF   */
/* and PyTorch zip files. Every byte read from a file is untrusted.         */
/* ------------------------------------------------------------------------ */

typedef enum ttsm_format {
    TTSM_FORMAT_UNKNOWN = 0,
    TTSM_FORMAT_SAFETENSORS = 1,
    TTSM_FORMAT_SAFETENSORS_SHARDED = 2,
    TTSM_FORMAT_GGUF = 3,
    TTSM_FORMAT_PYTORCH_ZIP = 4
} ttsm_format;

/** @return "safetensors", "safetensors-sharded", "gguf", "pytorch-zip" or "unknown". */
TTSM_API const char *ttsm_format_name(ttsm_format format);

typedef enum ttsm_io_mode {
    TTSM_IO_MMAP = 0, /* private copy-on-write mapping: writes never reach the file */
    TTSM_IO_READ = 1  /* pread into owned 64-byte-aligned buffers (network file systems) */
} ttsm_io_mode;

typedef struct ttsm_checkpoint_options {
    size_t struct_size;         /* set by ttsm_checkpoint_options_default() */
    ttsm_io_mode io_mode;       /* default TTSM_IO_MMAP */
    uint64_t max_inflate_bytes; /* cap on one compressed member's inflated size */
} ttsm_checkpoint_options;

TTSM_API ttsm_checkpoint_options ttsm_checkpoint_options_default(void);

typedef struct ttsm_checkpoint ttsm_checkpoint;

/** One tensor of a checkpoint. All pointers are owned by the checkpoint and
 *  stay valid until ttsm_checkpoint_close(). */
typedef struct ttsm_tensor_info {
    const char *name;
    ttsm_dtype dtype;
    uint32_t rank;            /* 0 for a scalar */
    const int64_t *shape;     /* rank entries */
    const int64_t *strides;   /* rank entries, in elements */
    int contiguous;           /* 1 when strides are the dense row-major ones */
    uint64_t n_elements;
    uint64_t nbytes;          /* bytes the tensor's data spans from its first byte */
    uint32_t file_index;      /* see ttsm_checkpoint_file_path() */
    uint64_t file_offset;     /* absolute offset of its first byte in that file, or
                                 UINT64_MAX when the bytes exist only in memory
                                 (a deflated zip member) */
    uint32_t storage_index;   /* tensors that share storage share this value */
    uint64_t storage_offset;  /* bytes from the start of that storage */
} ttsm_tensor_info;

/** One metadata value: safetensors `__metadata__` entries, GGUF key/values,
 *  the non-tensor values of a PyTorch file. `type` names the stored type
 *  ("str", "u32", "f32", "bool", "array[str]", "array[array[u8]]", ...);
 *  `json` is the value as JSON text. Owned by the checkpoint. */
typedef struct ttsm_metadata_entry {
    const char *key;
    const char *type;
    const char *json;
} ttsm_metadata_entry;

/** Opens a checkpoint. The format is detected from the bytes, never from the
 *  file name. Only headers are read here. `options` may be NULL (defaults).
 *  @return TTSM_OK; TTSM_ERR_NOT_FOUND (no such file, or a missing shard),
 *  TTSM_ERR_IO, TTSM_ERR_FORMAT (message names the file, the offset or
 *  tensor and the rule), TTSM_ERR_OUT_OF_MEMORY or TTSM_ERR_INVALID_ARGUMENT.
 *  Close the result with ttsm_checkpoint_close(). */
TTSM_API ttsm_status ttsm_checkpoint_open(const char *path, const ttsm_checkpoint_options *options,
                                          ttsm_checkpoint **out, ttsm_error *err);
TTSM_API void ttsm_checkpoint_close(ttsm_checkpoint *ckpt);

TTSM_API ttsm_format ttsm_checkpoint_format(const ttsm_checkpoint *ckpt);
/** Format version: GGUF 2 or 3, the PyTorch archive's `version` record, 0 for safetensors. */
TTSM_API uint32_t ttsm_checkpoint_version(const ttsm_checkpoint *ckpt);
TTSM_API ttsm_io_mode ttsm_checkpoint_io_mode(const ttsm_checkpoint *ckpt);
/** Files the checkpoint reads (one, or the index's shards). */
TTSM_API size_t ttsm_checkpoint_file_count(const ttsm_checkpoint *ckpt);
TTSM_API const char *ttsm_checkpoint_file_path(const ttsm_checkpoint *ckpt, size_t index);
TTSM_API uint64_t ttsm_checkpoint_file_size(const ttsm_checkpoint *ckpt, size_t index);

TTSM_API size_t ttsm_checkpoint_tensor_count(const ttsm_checkpoint *ckpt);
/** @return tensor `index` in file order, or NULL when out of range. */
TTSM_API const ttsm_tensor_info *ttsm_checkpoint_tensor(const ttsm_checkpoint *ckpt, size_t index);
/** O(1) lookup by name. @return NULL when there is no such tensor. */
TTSM_API const ttsm_tensor_info *ttsm_checkpoint_find(const ttsm_checkpoint *ckpt, const char *name);
/** Bytes of tensor data, counting shared storage once. */
TTSM_API uint64_t ttsm_checkpoint_total_bytes(const ttsm_checkpoint *ckpt);

TTSM_API size_t ttsm_checkpoint_metadata_count(const ttsm_checkpoint *ckpt);
TTSM_API const ttsm_metadata_entry *ttsm_checkpoint_metadata(const ttsm_checkpoint *ckpt, size_t index);
TTSM_API const ttsm_metadata_entry *ttsm_checkpoint_metadata_find(const ttsm_checkpoint *ckpt,
                                                                  const char *key);

/** The tensor's bytes (tensor->nbytes of them). mmap mode: a pointer into the
 *  private mapping. read mode: the bytes are read on first use into an owned
 *  64-byte-aligned buffer. Either way valid until the checkpoint is closed.
 *  Thread-safe. @return TTSM_OK, TTSM_ERR_IO (short read, file shrunk) or
 *  TTSM_ERR_OUT_OF_MEMORY. */
TTSM_API ttsm_status ttsm_checkpoint_tensor_data(ttsm_checkpoint *ckpt, const ttsm_tensor_info *tensor,
                                                 const void **data, ttsm_error *err);

#ifdef __cplusplus
}
#endif

#endif /* TTSM_H */
