/* ops.c - threading policy shared by the kernels (see ops.h). */
#include <cblas.h>
#include <omp.h>
#include <pthread.h>

#include "ops.h"

int mk_num_threads(void) {
    int n = omp_get_max_threads(); /* honours OMP_NUM_THREADS */
    return n > 0 ? n : 1;
}

static pthread_once_t blas_once = PTHREAD_ONCE_INIT;

static void blas_serial(void) {
    openblas_set_num_threads(1);
}

void mk_ops_init(void) {
    pthread_once(&blas_once, blas_serial);
}
