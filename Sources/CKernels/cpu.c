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
