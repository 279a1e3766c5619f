// Run-time loading of OpenBLAS (see openblas_loader.h).
#include "openblas_loader.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// cblas enumeration values (cblas.h).
enum { ROW_MAJOR = 101, NO_TRANS = 111, TRANS = 112 };

typedef void (*sgemm_fn)(int, int, int, int, int, int, float, const float *, int, const float *, int, float, float *,
                         int);
typedef void (*sgemv_fn)(int, int, int, int, float, const float *, int, const float *, int, float, float *, int);
typedef void (*set_threads_fn)(int);
typedef char *(*corename_fn)(void);

static sgemm_fn p_sgemm;
static sgemv_fn p_sgemv;
static set_threads_fn p_set_threads;
static corename_fn p_corename;

int blas_open(const char *library, const char *coretype, char *error, size_t error_size) {
    char *previous = NULL;
    const char *old = getenv("OPENBLAS_CORETYPE");
    if (old) previous = strdup(old);
    if (coretype) setenv("OPENBLAS_CORETYPE", coretype, 1);
    void *handle = dlopen(library, RTLD_NOW | RTLD_LOCAL);
    if (previous) setenv("OPENBLAS_CORETYPE", previous, 1);
    else unsetenv("OPENBLAS_CORETYPE");
    free(previous);
    if (!handle) {
        const char *reason = dlerror();
        snprintf(error, error_size, "%s", reason ? reason : "unknown dlopen error");
        return 1;
    }
    p_sgemm = (sgemm_fn)dlsym(handle, "cblas_sgemm");
    p_sgemv = (sgemv_fn)dlsym(handle, "cblas_sgemv");
    p_set_threads = (set_threads_fn)dlsym(handle, "openblas_set_num_threads");
    p_corename = (corename_fn)dlsym(handle, "openblas_get_corename");
    if (!p_sgemm || !p_sgemv || !p_set_threads || !p_corename) {
        snprintf(error, error_size, "%s lacks cblas_sgemm, cblas_sgemv, openblas_set_num_threads or "
                 "openblas_get_corename (is it OpenBLAS?)", library);
        return 1;
    }
    return 0;
}

void blas_sgemm(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a, int lda,
                const float *b, int ldb, float beta, float *c, int ldc) {
    p_sgemm(ROW_MAJOR, trans_a ? TRANS : NO_TRANS, trans_b ? TRANS : NO_TRANS, m, n, k, alpha, a, lda, b, ldb, beta, c,
            ldc);
}

void blas_sgemv(int m, int n, float alpha, const float *a, int lda, const float *x, float beta, float *y) {
    p_sgemv(ROW_MAJOR, NO_TRANS, m, n, alpha, a, lda, x, 1, beta, y, 1);
}

void blas_set_num_threads(int n) { p_set_threads(n); }

const char *blas_corename(void) {
    const char *name = p_corename();
    return name ? name : "unknown";
}
