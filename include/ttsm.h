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

/** Copies `s` into `out` (`out_size` bytes, at least 1) fit for a terminal:
 *  control bytes (C0, DEL, the C1 range U+0080-U+009F) and bytes that are
 *  not strict UTF-8 become '?', text that does not fit is cut with "...".
 *  The library applies the same rule to every ttsm_error it fills; use this
 *  for names and values read from files (tensor names, metadata) that a
 *  program prints itself. `s` NULL gives "". @return out. */
TTSM_API const char *ttsm_text_printable(const char *s, char *out, size_t out_size);

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
    X(TQ1_0, 53, 256, 54) X(TQ2_0, 54, 256, 66) X(MXFP4, 55, 32, 17)             \
    X(NVFP4, 56, 64, 36) X(Q1_0, 57, 128, 18) X(Q2_0, 58, 64, 18)

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

/* ------------------------------------------------------------------------ */
/* Backends (DESIGN §6; docs/backends.md). A backend is a kind of device:   */
/* "cpu" and "cuda" are built in; ttsm_register_backend() adds more (tests  */
/* use a fake device). Device names are "<name>:<index>"; "<name>" alone    */
/* means index 0 (cpu has no index).                                        */
/* ------------------------------------------------------------------------ */

#define TTSM_BACKEND_VERSION 1
#define TTSM_BACKEND_NAME_MAX 16 /* [a-z][a-z0-9_]*, shorter than this */

/** A versioned table of functions. Every function gets `user` and the device
 *  index. Registered tables are copied; `name` is copied too. */
typedef struct ttsm_backend {
    uint32_t version;  /* TTSM_BACKEND_VERSION */
    const char *name;  /* "fake": devices "fake:0" .. "fake:<count-1>" */
    /* 1: tensors can point into host memory (the checkpoint's mapping or
     * read buffers), so alloc/upload are never called and may be NULL. */
    int host_visible;
    void *user;
    /** @return how many devices of this kind exist now. */
    size_t (*count)(void *user);
    /** Free and total bytes of device `index` now (may be NULL: unknown). */
    ttsm_status (*memory)(void *user, int index, uint64_t *free_bytes, uint64_t *total_bytes,
                          ttsm_error *err);
    /** Allocates `nbytes` (> 0) on the device, 256-byte aligned. */
    ttsm_status (*alloc)(void *user, int index, uint64_t nbytes, void **out, ttsm_error *err);
    /** Frees what alloc returned (`nbytes` as allocated). Never fails. */
    void (*free)(void *user, int index, void *ptr, uint64_t nbytes);
    /** Copies `nbytes` host bytes to `dst` (inside an allocation). May finish
     *  asynchronously, but `src` may be released once it returns. */
    ttsm_status (*upload)(void *user, int index, void *dst, const void *src, uint64_t nbytes,
                          ttsm_error *err);
    /** Waits for every upload to device `index` to finish (may be NULL). */
    ttsm_status (*sync)(void *user, int index, ttsm_error *err);
} ttsm_backend;

/** Registers a device kind for the whole process (device names must mean the
 *  same to ttsm_device_resolve() and ttsm_cache_key(), which take no
 *  manager). Registration is permanent. @return TTSM_OK, or
 *  TTSM_ERR_INVALID_ARGUMENT (bad version or name, a built-in or already
 *  registered name, missing functions, too many backends). */
TTSM_API ttsm_status ttsm_register_backend(const ttsm_backend *backend, ttsm_error *err);

/* ------------------------------------------------------------------------ */
/* Engines and factories (DESIGN §5, §7). A factory describes a model: which */
/* checkpoint files make it up and any engine data. The manager then knows  */
/* its size before allocating anything, admits it and materialises it.      */
/* ------------------------------------------------------------------------ */

typedef struct ttsm_manager ttsm_manager;
typedef struct ttsm_model ttsm_model;
typedef struct ttsm_factory_ctx ttsm_factory_ctx;

typedef ttsm_status (*ttsm_factory_fn)(const ttsm_load_config *cfg, const ttsm_factory_ctx *ctx,
                                       ttsm_model **out, ttsm_error *err);

/** Synthesis options (engines that speak; see ttsm_synthesize()). */
typedef struct ttsm_synth_options {
    size_t struct_size;   /* set by ttsm_synth_options_default() */
    const char *language; /* name or code; NULL: the engine's default (English) */
    const char *voice;    /* an engine voice: name, id or language id (ttsm_model_voices);
                             NULL: the language's voice */
    int rate;             /* words per minute; 0: the engine's default */
    int pitch;            /* 0..100; -1: the engine's default */
} ttsm_synth_options;

/** 16-bit signed mono PCM. Free with ttsm_audio_free(). */
typedef struct ttsm_audio {
    int16_t *samples;
    size_t n_samples;
    uint32_t sample_rate;
} ttsm_audio;

/** An engine's build hook (ttsm_engine_caps.build): called once per load,
 *  after the model's tensors are on their device and before the entry is
 *  ready (other loads of the key wait for it), with no manager lock held.
 *  It builds the object the engine runs (a network bound to the weights)
 *  and attaches it with ttsm_model_set_engine_data(): the cache holds that
 *  object, hands it to every holder of the entry and destroys it when the
 *  entry leaves the cache. It reports device bytes the object holds beyond
 *  the weights with ttsm_factory_ctx_charge(). Exports it takes with
 *  TTSM_DLPACK_INNER (or references with ttsm_model_retain_inner) belong
 *  to the object: they keep the entry's memory, never its place in the
 *  cache. A failure fails the load like a factory failure. */
typedef ttsm_status (*ttsm_build_fn)(const ttsm_load_config *cfg, const ttsm_factory_ctx *ctx,
                                     ttsm_model *model, ttsm_error *err);

/** An engine's synthesis hook (set in ttsm_engine_caps.synthesize). */
typedef ttsm_status (*ttsm_synthesize_fn)(ttsm_model *model, const char *text,
                                          const ttsm_synth_options *options, ttsm_audio *out,
                                          ttsm_error *err);

