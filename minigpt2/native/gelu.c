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
