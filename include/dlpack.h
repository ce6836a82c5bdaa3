/* dlpack.h - the DLPack exchange structures (ABI version 1.1) that
 * ttsm_model_export_dlpack() and ttsm_model_export_dlpack_legacy() hand out,
 * so C and C++ consumers can read them without another dependency.
 *
 * Where the facts come from: the published header of the DLPack project,
 * github.com/dmlc/dlpack, include/dlpack/dlpack.h (v1.0: the versioned
 * struct and its flags; v1.1: the float8/float6/float4 type codes), as
 * vendored by PyTorch (aten/src/ATen/dlpack.h) and NumPy. Field order, field
 * types and every enum value below are that ABI; only the comments are ours.
 *
 * The include guard is the upstream one on purpose: whichever of this file
 * and the upstream header is included first defines the types, and the two
 * are layout-identical, so a program may use either. An upstream header
 * older than 1.0 lacks the versioned struct: the check below says so. */
#ifndef DLPACK_DLPACK_H_
#define DLPACK_DLPACK_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define DLPACK_MAJOR_VERSION 1
#define DLPACK_MINOR_VERSION 1

/* A major version that differs from the consumer's means the layout after
 * `deleter` may differ: the consumer must only call the deleter. */
typedef struct {
    uint32_t major;
    uint32_t minor;
} DLPackVersion;

#ifdef __cplusplus
typedef enum : int32_t {
#else
typedef enum {
#endif
    kDLCPU = 1,
    kDLCUDA = 2,
    kDLCUDAHost = 3,
    kDLOpenCL = 4,
    kDLVulkan = 7,
    kDLMetal = 8,
    kDLVPI = 9,
    kDLROCM = 10,
    kDLROCMHost = 11,
    kDLExtDev = 12,
    kDLCUDAManaged = 13,
    kDLOneAPI = 14,
    kDLWebGPU = 15,
    kDLHexagon = 16,
    kDLMAIA = 17,
} DLDeviceType;

typedef struct {
    DLDeviceType device_type;
    int32_t device_id; /* 0 for plain host memory */
} DLDevice;

typedef enum {
    kDLInt = 0U,
    kDLUInt = 1U,
    kDLFloat = 2U,
    kDLOpaqueHandle = 3U,
    kDLBfloat = 4U,
    kDLComplex = 5U, /* bits = the whole (real, imaginary) pair */
    kDLBool = 6U,    /* bits = 8: one byte per element */
    /* 1.1: 8-bit floats; "fn" = finite only (no infinities), "uz" = unsigned zero */
    kDLFloat8_e3m4 = 7U,
    kDLFloat8_e4m3 = 8U,
    kDLFloat8_e4m3b11fnuz = 9U,
    kDLFloat8_e4m3fn = 10U,
    kDLFloat8_e4m3fnuz = 11U,
    kDLFloat8_e5m2 = 12U,
    kDLFloat8_e5m2fnuz = 13U,
    kDLFloat8_e8m0fnu = 14U,
    /* 1.1: sub-byte floats (bits 6 and 4) */
    kDLFloat6_e2m3fn = 15U,
    kDLFloat6_e3m2fn = 16U,
    kDLFloat4_e2m1fn = 17U,
} DLDataTypeCode;

/* Elements are native-endian. `code` holds a DLDataTypeCode in one byte. */
typedef struct {
    uint8_t code;
    uint8_t bits;
    uint16_t lanes; /* 1 for scalars; >1 for vector element types */
} DLDataType;

/* A view of memory; it owns nothing. `strides` count elements, not bytes;
 * the element at index i is at data + byte_offset + sum(i[k] * strides[k])
 * elements. A zero-element tensor should have data == NULL. */
typedef struct {
    void *data;
    DLDevice device;
    int32_t ndim;
    DLDataType dtype;
    int64_t *shape;
    int64_t *strides;
    uint64_t byte_offset;
} DLTensor;

/* The legacy (pre-1.0) managed tensor, still the only one older consumers
 * such as PyTorch 1.x take; Python capsule name "dltensor" (renamed
 * "used_dltensor" by the consumer that takes it). */
typedef struct DLManagedTensor {
    DLTensor dl_tensor;
    void *manager_ctx;
    /* Frees the tensor and everything it keeps alive, `self` included. */
    void (*deleter)(struct DLManagedTensor *self);
} DLManagedTensor;

/* flags of DLManagedTensorVersioned: READ_ONLY, consumers must not write;
 * IS_COPIED, the producer made a copy for the consumer; (1.1)
 * IS_SUBBYTE_TYPE_PADDED, sub-byte elements are stored one per byte. */
#define DLPACK_FLAG_BITMASK_READ_ONLY (1UL << 0UL)
#define DLPACK_FLAG_BITMASK_IS_COPIED (1UL << 1UL)
#define DLPACK_FLAG_BITMASK_IS_SUBBYTE_TYPE_PADDED (1UL << 2UL)

/* The managed tensor of DLPack >= 1.0; Python capsule name
 * "dltensor_versioned" ("used_dltensor_versioned" once taken). The fields up
 * to and including `flags` keep their place in every future major version,
 * so the deleter can always be found. */
typedef struct DLManagedTensorVersioned {
    DLPackVersion version;
    void *manager_ctx;
    void (*deleter)(struct DLManagedTensorVersioned *self);
    uint64_t flags;
    DLTensor dl_tensor;
} DLManagedTensorVersioned;

#ifdef __cplusplus
}
#endif

#endif /* DLPACK_DLPACK_H_ */

#if DLPACK_MAJOR_VERSION < 1
#error "ttsm needs a DLPack header of version 1.0 or later (DLManagedTensorVersioned)"
#endif