typedef struct ttsm_engine_caps {
    size_t struct_size;   /* set by ttsm_engine_caps_default() */
    int can_corrupt;      /* may be invalidated and rebuilt */
    int single_instance;  /* at most one entry of this engine per manager */
    const char *devices;  /* comma list of device kinds ("cpu,cuda"); NULL: any */
    /** Called before the factory on the first load after an invalidate of the
     *  same key (may be NULL). A failure fails that load. */
    ttsm_status (*recover)(void *user, const ttsm_load_config *cfg, ttsm_error *err);
    void *user;           /* for recover and ttsm_factory_ctx_user() */
    /** Synthesises speech with a loaded model (NULL: the engine's weights are
     *  for another runtime, and ttsm_synthesize() says so). */
    ttsm_synthesize_fn synthesize;
    /** Builds what the engine runs from its loaded weights (may be NULL; see
     *  ttsm_build_fn). */
    ttsm_build_fn build;
    /* What admission reserves for `build` before it runs, beyond the weights:
     * extra_bytes + extra_ratio x the weights' bytes (0, 0: the manifest's
     * "engine_memory", else nothing). The entry is then charged what the
     * build reports (ttsm_factory_ctx_charge). */
    uint64_t extra_bytes;
    double extra_ratio;
} ttsm_engine_caps;

/** @return caps with struct_size set and everything else 0/NULL. */
TTSM_API ttsm_engine_caps ttsm_engine_caps_default(void);

/** Registers an engine for the whole process (a registry shared with cache
 *  keys and the CLI). `name` and `caps->devices` are copied; caps may be
 *  NULL. The name "file" is the built-in engine that loads the checkpoint at
 *  model_path (a file, or every checkpoint in a folder; docs/manager.md).
 *  With `factory` NULL, `name` must be an engine from a manifest: its files
 *  are still resolved and loaded by the manifest, and caps' build, recover,
 *  user, extra_bytes and extra_ratio are attached to it (its capabilities
 *  and devices stay the manifest's); once per engine.
 *  @return TTSM_OK or TTSM_ERR_INVALID_ARGUMENT (bad or taken name). */
TTSM_API ttsm_status ttsm_register_engine(const char *name, ttsm_factory_fn factory,
                                          const ttsm_engine_caps *caps, ttsm_error *err);

/** In a factory: starts the description of the model (one per load). The
 *  manager owns it: on a failed factory it is freed by the manager. */
TTSM_API ttsm_status ttsm_model_create(const ttsm_factory_ctx *ctx, ttsm_model **out,
                                       ttsm_error *err);
/** Adds a component: the checkpoint at `path`, opened (headers only) through
 *  the manager's shared per-path table with its I/O mode. `component` names
 *  it (unique in the model). @return ttsm_checkpoint_open()'s codes, or
 *  TTSM_ERR_INVALID_ARGUMENT for a duplicate component. */
TTSM_API ttsm_status ttsm_model_add_checkpoint(ttsm_model *model, const char *component,
                                               const char *path, ttsm_error *err);
typedef enum ttsm_file_kind { TTSM_FILE_JSON = 1, TTSM_FILE_BLOB = 2 } ttsm_file_kind;
/** Adds a component that is a file used as a whole by the engine: JSON
 *  (parsed now, so a corrupt file fails the load with its position) or a
 *  blob (must be a readable regular file). Such files are not counted in
 *  device budgets: they stay in the file system. @return TTSM_OK,
 *  TTSM_ERR_NOT_FOUND, TTSM_ERR_IO, TTSM_ERR_FORMAT or TTSM_ERR_INVALID_ARGUMENT. */
TTSM_API ttsm_status ttsm_model_add_file(ttsm_model *model, const char *component,
                                        const char *path, ttsm_file_kind kind, ttsm_error *err);
/** Attaches engine data, destroyed with `destroy` (may be NULL) when the model is freed. */
TTSM_API void ttsm_model_set_engine_data(ttsm_model *model, void *data, void (*destroy)(void *));
/** @return the resolved device the model is loaded for ("cpu", "cuda:0"). */
TTSM_API const char *ttsm_factory_ctx_device(const ttsm_factory_ctx *ctx);
/** @return caps.user of the engine. */
TTSM_API void *ttsm_factory_ctx_user(const ttsm_factory_ctx *ctx);
/** @return 1 when this load rebuilds an invalidated entry (recovery ran). */
TTSM_API int ttsm_factory_ctx_recovering(const ttsm_factory_ctx *ctx);
/** In a build hook: the entry holds `bytes` more on its device than its
 *  weights (added up over calls). @return TTSM_OK, or
 *  TTSM_ERR_INVALID_ARGUMENT outside a build hook or on overflow. */
TTSM_API ttsm_status ttsm_factory_ctx_charge(const ttsm_factory_ctx *ctx, uint64_t bytes,
                                             ttsm_error *err);
/** In a build hook: the bytes admission reserved for it beyond the weights. */
TTSM_API uint64_t ttsm_factory_ctx_estimate(const ttsm_factory_ctx *ctx);

/* ------------------------------------------------------------------------ */
/* The manager: the one cache (DESIGN §9; docs/manager.md). Thread-safe.     */
/* ------------------------------------------------------------------------ */

typedef struct ttsm_device_budget {
    const char *device; /* "cpu", "cuda:0", "fake:0" (copied) */
    uint64_t bytes;
} ttsm_device_budget;

enum { TTSM_LOG_DEBUG = 0, TTSM_LOG_INFO = 1, TTSM_LOG_WARN = 2, TTSM_LOG_ERROR = 3 };

typedef void (*ttsm_log_fn)(void *user, int level, const char *message);
struct ttsm_entry_info;
/** Told when an entry has left the cache (`reason`: "budget", "keep-alive",
 *  "free", "single-instance", "unload" or "invalidate"), after the manager
 *  lock is released, on the thread that evicted it. Must not destroy the
 *  manager. */
