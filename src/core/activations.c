/* activations.c - elementwise SwiGLU, exact GELU, ReLU, tanh; forward and
 * backward (backward ADDS into its gradient). */
#include <math.h>
#include <omp.h>

#include "ops.h"

#define PAR_MIN_N 131072 /* elements; smaller arrays stay on one thread (see matmul.c) */

/* sigmoid without overflow for large |x| */
static inline float sigmoidf(float x) {
    if (x >= 0) return 1.0f / (1.0f + expf(-x));
    float e = expf(x);
    return e / (1.0f + e);
}

void mk_swiglu_forward(float *out, const float *a, const float *b, size_t n) {
#pragma omp parallel for schedule(static) if (n >= PAR_MIN_N)
    for (size_t i = 0; i < n; i++) out[i] = a[i] * sigmoidf(a[i]) * b[i];
}

/* d silu(a)/da = s (1 + a (1 - s)), s = sigmoid(a) */
void mk_swiglu_backward(float *da, float *db, const float *dout, const float *a,
                        const float *b, size_t n) {
#pragma omp parallel for schedule(static) if (n >= PAR_MIN_N)
    for (size_t i = 0; i < n; i++) {
        float s = sigmoidf(a[i]);
        if (da) da[i] += dout[i] * b[i] * s * (1.0f + a[i] * (1.0f - s));
        if (db) db[i] += dout[i] * a[i] * s;
    }
}

#define INV_SQRT2 0.70710678118654752440f
#define INV_SQRT_2PI 0.39894228040143267794f

/* Phi(x) = erfc(-x/sqrt2)/2, which unlike 1 + erf(x/sqrt2) keeps its
 * relative precision for negative x; float erfcf/expf (about 1 ulp): the
 * double versions would cost a third of a BERT layer's time */
void mk_gelu_forward(float *out, const float *inp, size_t n) {
#pragma omp parallel for schedule(static) if (n >= PAR_MIN_N)
    for (size_t i = 0; i < n; i++) {
        float x = inp[i];
        out[i] = 0.5f * x * erfcf(-x * INV_SQRT2);
    }
}

/* d/dx x Phi(x) = Phi(x) + x phi(x) */
void mk_gelu_backward(float *dinp, const float *dout, const float *inp, size_t n) {
#pragma omp parallel for schedule(static) if (n >= PAR_MIN_N)
    for (size_t i = 0; i < n; i++) {
        float x = inp[i];
        float d = 0.5f * erfcf(-x * INV_SQRT2) + x * INV_SQRT_2PI * expf(-0.5f * x * x);
        dinp[i] += dout[i] * d;
    }
}

void mk_relu_forward(float *out, const float *inp, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = inp[i] > 0 ? inp[i] : 0.0f;
}

/* gradient 0 at x == 0, as PyTorch */
void mk_relu_backward(float *dinp, const float *dout, const float *inp, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (inp[i] > 0) dinp[i] += dout[i];
}

void mk_tanh_forward(float *out, const float *inp, size_t n) {
#pragma omp parallel for schedule(static) if (n >= PAR_MIN_N)
    for (size_t i = 0; i < n; i++) out[i] = tanhf(inp[i]);
}

void mk_tanh_backward(float *dinp, const float *dout, const float *out, size_t n) {
    for (size_t i = 0; i < n; i++) dinp[i] += dout[i] * (1.0f - out[i] * out[i]);
}
