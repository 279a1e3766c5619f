// OpenBLAS, loaded at run time. The engine decides the kernel family (OPENBLAS_CORETYPE) from the
// CPU's features before the library is loaded, so the executable does not link OpenBLAS: the
// library reads the variable once, while it loads. Only the few functions the engine calls are
// looked up; call them only after `blas_open` returned 0.
#ifndef OPENBLAS_LOADER_H
#define OPENBLAS_LOADER_H
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

// Loads `library` (e.g. "libopenblas.so.0") with OPENBLAS_CORETYPE=`coretype` (NULL: leave the
// variable as it is) and looks up the functions below. The variable is restored to its previous
// value afterwards, so child processes see the environment the process was started with.
// Returns 0 on success; otherwise writes a one-line reason into `error`.
int blas_open(const char *library, const char *coretype, char *error, size_t error_size);

// Row-major products; `trans_a`/`trans_b` non-zero for a transposed operand (as cblas).
void blas_sgemm(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a, int lda,
                const float *b, int ldb, float beta, float *c, int ldc);
// y = alpha · A · x + beta · y for a row-major A [m, n].
void blas_sgemv(int m, int n, float alpha, const float *a, int lda, const float *x, float beta, float *y);
void blas_set_num_threads(int n);
// The kernel family OpenBLAS runs (e.g. "Cooperlake", "Haswell").
const char *blas_corename(void);

#ifdef __cplusplus
}
#endif
#endif
