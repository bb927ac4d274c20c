// The floor of the batched Q4_1 kernel on an AVX2 CPU without VNNI, in cycles per product of
// one 32-value block of one weight row with one activation row (crates/model/src/quant_matmul.rs,
// `tile2_avx2`). ggml's arithmetic, which the kernel keeps so that greedy tokens match
// llama.cpp, needs four vector instructions per such product: vpmaddubsw, vpmaddwd (to 32-bit
// sums of four), vcvtdq2ps, vfmadd231ps. Here they run with no dependencies and no memory
// traffic; the clock is measured with a chain of dependent integer adds (one per cycle).
//
//   gcc -O2 scripts/bench/avx2_dot_floor.c -o /tmp/avx2_dot_floor && /tmp/avx2_dot_floor
#include <stdio.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

#define CLOBBERS "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9"

int main(void) {
    const long n = 200000000;
    long i = n, x = 0;
    double t = now();
    __asm__ volatile("1: add $1, %0\n add $1, %0\n add $1, %0\n add $1, %0\n sub $1, %1\n jnz 1b"
                     : "+r"(x), "+r"(i));
    double ghz = 4.0 * n / (now() - t) / 1e9;
    printf("clock: %.2f GHz (dependent adds)\n", ghz);

#define RUN(name, per_iter, body)                                                          \
    i = n;                                                                                 \
    t = now();                                                                             \
    __asm__ volatile("vpxor %%ymm0,%%ymm0,%%ymm0\n vpxor %%ymm1,%%ymm1,%%ymm1\n1:" body    \
                     "sub $1,%0\n jnz 1b"                                                  \
                     : "+r"(i)::CLOBBERS);                                                 \
    printf("%-44s %.2f cycles\n", name, (now() - t) * ghz * 1e9 / ((double)n * per_iter));

    RUN("vfmadd231ps, per instruction", 8,
        "vfmadd231ps %%ymm1,%%ymm1,%%ymm2\n vfmadd231ps %%ymm1,%%ymm1,%%ymm3\n"
        "vfmadd231ps %%ymm1,%%ymm1,%%ymm4\n vfmadd231ps %%ymm1,%%ymm1,%%ymm5\n"
        "vfmadd231ps %%ymm1,%%ymm1,%%ymm6\n vfmadd231ps %%ymm1,%%ymm1,%%ymm7\n"
        "vfmadd231ps %%ymm1,%%ymm1,%%ymm8\n vfmadd231ps %%ymm1,%%ymm1,%%ymm9\n")
    RUN("vpmaddubsw + vpmaddwd, per instruction", 8,
        "vpmaddwd %%ymm1,%%ymm0,%%ymm2\n vpmaddwd %%ymm1,%%ymm0,%%ymm3\n"
        "vpmaddwd %%ymm1,%%ymm0,%%ymm4\n vpmaddwd %%ymm1,%%ymm0,%%ymm5\n"
        "vpmaddubsw %%ymm1,%%ymm0,%%ymm6\n vpmaddubsw %%ymm1,%%ymm0,%%ymm7\n"
        "vpmaddubsw %%ymm1,%%ymm0,%%ymm8\n vpmaddubsw %%ymm1,%%ymm0,%%ymm9\n")
    RUN("vcvtdq2ps, per instruction", 8,
        "vcvtdq2ps %%ymm1,%%ymm2\n vcvtdq2ps %%ymm1,%%ymm3\n vcvtdq2ps %%ymm1,%%ymm4\n"
        "vcvtdq2ps %%ymm1,%%ymm5\n vcvtdq2ps %%ymm1,%%ymm6\n vcvtdq2ps %%ymm1,%%ymm7\n"
        "vcvtdq2ps %%ymm1,%%ymm8\n vcvtdq2ps %%ymm1,%%ymm9\n")
    RUN("one block product (the four together)", 2,
        "vcvtdq2ps %%ymm1,%%ymm2\n vcvtdq2ps %%ymm1,%%ymm3\n"
        "vfmadd231ps %%ymm1,%%ymm1,%%ymm4\n vfmadd231ps %%ymm1,%%ymm1,%%ymm5\n"
        "vpmaddwd %%ymm1,%%ymm0,%%ymm6\n vpmaddwd %%ymm1,%%ymm0,%%ymm7\n"
        "vpmaddubsw %%ymm1,%%ymm0,%%ymm8\n vpmaddubsw %%ymm1,%%ymm0,%%ymm9\n")
    return 0;
}