typedef void (*ttsm_evict_fn)(void *user, const struct ttsm_entry_info *entry, const char *reason);
/** Called while a load materialises its tensors; nonzero cancels the load
 *  (TTSM_ERR_CANCELLED, nothing left behind). */
typedef int (*ttsm_progress_fn)(void *user, const char *key, uint64_t done, uint64_t total);
/** Monotonic time in nanoseconds. */
typedef uint64_t (*ttsm_clock_fn)(void *user);

#define TTSM_MANAGER_MAX_DEVICES 32
#define TTSM_DEFAULT_DEVICE_RESERVE (512ull << 20)

typedef struct ttsm_manager_options {
    size_t struct_size;                /* set by ttsm_manager_options_default() */
    const ttsm_device_budget *budgets; /* devices not listed have no configured budget */
    size_t n_budgets;
    /* Devices that do not share host memory (cuda) also stay below their free
     * memory minus this, read at each admission. */
    uint64_t device_reserve_bytes;     /* default TTSM_DEFAULT_DEVICE_RESERVE */
    uint64_t keep_alive_ms;            /* idle entries older are evicted; 0: forever */
    ttsm_io_mode io_mode;              /* for every checkpoint the manager opens */
    int allow_cpu_fallback;            /* a load that does not fit its device loads on cpu */
    ttsm_log_fn log;
    void *log_user;
    ttsm_progress_fn progress;
    void *progress_user;
    ttsm_clock_fn clock;               /* NULL: CLOCK_MONOTONIC */
    void *clock_user;
    /* Where manifest engines find their files (docs/engines.md): models
     * roots, colon-separated (NULL: TTSM_MODELS_PATH), and the HuggingFace
     * hub cache (NULL: HF_HUB_CACHE, HF_HOME/hub, ~/.cache/huggingface/hub).
     * Copied. */
    const char *models_dirs;
    const char *hf_cache;
    /* A folder of extra engine manifests, read into the process-wide
     * registry when the manager is created (NULL: none). */
    const char *engines_dir;
    /* ComfyUI installations, colon-separated (NULL: TTSM_COMFYUI_PATH):
     * each one's models/ folder and the TTS folders its
     * extra_model_paths.yaml names are searched after models_dirs, in the
     * order docs/engines.md gives. Copied. Added in 0.1: options from a
     * header without this field (a smaller struct_size) are accepted, and
     * the field is NULL for them. */
    const char *comfyui_dirs;
    /* 1: a thread of the manager evicts idle entries when their keep-alive
     * ends (otherwise the next call does); stopped by ttsm_manager_destroy.
     * This field and the two after it were added later in 0.1 too: a
     * struct_size that ends before them leaves them 0. */
    int keep_alive_timer;
    ttsm_evict_fn on_evict; /* may be NULL */
    void *on_evict_user;
    /* A loaded file is known by its device, inode, size and modification
     * time (docs/manager.md, "Which file is which"): a same-size rewrite in
     * place with the time put back (cp -p, os.utime) goes unseen. Nonzero:
     * each cache miss also hashes every header and the first and last
     * 64 KiB of each file, and a file whose hash changed is opened again.
     * Costs those reads on every miss. Default 0. Added in 0.1 like
     * the fields above: 0 for options from a header without it. */
    int verify_on_load;
    /* Load on a miss (docs/hub.md): TTSM_DOWNLOAD_MISSING pulls the files a
     * manifest model lacks from the Hugging Face Hub into hf_cache, then
     * loads it; `progress` reports the bytes and cancels cleanly. Endpoint,
     * token and offline mode come from HF_ENDPOINT, HF_TOKEN (or the token
     * file) and HF_HUB_OFFLINE. Default TTSM_DOWNLOAD_NEVER: a missing file
     * is TTSM_ERR_NOT_FOUND whose hint gives the `ttsm pull` command. */
    int download;
    unsigned download_jobs; /* files fetched in parallel; 0: TTSM_PULL_DEFAULT_JOBS */
    /* 1: ttsm_load starts ttsm_model_prefetch() on every model it returns
     * (docs/manager.md, "Prefetch"). Added in 0.1 like the fields above: 0
     * for options from a header without it. */
    int prefetch;
} ttsm_manager_options;

enum { TTSM_DOWNLOAD_NEVER = 0, TTSM_DOWNLOAD_MISSING = 1 };

TTSM_API ttsm_manager_options ttsm_manager_options_default(void);

/** Creates a manager; `options` may be NULL. Destroy with ttsm_manager_destroy(). */
TTSM_API ttsm_status ttsm_manager_create(const ttsm_manager_options *options, ttsm_manager **out,
                                         ttsm_error *err);
/** Unloads every entry. Models still referenced stay valid; the manager's
 *  memory is freed with the last of them. NULL is ignored. */
TTSM_API void ttsm_manager_destroy(ttsm_manager *mgr);

/** Loads (or finds) the model of `cfg`: one reference that you drop with
 *  ttsm_model_release(). Concurrent loads of one key share one load.
 *  @return TTSM_OK or any load error; TTSM_ERR_OUT_OF_MEMORY names needed,
 *  budget, in use and what holds it. */
TTSM_API ttsm_status ttsm_load(ttsm_manager *mgr, const ttsm_load_config *cfg, ttsm_model **out,
                               ttsm_error *err);

/* What one load did. A cache entry is shared by every load that reaches it
 * (a French request that fell back to English holds the English entry, as
 * a plain English request does), so what a load asked for, tried and got
 * belongs to the call, not to the model: ttsm_load_with_report() hands it
 * back next to the model. docs/manager.md, "Fallbacks made visible". */
#define TTSM_LOAD_REPORT_MAX_STEPS TTSM_ERROR_MAX_ATTEMPTS

