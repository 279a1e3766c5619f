// CPU features read with CPUID, counted only when the operating system saves the registers they
// use (XGETBV), and the Linux request for the AMX tile state.
#include "ckernels.h"

#if defined(__x86_64__)
#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>

static uint64_t xcr0(void) {
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}

uint64_t k_cpu_features(void) {
    unsigned a, b, c, d;
    uint64_t f = 0;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    if (c & (1u << 0)) f |= K_CPU_SSE3;
    if (c & (1u << 9)) f |= K_CPU_SSSE3;
    if (c & (1u << 20)) f |= K_CPU_SSE4_2;
    const int osxsave = (c >> 27) & 1;
    const uint64_t x = osxsave ? xcr0() : 0;
    const int avxState = (x & 0x6) == 0x6;        // XMM and YMM
    const int avx512State = (x & 0xe6) == 0xe6;   // + opmask, ZMM upper halves, ZMM16-31
    const int amxState = (x & 0x60000) == 0x60000; // XTILECFG and XTILEDATA
    if (avxState) {
        if (c & (1u << 28)) f |= K_CPU_AVX;
        if (c & (1u << 12)) f |= K_CPU_FMA;
        if (c & (1u << 29)) f |= K_CPU_F16C;
    }
    unsigned max = __get_cpuid_max(0, 0);
    if (max < 7) return f;
    __cpuid_count(7, 0, a, b, c, d);
    if (avxState && (b & (1u << 5))) f |= K_CPU_AVX2;
    if (avx512State) {
        if (b & (1u << 16)) f |= K_CPU_AVX512F;
        if (b & (1u << 17)) f |= K_CPU_AVX512DQ;
        if (b & (1u << 28)) f |= K_CPU_AVX512CD;
        if (b & (1u << 30)) f |= K_CPU_AVX512BW;
        if (b & (1u << 31)) f |= K_CPU_AVX512VL;
        if (c & (1u << 11)) f |= K_CPU_AVX512_VNNI;
    }
    if (amxState) {
        if (d & (1u << 22)) f |= K_CPU_AMX_BF16;
        if (d & (1u << 24)) f |= K_CPU_AMX_TILE;
        if (d & (1u << 25)) f |= K_CPU_AMX_INT8;
    }
    const unsigned subleaves = a;
    if (subleaves >= 1) {
        __cpuid_count(7, 1, a, b, c, d);
        if (avx512State && (a & (1u << 5))) f |= K_CPU_AVX512_BF16;
    }
    return f;
}

int k_amx_request(void) {
    // arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA): without it, the first tile
    // instruction of the process faults.
    const long ARCH_REQ_XCOMP_PERM = 0x1023, XFEATURE_XTILEDATA = 18;
    return syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0;
}
#else
uint64_t k_cpu_features(void) { return 0; }
int k_amx_request(void) { return 0; }
#endif

// The kernel path (see ckernels.h).
#include <stdlib.h>
#include <string.h>

int k_path_requested(void) {
    const char *v = getenv("LLAVA_KERNELS");
    if (!v || !*v) return -1;
    static const char *names[] = {"base", "avx2", "avx512", "vnni", "amx"};
    for (int i = 0; i < 5; i++)
        if (strcmp(v, names[i]) == 0) return i;
    return -2;
}

// Paths up to VNNI, from the CPU's features alone.
static int path_from_features(void) {
    const uint64_t f = k_cpu_features();
    const uint64_t avx2 = K_CPU_AVX2 | K_CPU_FMA | K_CPU_F16C;
    const uint64_t avx512 = avx2 | K_CPU_AVX512F | K_CPU_AVX512BW | K_CPU_AVX512VL | K_CPU_AVX512DQ;
    if ((f & avx512) == avx512) return (f & K_CPU_AVX512_VNNI) ? K_PATH_VNNI : K_PATH_AVX512;
    if ((f & avx2) == avx2) return K_PATH_AVX2;
    return K_PATH_BASE;
}

static int best_path = -1;
static int current_path = -1;

static int path_without_amx = -1;

// The path as far as the element-wise kernels need it (never more than AVX-512 matters to them):
// no AMX check, so the AMX check's own products can run through them. Until k_path() settles the
// path, the path asked for and the CPU's features are read once and kept.
int k_path_vector(void) {
    int p = __atomic_load_n(&current_path, __ATOMIC_ACQUIRE);
    if (p >= 0) return p;
    p = __atomic_load_n(&path_without_amx, __ATOMIC_ACQUIRE);
    if (p >= 0) return p;
    const int requested = k_path_requested(), features = path_from_features();
    p = requested >= 0 && requested < features ? requested : features;
    __atomic_store_n(&path_without_amx, p, __ATOMIC_RELEASE);
    return p;
}

int k_path_best(void) {
    int best = __atomic_load_n(&best_path, __ATOMIC_ACQUIRE);
    if (best >= 0) return best;
    best = path_from_features();
    if (best == K_PATH_VNNI && (k_q8_kernels() & (1 << K_Q8_AMX))) best = K_PATH_AMX;
    __atomic_store_n(&best_path, best, __ATOMIC_RELEASE);
    return best;
}

int k_path(void) {
    int p = __atomic_load_n(&current_path, __ATOMIC_ACQUIRE);
    if (p >= 0) return p;
    const int requested = k_path_requested(), best = k_path_best();
    p = requested >= 0 && requested < best ? requested : best;
    __atomic_store_n(&current_path, p, __ATOMIC_RELEASE);
    return p;
}

int k_set_path(int path) {
    const int best = k_path_best();
    const int p = path < K_PATH_BASE ? K_PATH_BASE : path > best ? best : path;
    __atomic_store_n(&current_path, p, __ATOMIC_RELEASE);
    return p;
}
