/* ops.h - the numeric kernels, as forward/backward pairs over plain float
 * buffers (row-major). Backward functions ADD into their gradient outputs
 * (so zeroing gradients is a memset); any gradient pointer may be NULL when
 * that gradient is not wanted. Sizes: M rows (tokens), K/C inputs/channels,
 * N outputs, T queries, Tk keys, NH heads, NKV key/value heads, HS head size.
 */
#ifndef MK_OPS_H
#define MK_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "dtype.h"

/* ---- linear layers (PyTorch convention: weight is (N, K)) ----
 * out (M,N) = inp (M,K) @ w^T + bias (N or NULL); out is overwritten. */
void mk_matmul_forward(float *out, const float *inp, const float *w, const float *bias,
                       int M, int K, int N);
/* dinp (M,K) += dout @ w;  dw (N,K) += dout^T @ inp;  dbias (N) += sum_m dout */
void mk_matmul_backward(float *dinp, float *dw, float *dbias, const float *dout,
                        const float *inp, const float *w, int M, int K, int N);
/* Same products with a stored weight of any dtype (F32, F16, BF16, Q8_0,
 * Q4_0; K a multiple of 32 for block types), read in place (any
 * alignment): never converted as a whole. M == 1 (decoding) runs a fused
 * dequantise-dot per weight row, rows split across threads; M > 1
 * dequantises tiles of up to 256 rows (about 2 MiB of f32) per thread and
 * multiplies each with sgemm. A K that is not a whole number of blocks
 * fills the output with NaN (loaders reject such shapes first). */
void mk_matmul_forward_dt(float *out, const float *inp, const void *w, mk_dtype wt,
                          const float *bias, int M, int K, int N);
/* dinp (M,K) += dout (M,N) @ w (N,K) for a frozen stored weight. */
void mk_matmul_backward_dt(float *dinp, const float *dout, const void *w, mk_dtype wt,
                           int M, int K, int N);

/* ---- normalisation ---- */
/* Norm weights (w) may be NULL (all ones), as may the LayerNorm bias b
 * (zeros); statistics are accumulated in double.
 * out = inp * rstd * w, rstd = 1/sqrt(mean(inp^2) + eps); rstd (M) saved */
void mk_rmsnorm_forward(float *out, float *rstd, const float *inp, const float *w,
                        int M, int C, float eps);
void mk_rmsnorm_backward(float *dinp, float *dw, const float *dout, const float *inp,
                         const float *w, const float *rstd, int M, int C);
/* out = (inp - mean) * rstd * w + b; mean, rstd (M) saved */
void mk_layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                          const float *w, const float *b, int M, int C, float eps);
void mk_layernorm_backward(float *dinp, float *dw, float *db, const float *dout,
                           const float *inp, const float *w, const float *mean,
                           const float *rstd, int M, int C);

/* ---- rotary position embedding, in place on x (T, NH, HS) ----
 * interleaved=1: pairs (2i, 2i+1) rotate together (GGUF's permuted Q/K);
 * interleaved=0: pairs (i, i+HS/2) (Hugging Face rotate-half).
 * angle = pos[t] * theta^(-2i/HS) / (freq_factors ? freq_factors[i] : 1).
 * Backward rotates the gradient by the opposite angle (also in place).
 * Angles are computed in double. HS must be even (an odd last element is
 * left unrotated). */
void mk_rope_forward(float *x, const int *pos, int T, int NH, int HS, float theta,
                     const float *freq_factors, int interleaved);
void mk_rope_backward(float *dx, const int *pos, int T, int NH, int HS, float theta,
                      const float *freq_factors, int interleaved);

/* ---- activations (elementwise over n) ---- */
/* out = silu(a) * b  (Llama's SwiGLU FFN) */
void mk_swiglu_forward(float *out, const float *a, const float *b, size_t n);
void mk_swiglu_backward(float *da, float *db, const float *dout, const float *a,
                        const float *b, size_t n);
/* exact (erf) GELU, as BERT/RoBERTa */
void mk_gelu_forward(float *out, const float *inp, size_t n);
void mk_gelu_backward(float *dinp, const float *dout, const float *inp, size_t n);
void mk_relu_forward(float *out, const float *inp, size_t n);
void mk_relu_backward(float *dinp, const float *dout, const float *inp, size_t n);
void mk_tanh_forward(float *out, const float *inp, size_t n);
/* uses the forward output */
void mk_tanh_backward(float *dinp, const float *dout, const float *out, size_t n);

/* ---- attention for ONE sequence ----
 * q (T, NH, HS), k and v (Tk, NKV, HS), NH a multiple of NKV (grouped-query:
 * head h uses key/value head h / (NH/NKV)). Scores scaled by 1/sqrt(HS).
 * causal_offset < 0: every query sees every key; otherwise query t sees
 * keys j <= t + causal_offset (a KV cache of `offset` earlier positions).
 * kmask (Tk) or NULL: keys with kmask[j] == 0 are not attended (padding).
 * att (NH, T, Tk) receives the probabilities (needed by backward), 0 for
 * keys not attended; a query that sees no key gets all-zero probabilities
 * and a zero output (PyTorch would give NaN). Parallel over heads in the
 * forward, over key/value heads in the backward.
 * out (T, NH, HS) is overwritten. */
void mk_attention_forward(float *out, float *att, const float *q, const float *k,
                          const float *v, const float *kmask, int T, int Tk, int NH,
                          int NKV, int HS, int causal_offset);
void mk_attention_backward(float *dq, float *dk, float *dv, const float *dout,
                           const float *att, const float *q, const float *k,
                           const float *v, int T, int Tk, int NH, int NKV, int HS);

/* ---- softmax and losses ---- */
/* row-wise softmax of (M, N), numerically stable; a row that is all -inf
 * (fully masked) gives zeros */
void mk_softmax_forward(float *out, const float *inp, int M, int N);
/* dinp += softmax backward given the forward output */
void mk_softmax_backward(float *dinp, const float *dout, const float *out, int M, int N);
/* Mean cross-entropy over rows with mask[m] != 0 (mask NULL: all rows) of
 * logits (M, V) against targets (M). Returns the loss; when dlogits is not
 * NULL adds d(loss)/d(logits) into it (scaled by dloss). Rows whose target
 * is outside [0, V) are skipped as if masked (PyTorch's ignore_index -100
 * behaves so); with no counted row the loss is 0 and nothing is added. */
float mk_cross_entropy(float *dlogits, const float *logits, const int32_t *targets,
                       const float *mask, int M, int V, float dloss);

/* ---- threads ---- */
/* Threads used by the kernels (OMP_NUM_THREADS, else the cores). */
int mk_num_threads(void);
/* Threading policy: the kernels parallelise with OpenMP themselves and call
 * BLAS from inside their parallel regions on disjoint slices of the output,
 * so OpenBLAS is pinned to ONE thread (two pools on the same cores would
 * oversubscribe them). Every BLAS-using kernel calls this itself; it is
 * idempotent and thread-safe. Code elsewhere calling cblas_* directly gets
 * single-threaded BLAS after the first kernel call. Small calls (under
 * ~2M multiply-adds for products, ~128K elements elsewhere) run on the
 * calling thread: on a busy machine each team wake-up can cost a scheduler
 * slice. Kernels called from inside a caller's parallel region run
 * serially in that thread (nested parallelism is off). */
void mk_ops_init(void);

#endif