/** One attempt of a load: a model on a device, and how it ended. */
typedef struct ttsm_load_step {
    ttsm_status code;                     /* TTSM_OK for the step that loaded */
    char model[TTSM_CONFIG_NAME_MAX];     /* model asked for in this step ("French") */
    char device[TTSM_DEVICE_NAME_MAX];    /* device asked for, resolved ("cpu", "cuda:0") */
    char message[TTSM_ERROR_ATTEMPT_MAX]; /* its error; "" for the step that loaded */
} ttsm_load_step;

typedef struct ttsm_load_report {
    size_t struct_size;    /* set by ttsm_load_report_init() */
    int hit;               /* the model came from the cache: no factory ran for it */
    int shared;            /* a miss whose files an entry already held: that entry is
                              returned and charged once (docs/cache-key.md, "One set of
                              bytes, one entry") */
    int fell_back;         /* what was loaded is not what was asked */
    char asked[TTSM_CONFIG_NAME_MAX];         /* the model asked for */
    char asked_device[TTSM_DEVICE_NAME_MAX];
    char loaded[TTSM_CONFIG_NAME_MAX];        /* what was loaded: ttsm_model_name() */
    char loaded_device[TTSM_DEVICE_NAME_MAX]; /* ttsm_model_device() */
    char why[TTSM_ERROR_MESSAGE_MAX];         /* why not `asked` (fell_back), else "" */
    size_t n_steps;                           /* steps used, in the order tried */
    size_t n_steps_dropped;                   /* steps that did not fit */
    ttsm_load_step steps[TTSM_LOAD_REPORT_MAX_STEPS];
} ttsm_load_report;

/** Zeroes `report` and sets its struct_size. NULL is ignored. */
TTSM_API void ttsm_load_report_init(ttsm_load_report *report);

/** ttsm_load(), and `report` (may be NULL; else initialised with
 *  ttsm_load_report_init()) says what the call did: every step of the
 *  fallback chain and of the device fallback it tried, with its error, and
 *  whether the model is a fallback (asked, loaded, why). Filled on success
 *  and on failure (then `loaded` is empty and the steps are the attempts
 *  the error lists). A report with another struct_size is
 *  TTSM_ERR_INVALID_ARGUMENT. */
TTSM_API ttsm_status ttsm_load_with_report(ttsm_manager *mgr, const ttsm_load_config *cfg,
                                           ttsm_model **out, ttsm_load_report *report,
                                           ttsm_error *err);

/** Starts bringing every byte of the model's host tensors into memory in
 *  the background and returns at once: a thread asks the kernel to read the
 *  mapped files ahead and maps their pages, so that a first pass over the
 *  weights does not wait on a page fault per page. Tensors already held in
 *  memory (read mode, device copies) need nothing. Once per model (later
 *  calls return TTSM_OK); the thread holds a reference until it is done.
 *  The manager option `prefetch` does this for every load.
 *  @return TTSM_OK, or TTSM_ERR_OUT_OF_MEMORY when no thread could start. */
TTSM_API ttsm_status ttsm_model_prefetch(ttsm_model *model, ttsm_error *err);
/** Waits for the model's prefetch, if one was started; once it returns the
 *  prefetch holds no reference of the model. @return the bytes it brought
 *  in (0 when none was started or there was nothing to do). */
TTSM_API uint64_t ttsm_model_prefetch_wait(ttsm_model *model);

/** Adds a reference (thread-safe). */
TTSM_API void ttsm_model_retain(ttsm_model *model);
/** References for the entry's own engine data (see ttsm_build_fn): they keep
 *  the entry's memory valid but not the entry in the cache, so an engine
 *  object that holds its own weights never pins them. Take one only while
 *  holding a reference; the entry is freed when both kinds reach zero. */
TTSM_API void ttsm_model_retain_inner(ttsm_model *model);
TTSM_API void ttsm_model_release_inner(ttsm_model *model);
/** Drops a reference. An entry stays cached at zero references (until
 *  evicted); an invalidated or orphaned one is freed. NULL is ignored. */
TTSM_API void ttsm_model_release(ttsm_model *model);

/** Pin: never evicted (by budget or keep-alive). @return TTSM_ERR_NOT_FOUND
 *  when no loaded entry has `key`. */
TTSM_API ttsm_status ttsm_pin(ttsm_manager *mgr, const char *key, ttsm_error *err);
TTSM_API ttsm_status ttsm_unpin(ttsm_manager *mgr, const char *key, ttsm_error *err);
/** Removes an unreferenced entry now (pinned or not). Refused while the entry
 *  is referenced or loading: TTSM_ERR_INVALID_ARGUMENT saying how many
 *  references. TTSM_ERR_NOT_FOUND when not loaded. */
TTSM_API ttsm_status ttsm_unload(ttsm_manager *mgr, const char *key, ttsm_error *err);
/** The entry leaves the cache now; holders keep their references (freed at
 *  the last release); the next load of `key` runs the engine's recovery hook
 *  and builds a fresh entry. Refused while loading. */
TTSM_API ttsm_status ttsm_invalidate(ttsm_manager *mgr, const char *key, ttsm_error *err);
/** Evicts unreferenced, unpinned entries idle longer than keep_alive (loads
 *  do this too). @return how many were evicted. */
TTSM_API size_t ttsm_manager_sweep(ttsm_manager *mgr);
/** Evicts unreferenced, unpinned entries of `device`, least recently used
 *  first, until `nbytes` fit under the limit admission uses there (its
 *  budget; on devices with their own memory also the driver's free memory
 *  minus the reserve), and waits until their memory is gone. `*available`
 *  (may be NULL) gets what fits now (UINT64_MAX: no limit). @return TTSM_OK
 *  even when less could be freed (compare *available); TTSM_ERR_DEVICE for
 *  an unknown device. */
TTSM_API ttsm_status ttsm_manager_free(ttsm_manager *mgr, const char *device, uint64_t nbytes,
                                       uint64_t *available, ttsm_error *err);

