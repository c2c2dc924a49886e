/* dtype.h - element types of stored tensors and their conversion to f32.
 *
 * Shared by the GGUF and safetensors readers and by the weight loaders.
 * Block-quantised types follow GGML's layouts:
 *   Q8_0: blocks of 32 values = f16 scale d + 32 x int8 q;  x = d * q
 *   Q4_0: blocks of 32 values = f16 scale d + 16 bytes; byte j holds
 *         element j in its low nibble and element j+16 in its high
 *         nibble;  x = d * (nibble - 8)
 */
#ifndef MK_DTYPE_H
#define MK_DTYPE_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    MK_F32 = 0,
    MK_F16 = 1,
    MK_BF16 = 2,
    MK_Q8_0 = 3,
    MK_Q4_0 = 4,
    MK_DTYPE_COUNT
} mk_dtype;

#define MK_QK 32 /* elements per quantisation block */

const char *mk_dtype_name(mk_dtype t);
/* Bytes needed for n elements; n must be a multiple of MK_QK for the
 * block types. Returns 0 (and sets no error) when n is not a valid count
 * for the type or the size overflows. */
size_t mk_dtype_nbytes(mk_dtype t, uint64_t n);
/* Elements per block (1 for plain types, MK_QK for quantised). */
int mk_dtype_block(mk_dtype t);

float mk_f16_to_f32(uint16_t h);
uint16_t mk_f32_to_f16(float f);   /* round to nearest even */
float mk_bf16_to_f32(uint16_t h);
uint16_t mk_f32_to_bf16(float f);  /* round to nearest even */

/* Convert n elements of type t at src (any alignment) to f32 in dst.
 * n must be a multiple of the block size. */
void mk_dequantize(mk_dtype t, const void *src, float *dst, size_t n);
/* Convert n f32 values to type t (the writers' side). */
void mk_quantize(mk_dtype t, const float *src, void *dst, size_t n);

#endif
