/* GPT-2's GELU, the tanh approximation, for float32 arrays:
 *
 *     gelu(x) = 0.5 x (1 + tanh(u)),   u = sqrt(2/pi) (x + 0.044715 x^3)
 *     gelu'(x) = 0.5 (1 + tanh(u)) + 0.5 x (1 - tanh(u)^2) sqrt(2/pi) (1 + 3 * 0.044715 x^2)
 *
 * Plain loops the compiler vectorises: with the declaration below it calls glibc's vector
 * tanhf (libmvec) on 16 or 8 floats at a time; OpenMP splits them among PyTorch's threads
 * (see minigpt2/native/__init__.py for how this is built and loaded).
 */
#include <math.h>

#pragma omp declare simd notinbranch
extern float tanhf(float);

#define SQRT_2_OVER_PI 0.7978845608028654f
#define CUBIC 0.044715f

void gelu_tanh_forward(const float *restrict x, float *restrict y, long n) {
#pragma omp parallel for simd schedule(static)
    for (long i = 0; i < n; i++) {
        float v = x[i];
        float t = tanhf(SQRT_2_OVER_PI * (v + CUBIC * v * v * v));
        y[i] = 0.5f * v * (1.0f + t);
    }
}

/* grad_x = grad_y * gelu'(x) */
void gelu_tanh_backward(const float *restrict grad_y, const float *restrict x, float *restrict grad_x, long n) {
#pragma omp parallel for simd schedule(static)
    for (long i = 0; i < n; i++) {
        float v = x[i], v2 = v * v;
        float t = tanhf(SQRT_2_OVER_PI * (v + CUBIC * v2 * v));
        float slope = 0.5f * (1.0f + t) + 0.5f * v * (1.0f - t * t) * SQRT_2_OVER_PI * (1.0f + 3.0f * CUBIC * v2);
        grad_x[i] = grad_y[i] * slope;
    }
}

/* The same for bfloat16 arrays (what a linear layer returns under bf16 autocast): each value is
 * widened to float32 (bf16 is float32's top 16 bits), computed as above, and rounded back to the
 * nearest bf16 (ties to even, as PyTorch rounds), so a bf16 GELU costs no more than a float32 one. */
#include <stdint.h>
#include <string.h>

static inline float bf16_to_float(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static inline uint16_t float_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u); /* NaN stays a quiet NaN */
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

void gelu_tanh_forward_bf16(const uint16_t *restrict x, uint16_t *restrict y, long n) {
#pragma omp parallel for simd schedule(static)
    for (long i = 0; i < n; i++) {
        float v = bf16_to_float(x[i]);
        float t = tanhf(SQRT_2_OVER_PI * (v + CUBIC * v * v * v));
        y[i] = float_to_bf16(0.5f * v * (1.0f + t));
    }
}

void gelu_tanh_backward_bf16(const uint16_t *restrict grad_y, const uint16_t *restrict x, uint16_t *restrict grad_x, long n) {
#pragma omp parallel for simd schedule(static)
    for (long i = 0; i < n; i++) {
        float v = bf16_to_float(x[i]), v2 = v * v;
        float t = tanhf(SQRT_2_OVER_PI * (v + CUBIC * v2 * v));
        float slope = 0.5f * (1.0f + t) + 0.5f * v * (1.0f - t * t) * SQRT_2_OVER_PI * (1.0f + 3.0f * CUBIC * v2);
        grad_x[i] = float_to_bf16(bf16_to_float(grad_y[i]) * slope);
    }
}