typedef struct ttsm_entry_info {
    char key[TTSM_KEY_HEX_SIZE];
    char engine[TTSM_CONFIG_NAME_MAX];
    char model[512];  /* model name, else model path, else repo id ("..." when cut) */
    char device[TTSM_DEVICE_NAME_MAX];
    uint64_t bytes;
    size_t refs;
    int pinned;
    int loading;      /* 1 while its load is in flight (bytes are reserved) */
    double idle_seconds;
} ttsm_entry_info;

/** The loaded entries, least recently used first (like `ollama ps`). Free
 *  `*out` with ttsm_free(). */
TTSM_API ttsm_status ttsm_manager_list(ttsm_manager *mgr, ttsm_entry_info **out, size_t *n,
                                       ttsm_error *err);

typedef struct ttsm_device_stats {
    char device[TTSM_DEVICE_NAME_MAX];
    uint64_t budget;   /* UINT64_MAX: none configured */
    uint64_t in_use;   /* bytes held by entries (cached, referenced or orphaned) */
    uint64_t reserved; /* bytes reserved by loads in flight */
    uint64_t peak;     /* highest in_use + reserved */
    size_t entries;
} ttsm_device_stats;

typedef struct ttsm_manager_stats {
    uint64_t hits, misses, loads, evictions, failures, unloads, invalidations;
    uint64_t checkpoint_opens; /* files opened by the shared host table */
    size_t entries;            /* in the cache */
    size_t orphans;            /* invalidated entries still referenced */
    size_t n_devices;
    ttsm_device_stats devices[TTSM_MANAGER_MAX_DEVICES];
} ttsm_manager_stats;

/** A consistent snapshot of the counters. */
TTSM_API void ttsm_manager_get_stats(ttsm_manager *mgr, ttsm_manager_stats *out);

/* Model access (for engines, the CLI and the Python binding). Strings and
 * tables stay valid while you hold a reference. */
typedef struct ttsm_model_tensor {
    const char *name;
    ttsm_dtype dtype;
    uint32_t rank;
    const int64_t *shape;
    const int64_t *strides; /* in elements */
    void *data;             /* on the model's device */
    uint64_t nbytes;
} ttsm_model_tensor;

TTSM_API const char *ttsm_model_key(const ttsm_model *model);
TTSM_API const char *ttsm_model_engine(const ttsm_model *model);
TTSM_API const char *ttsm_model_device(const ttsm_model *model);
/** The model's name (after canonicalisation and any fallback: a French
 *  request that fell back returns "English"), else its path or repo id. */
TTSM_API const char *ttsm_model_name(const ttsm_model *model);
TTSM_API uint64_t ttsm_model_bytes(const ttsm_model *model);
TTSM_API void *ttsm_model_engine_data(const ttsm_model *model);
/** The dtype floating-point tensors were converted to at load (the `dtype`
 *  param, docs/manager.md), or TTSM_DTYPE_INVALID: as stored. */
TTSM_API ttsm_dtype ttsm_model_dtype(const ttsm_model *model);
TTSM_API size_t ttsm_model_component_count(const ttsm_model *model);
/** @return NULL when out of range. */
TTSM_API const char *ttsm_model_component_name(const ttsm_model *model, size_t component);
/** The file a component comes from (a checkpoint's path for tensors). */
TTSM_API const char *ttsm_model_component_path(const ttsm_model *model, size_t component);
/** "tensors", "json" or "blob". */
TTSM_API const char *ttsm_model_component_kind(const ttsm_model *model, size_t component);
TTSM_API size_t ttsm_model_tensor_count(const ttsm_model *model, size_t component);
TTSM_API const ttsm_model_tensor *ttsm_model_get_tensor(const ttsm_model *model, size_t component,
                                                        size_t index);
/** Looks a tensor up by name in component `component`. NULL when absent. */
TTSM_API const ttsm_model_tensor *ttsm_model_find_tensor(const ttsm_model *model,
                                                         size_t component, const char *name);
/** The opened checkpoint behind a tensors component, for its format and
 *  metadata (ttsm_checkpoint_metadata*). Owned by the model: valid while you
 *  hold a reference; do not close it. NULL for json/blob components or out
 *  of range. */
TTSM_API const ttsm_checkpoint *ttsm_model_component_checkpoint(const ttsm_model *model,
                                                                size_t component);

/* ------------------------------------------------------------------------ */
/* DLPack export (docs/python.md). Any tensor of a loaded model becomes a    */
/* DLPack managed tensor without a copy: the struct layouts are in dlpack.h  */
/* (DLPack 1.1 ABI). Each export holds its own model reference; its deleter  */
/* drops it, from any thread. A manager may be destroyed while exports live: */
/* the entry becomes an orphan and is freed with the last of them.           */
/* ------------------------------------------------------------------------ */

struct DLManagedTensor;
struct DLManagedTensorVersioned;

/* Flags of ttsm_model_export_dlpack*() (0: the tensor as it is). */
#define TTSM_DLPACK_BITS 1u     /* elements as unsigned integers of the same width
                                   (BOOL, F8_* -> uint8, BF16 -> uint16, C64 -> uint64),
                                   for consumers that lack the dtype */
#define TTSM_DLPACK_BYTES 2u    /* the tensor's bytes (nbytes, gaps of a strided view
                                   included) as a 1-D uint8 tensor: any dtype, also
                                   block-quantised and sub-byte ones */
#define TTSM_DLPACK_INNER 8u    /* the export holds an inner reference (ttsm_model_retain_inner):
                                   for the entry's own engine data */
#define TTSM_DLPACK_WRITABLE 4u /* versioned only: leave DLPACK_FLAG_BITMASK_READ_ONLY
                                   clear (by default it is set: a cache entry's memory
                                   is shared by all its holders) */

