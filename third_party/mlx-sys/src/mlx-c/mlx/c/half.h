/* Copyright © 2023-2024 Apple Inc. */

#ifndef MLX_HALF_H
#define MLX_HALF_H

/* mlx-manager patch (see third_party/mlx-sys/PATCHES.md): on targets other
 * than aarch64 the 16-bit float types are declared too, so that the C API is
 * the same on x86_64 Linux. C++ (mlx-c's own sources) uses MLX's types; C
 * (bindgen) sees `__fp16` (storage-only in clang) and `uint16_t`. Both are only
 * passed by pointer across the C ABI. */
#if !(defined(__ARM_FEATURE_FP16_SCALAR_ARITHMETIC) || defined(__aarch64__)) && \
    defined(__cplusplus)
#include "mlx/types/half_types.h"
#endif

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__ARM_FEATURE_FP16_SCALAR_ARITHMETIC) || defined(__aarch64__)
#define HAS_FLOAT16
#include <arm_fp16.h>
typedef __fp16 float16_t;
#elif defined(__cplusplus)
#define HAS_FLOAT16
typedef mlx::core::float16_t float16_t;
#else
#define HAS_FLOAT16
typedef __fp16 float16_t;
#endif

#if defined(__ARM_FEATURE_BF16) || defined(__aarch64__)
#define HAS_BFLOAT16
#include <arm_bf16.h>
typedef __bf16 bfloat16_t;
#elif defined(__cplusplus)
#define HAS_BFLOAT16
typedef mlx::core::bfloat16_t bfloat16_t;
#else
#define HAS_BFLOAT16
#include <stdint.h>
typedef uint16_t bfloat16_t;
#endif

#ifdef __cplusplus
}
#endif

#endif
