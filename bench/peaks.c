/* The machine's own peaks, for the benchmark floors: fp32 FMA, int8 dot products, bf16 dot products
 * and memory read bandwidth, on every thread OpenMP is given. Built by bench/peaks.py with
 * gcc -O3 -march=native -fopenmp; each kernel uses the widest instructions this CPU has and says
 * which (isa_*). Each returns the work it did (FLOPs, integer ops, bytes) so the caller divides by
 * the time it measured. Independent accumulator chains hide the instruction latency. */
#include <immintrin.h>
#include <omp.h>
#include <stddef.h>
#include <stdint.h>

#define CHAINS 12
/* AVX2's int8 chain holds two products besides its accumulator: 12 of them spill out of the 16 ymm
 * registers to the stack (measured on a Zen 3: 272 GOP/s at 12 chains, 369 at 10, 348 at 8, where
 * onnxruntime's int8 matmuls reach 362 in the ViT: a "peak" below a library's rate is no floor). */
#define INT8_AVX2_CHAINS 10

/* The lanes' sum: what keeps the compiler from dropping a kernel whose result nothing reads. */
static double sum_ps(__m256 v) {
    float out[8];
    _mm256_storeu_ps(out, v);
    double total = 0.0;
    for (int j = 0; j < 8; j++) total += out[j];
    return total;
}

static double sum_epi32(__m256i v) {
    int32_t out[8];
    _mm256_storeu_si256((__m256i *)out, v);
    double total = 0.0;
    for (int j = 0; j < 8; j++) total += out[j];
    return total;
}

const char *isa_fp32(void) {
#if defined(__AVX512F__)
    return "avx512f vfmadd231ps";
#elif defined(__FMA__)
    return "avx2 vfmadd231ps";
#else
    return "none";
#endif
}

const char *isa_int8(void) {
#if defined(__AVX512VNNI__)
    return "avx512-vnni vpdpbusd";
#elif defined(__AVXVNNI__)
    return "avx-vnni vpdpbusd";
#elif defined(__AVX2__)
    return "avx2 vpmaddubsw+vpmaddwd";
#else
    return "none";
#endif
}

const char *isa_bf16(void) {
#if defined(__AVX512BF16__)
    return "avx512-bf16 vdpbf16ps";
#else
    return "none";
#endif
}

/* FLOPs done: 2 per multiply-add lane. */
double fp32_fma(long iterations) {
    double sink = 0.0, lanes = 0.0;
#pragma omp parallel reduction(+ : sink, lanes)
    {
#if defined(__AVX512F__)
        __m512 acc[CHAINS], a = _mm512_set1_ps(1.0000001f), b = _mm512_set1_ps(0.9999999f);
        for (int c = 0; c < CHAINS; c++) acc[c] = _mm512_set1_ps((float)c);
        for (long i = 0; i < iterations; i++)
            for (int c = 0; c < CHAINS; c++) acc[c] = _mm512_fmadd_ps(acc[c], a, b);
        for (int c = 0; c < CHAINS; c++) sink += _mm512_reduce_add_ps(acc[c]);
        lanes += 16.0;
#elif defined(__FMA__)
        __m256 acc[CHAINS], a = _mm256_set1_ps(1.0000001f), b = _mm256_set1_ps(0.9999999f);
        for (int c = 0; c < CHAINS; c++) acc[c] = _mm256_set1_ps((float)c);
        for (long i = 0; i < iterations; i++)
            for (int c = 0; c < CHAINS; c++) acc[c] = _mm256_fmadd_ps(acc[c], a, b);
        for (int c = 0; c < CHAINS; c++) sink += sum_ps(acc[c]);
        lanes += 8.0;
#endif
    }
    volatile double keep = sink;
    (void)keep;
    return 2.0 * lanes * CHAINS * (double)iterations;
}