/** Exports tensor `index` of component `component` as a DLPack 1.1
 *  DLManagedTensorVersioned on the model's device (cpu: kDLCPU; cuda:N:
 *  kDLCUDA, N). The data pointer is the tensor's own (no copy); shape and
 *  strides are copies. Call `(*out)->deleter(*out)` when done (or hand it to
 *  a consumer that does). @return TTSM_OK; TTSM_ERR_INVALID_ARGUMENT for a
 *  bad model, index or flags, or a dtype DLPack cannot describe
 *  (block-quantised, sub-byte; complex C128 with TTSM_DLPACK_BITS) naming
 *  it; TTSM_ERR_DEVICE for a device kind DLPack has no code for;
 *  TTSM_ERR_OUT_OF_MEMORY. */
TTSM_API ttsm_status ttsm_model_export_dlpack(ttsm_model *model, size_t component, size_t index,
                                              unsigned flags,
                                              struct DLManagedTensorVersioned **out,
                                              ttsm_error *err);
/** The same as a legacy DLManagedTensor (no version, no flags: consumers
 *  may write into it; writes change the cached entry for every holder, and
 *  never the file). TTSM_DLPACK_WRITABLE is accepted and means nothing here. */
TTSM_API ttsm_status ttsm_model_export_dlpack_legacy(ttsm_model *model, size_t component,
                                                     size_t index, unsigned flags,
                                                     struct DLManagedTensor **out,
                                                     ttsm_error *err);

/* ------------------------------------------------------------------------ */
/* The engine registry (DESIGN §7; docs/engines.md). Engines come from JSON */
/* manifests compiled into the library, from folders (TTSM_ENGINES_PATH,   */
/* ttsm_engines_load_dir) and from ttsm_register_engine(). Handles stay     */
/* valid until the process ends.                                            */
/* ------------------------------------------------------------------------ */

typedef struct ttsm_engine_info ttsm_engine_info;

typedef enum ttsm_capability {
    TTSM_CAP_VOICE_CONVERSION = 1,
    TTSM_CAP_FALLBACK = 2,
    TTSM_CAP_CAN_CORRUPT = 3,
    TTSM_CAP_SPECIAL_INIT = 4,
    TTSM_CAP_LANGUAGE_SELECTS_MODEL = 5,
    TTSM_CAP_SINGLE_INSTANCE = 6
} ttsm_capability;

/** @return the number of engines (the built-in `file` engine is index 0). */
TTSM_API size_t ttsm_engine_count(void);
/** @return engine `index`, or NULL when out of range. */
TTSM_API const ttsm_engine_info *ttsm_engine_get(size_t index);
/** Finds an engine by name or alias (aliases case-insensitively). NULL when unknown. */
TTSM_API const ttsm_engine_info *ttsm_engine_find(const char *name_or_alias);

TTSM_API const char *ttsm_engine_name(const ttsm_engine_info *engine);
/** "built-in:<file>.json", the manifest's path, "built-in" or "registered in code". */
TTSM_API const char *ttsm_engine_source(const ttsm_engine_info *engine);
/** The manifest as compact JSON, or NULL for engines registered in code. */
TTSM_API const char *ttsm_engine_manifest(const ttsm_engine_info *engine);
TTSM_API const char *ttsm_engine_description(const ttsm_engine_info *engine);
/** "pytorch" (weights for a PyTorch runtime) or "native" (ttsm runs it). */
TTSM_API const char *ttsm_engine_runtime(const ttsm_engine_info *engine);
/** "none" or "invalidate". */
TTSM_API const char *ttsm_engine_recovery(const ttsm_engine_info *engine);
/** Comma-separated device kinds ("cpu,cuda"), or NULL for any. */
TTSM_API const char *ttsm_engine_devices(const ttsm_engine_info *engine);
TTSM_API const char *ttsm_engine_default_model(const ttsm_engine_info *engine);
/** @return 1 when the engine has the capability. */
TTSM_API int ttsm_engine_has(const ttsm_engine_info *engine, ttsm_capability cap);
TTSM_API size_t ttsm_engine_alias_count(const ttsm_engine_info *engine);
TTSM_API const char *ttsm_engine_alias(const ttsm_engine_info *engine, size_t index);
/** Languages as ISO 639-1 codes. */
TTSM_API size_t ttsm_engine_language_count(const ttsm_engine_info *engine);
TTSM_API const char *ttsm_engine_language(const ttsm_engine_info *engine, size_t index);
/** 1 when the engine speaks `language` (a name or a code: "English" is "en"). */
TTSM_API int ttsm_engine_supports_language(const ttsm_engine_info *engine, const char *language);
TTSM_API size_t ttsm_engine_model_type_count(const ttsm_engine_info *engine);
TTSM_API const char *ttsm_engine_model_type(const ttsm_engine_info *engine, size_t index);
TTSM_API size_t ttsm_engine_model_count(const ttsm_engine_info *engine);
TTSM_API const char *ttsm_engine_model_name(const ttsm_engine_info *engine, size_t index);
/** The language of model `index` as a code, or NULL. */
TTSM_API const char *ttsm_engine_model_language(const ttsm_engine_info *engine, size_t index);

/** Reads every *.json manifest in `dir` (validated; a bad one is
 *  TTSM_ERR_FORMAT naming the file and the field, and nothing of that call
 *  is registered): new engines are added, a manifest named like an engine
 *  from another manifest replaces it for loads from now on. Such manifests
 *  find files in the models roots and the hub cache only: one that names
 *  absolute system folders ("system_dirs") is refused. */
TTSM_API ttsm_status ttsm_engines_load_dir(const char *dir, ttsm_error *err);
/** As ttsm_engines_load_dir(), for a folder the program controls: its
 *  manifests may name system folders (read as they are, like the built-in
 *  espeak-ng manifest's data folder). Never for folders others can write. */
TTSM_API ttsm_status ttsm_engines_load_dir_trusted(const char *dir, ttsm_error *err);
/** Registers one manifest given as JSON text (`source` names it in
 *  messages), like one file of ttsm_engines_load_dir(). */
TTSM_API ttsm_status ttsm_engines_add_manifest(const char *json, size_t len, const char *source,
                                               ttsm_error *err);
/** The outcome of reading TTSM_ENGINES_PATH (colon-separated folders) when
 *  the registry started: TTSM_OK, or the first error. */
