/* The machine's own peaks, for the benchmark floors: fp32 FMA, int8 dot products, bf16 dot products
 * and memory read bandwidth, on every thread OpenMP is given. Built by bench/peaks.py with
 * gcc -O3 -march=native -fopenmp; each kernel uses the widest instructions this CPU has and says
 * which (isa_*). Each returns the work it did (FLOPs, integer ops, bytes) so the caller divides by
 * the time it measured. Independent accumulator chains hide the instruction latency.
 * Where the CPU has AMX (Sapphire Rapids and later: the c7i), its tile kernels are further int8 and
 * bf16 candidates; bench/peaks.py times both kinds and keeps the faster. */
#include <immintrin.h>
#include <omp.h>
#include <stddef.h>
#include <stdint.h>
#if defined(__AMX_TILE__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

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

/* The same read, each thread's share as READ_STREAMS streams taken in turn: more cache lines in flight than
 * one stream's hardware prefetcher keeps. On a Xeon with AMX (2 vCPUs) one stream read 19-20 GB/s where
 * torch's gemv read 25; 8 streams read 25-27 (4: 25, 16: 23). The faster of the two is the peak. */
#define READ_STREAMS 8
double read_bytes_streams(const float *buffer, size_t count) {
    double sink = 0.0;
    size_t read = 0;
#pragma omp parallel reduction(+ : sink) reduction(+ : read)
    {
        size_t threads = (size_t)omp_get_num_threads(), stride = 64 * READ_STREAMS;
        size_t share = count / threads / stride * stride, part = share / READ_STREAMS;
        const float *base = buffer + (size_t)omp_get_thread_num() * share;
        __m256 acc[8];
        for (int c = 0; c < 8; c++) acc[c] = _mm256_setzero_ps();
        for (size_t at = 0; at < part; at += 64)
            for (int s = 0; s < READ_STREAMS; s++)
                for (int c = 0; c < 8; c++) acc[c] = _mm256_add_ps(acc[c], _mm256_loadu_ps(base + s * part + at + c * 8));
        for (int c = 0; c < 8; c++) sink += sum_ps(acc[c]);
        read += share;
    }
    volatile double keep = sink;
    (void)keep;
    return (double)read * sizeof(float);
}

#if defined(__AMX_TILE__)
/* Linux hands AMX's tile state to a process only when asked (arch_prctl ARCH_REQ_XCOMP_PERM for
 * XFEATURE_XTILEDATA, Linux 5.16+); refused (an older kernel, a hypervisor that hides it), no AMX peak. */
#define ARCH_REQ_XCOMP_PERM 0x1023
#define XFEATURE_XTILEDATA 18

static int amx_permitted(void) { return syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0; }

/* Palette 1: every tile 16 rows of 64 bytes, the largest, so one instruction does the most work. */
struct tile_config {
    uint8_t palette;
    uint8_t start_row;
    uint8_t reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
};

static void amx_configure(void) {
    struct tile_config config = {0};
    config.palette = 1;
    for (int t = 0; t < 8; t++) {
        config.colsb[t] = 64;
        config.rows[t] = 16;
    }
    _tile_loadconfig(&config);
}

/* A 2x2 block of accumulator tiles (tmm0-3) from two A tiles (tmm4-5) and two B tiles (tmm6-7), as a
 * GEMM's inner loop holds them: four independent chains, each instruction 16 x 16 outputs. */
#define AMX_KERNEL(dot)                                                  \
    do {                                                                 \
        for (long i = 0; i < iterations; i++) {                          \
            dot(0, 4, 6);                                                \
            dot(1, 4, 7);                                                \
            dot(2, 5, 6);                                                \
            dot(3, 5, 7);                                                \
        }                                                                \
    } while (0)

static double amx_run(long iterations, int bf16) {
    if (!amx_permitted()) return 0.0;
    double sink = 0.0;
    int threads = 0;
#pragma omp parallel reduction(+ : sink, threads)
    {
        uint8_t operands[16 * 64], results[4][16 * 64];
        for (int j = 0; j < 16 * 64; j++) operands[j] = bf16 ? (j % 2 ? 0x3f : 0x80) : (uint8_t)(j % 7);
        amx_configure();
        /* the tile intrinsics name their register by a constant: no loops over tiles */
        _tile_zero(0);
        _tile_zero(1);
        _tile_zero(2);
        _tile_zero(3);
        _tile_loadd(4, operands, 64);
        _tile_loadd(5, operands, 64);
        _tile_loadd(6, operands, 64);
        _tile_loadd(7, operands, 64);
        if (bf16) {
#if defined(__AMX_BF16__)
            AMX_KERNEL(_tile_dpbf16ps);
#endif
        } else {
#if defined(__AMX_INT8__)
            AMX_KERNEL(_tile_dpbssd);
#endif
        }
        _tile_stored(0, results[0], 64);
        _tile_stored(1, results[1], 64);
        _tile_stored(2, results[2], 64);
        _tile_stored(3, results[3], 64);
        _tile_release();
        for (int t = 0; t < 4; t++) sink += results[t][0] + results[t][16 * 64 - 1];
        threads += 1;
    }
    volatile double keep = sink;
    (void)keep;
    /* multiply-adds per instruction: 16 x 16 outputs, each a sum over 64 int8 or 32 bf16 pairs */
    return 2.0 * 16.0 * 16.0 * (bf16 ? 32.0 : 64.0) * 4.0 * (double)iterations * threads;
}
#endif

const char *isa_amx_int8(void) {
#if defined(__AMX_INT8__)
    return "amx-int8 tdpbssd";
#else
    return "none";
#endif
}

const char *isa_amx_bf16(void) {
#if defined(__AMX_BF16__)
    return "amx-bf16 tdpbf16ps";
#else
    return "none";
#endif
}

/* Integer ops done: 2 per s8 x s8 multiply-add; 0 without AMX int8 (not built for it, or refused). */
double amx_int8_dot(long iterations) {
#if defined(__AMX_INT8__)
    return amx_run(iterations, 0);
#else
    (void)iterations;
    return 0.0;
#endif
}

/* FLOPs done: 2 per bf16 multiply-add; 0 without AMX bf16. */
double amx_bf16_dot(long iterations) {
#if defined(__AMX_BF16__)
    return amx_run(iterations, 1);
#else
    (void)iterations;
    return 0.0;
#endif
}

int threads(void) { return omp_get_max_threads(); }