/* Integer ops done: 2 per u8 x s8 multiply-add. */
double int8_dot(long iterations) {
    double sink = 0.0, macs = 0.0;
#pragma omp parallel reduction(+ : sink, macs)
    {
#if defined(__AVX512VNNI__)
        __m512i acc[CHAINS], a = _mm512_set1_epi8(3), b = _mm512_set1_epi8(-2);
        for (int c = 0; c < CHAINS; c++) acc[c] = _mm512_set1_epi32(c);
        for (long i = 0; i < iterations; i++)
            for (int c = 0; c < CHAINS; c++) acc[c] = _mm512_dpbusd_epi32(acc[c], a, b);
        for (int c = 0; c < CHAINS; c++) sink += (double)_mm512_reduce_add_epi32(acc[c]);
        macs += 64.0 * CHAINS;
#elif defined(__AVXVNNI__) || defined(__AVX2__)
        __m256i acc[INT8_AVX2_CHAINS], a = _mm256_set1_epi8(3), b = _mm256_set1_epi8(-2);
        for (int c = 0; c < INT8_AVX2_CHAINS; c++) acc[c] = _mm256_set1_epi32(c);
#if defined(__AVXVNNI__)
        for (long i = 0; i < iterations; i++)
            for (int c = 0; c < INT8_AVX2_CHAINS; c++) acc[c] = _mm256_dpbusd_avx_epi32(acc[c], a, b);
#else
        /* No VNNI: the multiply-add to 16 bits, then to 32, then the add, as onnxruntime's AVX2 kernels do.
         * The accumulator is also the unsigned operand, or the compiler would hoist the products. */
        const __m256i ones = _mm256_set1_epi16(1);
        (void)a;
        for (long i = 0; i < iterations; i++)
            for (int c = 0; c < INT8_AVX2_CHAINS; c++)
                acc[c] = _mm256_add_epi32(acc[c], _mm256_madd_epi16(_mm256_maddubs_epi16(acc[c], b), ones));
#endif
        for (int c = 0; c < INT8_AVX2_CHAINS; c++) sink += sum_epi32(acc[c]);
        macs += 32.0 * INT8_AVX2_CHAINS;
#endif
    }
    volatile double keep = sink;
    (void)keep;
    return 2.0 * macs * (double)iterations;
}

/* FLOPs done: 2 per bf16 multiply-add; 0 where the CPU has no bf16 dot product. */
double bf16_dot(long iterations) {
#if defined(__AVX512BF16__)
    double sink = 0.0;
    int threads = 0;
#pragma omp parallel reduction(+ : sink, threads)
    {
        __m512 acc[CHAINS];
        __m512bh a = (__m512bh)_mm512_set1_epi16(0x3f80), b = (__m512bh)_mm512_set1_epi16(0x3f00);
        for (int c = 0; c < CHAINS; c++) acc[c] = _mm512_set1_ps((float)c);
        for (long i = 0; i < iterations; i++)
            for (int c = 0; c < CHAINS; c++) acc[c] = _mm512_dpbf16_ps(acc[c], a, b);
        for (int c = 0; c < CHAINS; c++) sink += _mm512_reduce_add_ps(acc[c]);
        threads += 1;
    }
    volatile double keep = sink;
    (void)keep;
    return 2.0 * 32.0 * CHAINS * (double)iterations * threads;
#else
    (void)iterations;
    return 0.0;
#endif
}

/* Bytes read: the whole buffer, split between the threads, in wide loads summed into chains that are
 * reduced once per thread, not once per block. On a Zen 3 it reads 30-31 GB/s where torch's sum of the
 * same size reached 30-33: bench.common.beaten_peaks says so when a library gets ahead by more than noise. */
double read_bytes(const float *buffer, size_t count) {
    double sink = 0.0;
    size_t blocks = count / 64;
#pragma omp parallel reduction(+ : sink)
    {
        __m256 acc[8];
        for (int c = 0; c < 8; c++) acc[c] = _mm256_setzero_ps();
#pragma omp for schedule(static)
        for (size_t block = 0; block < blocks; block++)
            for (int c = 0; c < 8; c++) acc[c] = _mm256_add_ps(acc[c], _mm256_loadu_ps(buffer + block * 64 + c * 8));
        for (int c = 0; c < 8; c++) sink += sum_ps(acc[c]);
    }
    volatile double keep = sink;
    (void)keep;
    return (double)(blocks * 64) * sizeof(float);
}

int threads(void) { return omp_get_max_threads(); }
