// The products run on OpenBLAS's sgemm (Debian libopenblas): its register-tiled kernels reach
// several times the speed of portable loops. Our pool splits the output into fixed blocks and
// each block is one single-threaded sgemm call; the split depends only on the shapes, never on
// the thread count, so the bits stay the same for any number of threads.
#include "train/linear.h"

#include <cblas.h>

#include <algorithm>
#include <atomic>
#include <mutex>

namespace moepp {
namespace {

// Rows of x / dy per block for the products whose output rows follow the tokens.
constexpr int64_t kRowBlock = 64;
// Rows of dw per block (output rows follow the weight rows).
constexpr int64_t kWeightBlock = 32;

// OpenBLAS must not start threads of its own inside our pool's threads.
void single_threaded_blas() {
  static std::once_flag once;
  std::call_once(once, [] { openblas_set_num_threads(1); });
}

int64_t blocks(int64_t n, int64_t block) { return (n + block - 1) / block; }

std::atomic<uint64_t> g_flops{0};
void count(int64_t m, int64_t n, int64_t k) {
  g_flops.fetch_add(2 * static_cast<uint64_t>(m) * static_cast<uint64_t>(n) * static_cast<uint64_t>(k),
                    std::memory_order_relaxed);
}

}  // namespace

void linear_forward(ThreadPool& pool, const float* x, int64_t M, int64_t K, const float* w, int64_t N, float* y) {
  single_threaded_blas();
  count(M, N, K);
  pool.parallel_for(blocks(M, kRowBlock), [&](int64_t b) {
    const int64_t m0 = b * kRowBlock, rows = std::min(M, m0 + kRowBlock) - m0;
    // y[m0:m0+rows, :] = x[m0:m0+rows, :] * W^T
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, N, K, 1.0f, x + m0 * K, K, w, K, 0.0f, y + m0 * N, N);
  });
}

void linear_backward_input(ThreadPool& pool, const float* dy, int64_t M, int64_t N, const float* w, int64_t K,
                           float* dx) {
  single_threaded_blas();
  count(M, N, K);
  pool.parallel_for(blocks(M, kRowBlock), [&](int64_t b) {
    const int64_t m0 = b * kRowBlock, rows = std::min(M, m0 + kRowBlock) - m0;
    // dx[m0:m0+rows, :] += dy[m0:m0+rows, :] * W
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, K, N, 1.0f, dy + m0 * N, N, w, K, 1.0f, dx + m0 * K,
                K);
  });
}

void linear_backward_weight(ThreadPool& pool, const float* dy, int64_t M, int64_t N, const float* x, int64_t K,
                            float* dw) {
  single_threaded_blas();
  count(M, N, K);
  pool.parallel_for(blocks(N, kWeightBlock), [&](int64_t b) {
    const int64_t n0 = b * kWeightBlock, rows = std::min(N, n0 + kWeightBlock) - n0;
    // dw[n0:n0+rows, :] += dy[:, n0:n0+rows]^T * x
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, rows, K, M, 1.0f, dy + n0, N, x, K, 1.0f, dw + n0 * K, K);
  });
}

void gemm_on_this_thread(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* a,
                         int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  single_threaded_blas();
  count(M, N, K);
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, M, N, K, alpha,
              a, lda, b, ldb, beta, c, ldc);
}

uint64_t matmul_flops_issued() { return g_flops.load(std::memory_order_relaxed); }

}  // namespace moepp