TTSM_API ttsm_status ttsm_engines_status(ttsm_error *err);

/* ------------------------------------------------------------------------ */
/* Fallback chains (DESIGN §8; docs/fallback.md): a primary loader, then     */
/* (loader, condition) pairs. Manifests declare the chains of the built-in   */
/* engines; programs can build their own with the same function.            */
/* ------------------------------------------------------------------------ */

typedef ttsm_status (*ttsm_loader_fn)(void *user, ttsm_model **out, ttsm_error *err);
/** @return nonzero to run the step after a failure `failed` (err: its error). */
typedef int (*ttsm_condition_fn)(void *user, ttsm_status failed, const ttsm_error *err);

typedef struct ttsm_fallback_step {
    const char *label;     /* names the attempt in the error ("German (havok2)") */
    ttsm_loader_fn load;
    void *user;
    ttsm_condition_fn when; /* ignored for the primary (first) step */
    void *when_user;
} ttsm_fallback_step;

/** Runs steps[0], then each later step whose condition accepts the last
 *  failure, until one loads. @return TTSM_OK with *out set; or the primary's
 *  error, whose attempts[] lists every step tried, in order, with its error. */
TTSM_API ttsm_status ttsm_fallback_run(const ttsm_fallback_step *steps, size_t n,
                                       ttsm_model **out, ttsm_error *err);
/** Conditions: a missing or invalid file (NOT_FOUND, FORMAT); any load error. */
TTSM_API int ttsm_fallback_if_missing_or_bad(void *user, ttsm_status failed, const ttsm_error *err);
TTSM_API int ttsm_fallback_if_load_error(void *user, ttsm_status failed, const ttsm_error *err);

/* ------------------------------------------------------------------------ */
/* Resolution (DESIGN §8; docs/engines.md): where a model's files are.      */
/* ------------------------------------------------------------------------ */

/** Finds every file of the model `cfg` names, without opening any, and
 *  describes it as JSON: {"engine", "model", "model_type", "language",
 *  "complete", "installed", "missing", "hub_cache", "components": [{"name",
 *  "kind", "files", "path" (null when missing), "origin", "from_model",
 *  "borrowed", "shared", "optional", "searched": [...]}], "pull":
 *  {"components": the required ones missing, "command": the `ttsm pull`
 *  command that fetches them, or null}}. `models_dirs`
 *  (colon-separated) and `hf_cache` may be NULL (environment defaults).
 *  Free `*report` with ttsm_free(). @return TTSM_OK even when files are
 *  missing; TTSM_ERR_NOT_FOUND for an unknown model or language;
 *  TTSM_ERR_FORMAT for an unsafe hub cache entry. */
TTSM_API ttsm_status ttsm_resolve(const ttsm_load_config *cfg, const char *models_dirs,
                                  const char *hf_cache, char **report, ttsm_error *err);

/** ttsm_resolve() with the places to look taken from manager options
 *  (`where` may be NULL: the environment's; only models_dirs, comfyui_dirs
 *  and hf_cache are read). The report also has "roots": [{"path", "kind"
 *  ("models root" or "TTS folder"), "origin", "exists"}] in search order,
 *  "warnings": [...] (a missing root, an unreadable extra_model_paths.yaml)
 *  and, per component, "where": the folder its files go in for each root
 *  (same order as "roots"), "names" (the file names looked for),
 *  "download": {"repo", "revision", "path", "dataset"} or null, "broken"
 *  (a hub link whose blob is gone, "<link> -> <target>", or null), and for
 *  a file found "bytes" (with every shard of an index), "modified" (Unix
 *  seconds, the newest) and "location": {"root"} or {"repo", "revision",
 *  "commit"}. docs/engines.md, "Models roots". */
TTSM_API ttsm_status ttsm_resolve_with(const ttsm_load_config *cfg,
                                       const ttsm_manager_options *where, char **report,
                                       ttsm_error *err);

/** The places manifest engines look for files, as JSON: {"roots": [{"path",
 *  "kind", "origin", "exists"}], "hub_cache": path or null, "warnings":
 *  [...]}. `where` as for ttsm_resolve_with(). Problems with a root are
 *  warnings, not errors. Free `*json` with ttsm_free(). */
TTSM_API ttsm_status ttsm_search_paths(const ttsm_manager_options *where, char **json,
                                       ttsm_error *err);

/* ------------------------------------------------------------------------ */
/* Downloads from the Hugging Face Hub (DESIGN §8; docs/hub.md). A pull     */
/* fetches exactly the files a manifest model's components need, into the   */
/* hub cache in huggingface_hub's layout (or a models root): verified       */
/* against their etag, resumable, renamed into place, never half visible.   */
/* ------------------------------------------------------------------------ */

#define TTSM_PULL_DEFAULT_JOBS 4
#define TTSM_PULL_MAX_JOBS 16

/** Progress of a pull. The callback runs on the thread that moved the
 *  bytes, never on two threads at once; the strings are valid during the
 *  call only. */
typedef struct ttsm_pull_progress {
    const char *repo;         /* the file's repo id ("org/name") */
    const char *file;         /* its path in the repo */
    uint64_t file_done, file_total;
    uint64_t done, total;     /* bytes of every file this pull fetches */
    size_t files_done, files_total;
    int finished;             /* 1 on the call that reports `file` in place */
} ttsm_pull_progress;

/** @return nonzero to cancel: the pull stops with TTSM_ERR_CANCELLED, files
 *  already in place stay, a partial download is kept hidden for the next
 *  pull to resume, and no lock is left held. */
typedef int (*ttsm_pull_progress_fn)(void *user, const ttsm_pull_progress *progress);

typedef struct ttsm_pull_options {
    size_t struct_size;          /* set by ttsm_pull_options_default() */
    /* Where a file counts as present already: models roots (NULL:
     * TTSM_MODELS_PATH), ComfyUI folders (NULL: TTSM_COMFYUI_PATH) and the
     * hub cache, which is also where files go (NULL: HF_HUB_CACHE,
     * HF_HOME/hub, ~/.cache/huggingface/hub). */
    const char *models_dirs;
    const char *comfyui_dirs;
    const char *hf_cache;
    /* Write <dir>/TTS/<engine folder>/<model folder>/... (the ComfyUI
     * layout) instead of the hub cache, with the same checks (NULL: off). */
    const char *to_models_root;
    /* Pull the model's first repo at this branch, tag or commit instead of
     * its manifest revision (load it with repo_id "org/name@<revision>"). */
    const char *revision;
    const char *endpoint;        /* NULL: HF_ENDPOINT, else https://huggingface.co */
    const char *token;           /* NULL: HF_TOKEN, else HF_TOKEN_PATH or $HF_HOME/token; "": none */
    int dry_run;                 /* plan only: the report lists files and sizes */
    unsigned jobs;               /* files fetched in parallel (1..TTSM_PULL_MAX_JOBS; 0: default) */
    unsigned retries;            /* tries after a failed request (429, 5xx, broken or stalled
                                    connection); default 5 */
    uint64_t connect_timeout_ms; /* 0: HF_HUB_ETAG_TIMEOUT seconds, else 10 s */
    uint64_t stall_timeout_ms;   /* no byte for this long fails a try; 0: HF_HUB_DOWNLOAD_TIMEOUT, else 10 s */
    ttsm_pull_progress_fn progress;
    void *progress_user;
    ttsm_log_fn log;             /* retries, resumes, waits for a lock, offline use */
    void *log_user;
} ttsm_pull_options;

/** @return options with struct_size set, jobs TTSM_PULL_DEFAULT_JOBS,
 *  retries 5 and everything else 0/NULL. */
TTSM_API ttsm_pull_options ttsm_pull_options_default(void);

/** Fetches every file the model of `cfg` needs that is not found locally
 *  (a models root or the hub cache): for each component the first
 *  alternative its repo has, in the model's repos in order (fallback
 *  repos), borrowed and shared components, the shards of a sharded index.
 *  A file already in the cache costs one HEAD per repo (is the revision
 *  still the same commit?) and no download; with HF_HUB_OFFLINE nothing
 *  is requested. `options` may be NULL (defaults). `*report` (may be
 *  NULL; free with ttsm_free) is JSON: {"engine", "model", "target",
 *  "root", "dry_run", "offline", "files": [{"component", "repo",
 *  "revision", "commit", "path", "size", "status", "optional", "local"}],
 *  "total_bytes", "download_bytes", "downloaded", "present"}, where status
 *  is "present", "downloaded", "linked" (its blob was there), "absent"
 *  (optional and in no repo), or with dry_run "would download" / "would
 *  link". @return TTSM_OK; TTSM_ERR_NOT_FOUND (unknown engine or model, a
 *  repository, revision or required file the Hub does not have, or
 *  offline and missing); TTSM_ERR_IO (network after the retries, a gated
 *  repository or refused token, disk, hash or size mismatch: nothing of
 *  that file is kept); TTSM_ERR_FORMAT (the server broke the protocol or
 *  sent an unsafe path); TTSM_ERR_CANCELLED; TTSM_ERR_INVALID_ARGUMENT. */
TTSM_API ttsm_status ttsm_pull(const ttsm_pull_options *options, const ttsm_load_config *cfg,
                               char **report, ttsm_error *err);

/** Removes the model of `cfg` from the hub cache `hf_cache` (NULL: the
 *  environment's): its own files' snapshot entries in every snapshot of
 *  its repos, then the blobs no other entry references; a repo folder left
 *  empty goes whole. Borrowed and shared files, and models roots, are not
 *  touched. With `dry_run` nothing changes. `*report` (may be NULL; free
 *  with ttsm_free): {"engine", "model", "dry_run", "links": [...],
 *  "blobs": [{"path", "bytes"}], "freed_bytes", "repos_removed": [...]}.
 *  @return TTSM_OK (also when nothing was there), TTSM_ERR_NOT_FOUND for
 *  an unknown model, TTSM_ERR_INVALID_ARGUMENT. */
TTSM_API ttsm_status ttsm_remove(const ttsm_load_config *cfg, const char *hf_cache, int dry_run,
                                 char **report, ttsm_error *err);

/* ------------------------------------------------------------------------ */
/* Synthesis (engines ttsm runs itself: the built-in espeak-ng).            */
/* ------------------------------------------------------------------------ */

TTSM_API ttsm_synth_options ttsm_synth_options_default(void);
/** Speaks `text` (UTF-8) with a loaded model. @return TTSM_OK with `*out`
 *  filled (free with ttsm_audio_free); TTSM_ERR_NOT_FOUND for an unknown
 *  language or voice (listing close matches); TTSM_ERR_INVALID_ARGUMENT for
 *  empty text or options out of range; TTSM_ERR_ENGINE for engines whose
 *  weights are for a PyTorch runtime (use the Python binding) or a failure
 *  inside the engine. Thread-safe. */
TTSM_API ttsm_status ttsm_synthesize(ttsm_model *model, const char *text,
                                     const ttsm_synth_options *options, ttsm_audio *out,
                                     ttsm_error *err);
TTSM_API void ttsm_audio_free(ttsm_audio *audio);

/** The voices of an engine that speaks in ttsm (espeak-ng), as JSON:
 *  {"engine", "voices": [{"name", "id", "languages": [...], "gender"}]}.
 *  ttsm_synth_options.voice takes a name, an id (whole or its last part:
 *  "gmw/en-US", "en-US") or a language id ("en-us"), as espeak-ng's own
 *  -v option does. Free `*json` with ttsm_free(). @return TTSM_OK, or
 *  TTSM_ERR_ENGINE for engines that do not synthesise here. */
TTSM_API ttsm_status ttsm_model_voices(ttsm_model *model, char **json, ttsm_error *err);

#ifdef __cplusplus
}
#endif

#endif /* TTSM_H */
