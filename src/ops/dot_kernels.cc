// Scalar reference kernel and the dispatch point. The scalar code follows the contract in
// dot_kernels.h literally (std::fma per lane), so the SIMD sets can be tested for equal bits.
#include "ops/dot_kernels.h"

#include <cmath>
#include <cstdlib>
#include <cstring>

namespace moepp::kernels {

float weight_element(const Weight& w, int64_t n, int64_t c) {
  switch (w.quant) {
    case WeightQuant::kQ8:
      return static_cast<float>(w.q8()[n * w.cols + c]) * w.scales[n * w.groups_per_row() + c / kQuantGroup];
    case WeightQuant::kQ4: {
      const uint8_t byte = w.q4()[n * w.q4_row_bytes() + c / 2];
      const int nibble = c % 2 == 0 ? (byte & 0x0f) : (byte >> 4);
      return static_cast<float>(nibble - 8) * w.scales[n * w.groups_per_row() + c / kQuantGroup];
    }
    case WeightQuant::kNone: break;
  }
  return w.dtype == DType::kF32 ? w.f32()[n * w.cols + c] : bf16_to_f32(w.bf16()[n * w.cols + c]);
}

namespace {

float reference_dot(const float* x, const Weight& w, int64_t n) {
  const int64_t K = w.cols;
  float lane[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  for (int64_t k = 0; k < K; k += 8)
    for (int j = 0; j < 8; ++j) {
      const bool in = k + j < K;
      lane[j] = std::fma(in ? x[k + j] : 0.0f, in ? weight_element(w, n, k + j) : 0.0f, lane[j]);
    }
  return ((lane[0] + lane[1]) + (lane[2] + lane[3])) + ((lane[4] + lane[5]) + (lane[6] + lane[7]));
}

void scalar_rows(const float* x, int64_t M, int64_t ldx, const Weight& w, int64_t n0, int64_t n1,
                 float* y, int64_t ldy) {
  for (int64_t n = n0; n < n1; ++n)
    for (int64_t m = 0; m < M; ++m) y[m * ldy + (n - n0)] = reference_dot(x + m * ldx, w, n);
}

const KernelSet kScalar{"scalar", scalar_rows};

const KernelSet& choose() {
  const KernelSet* best = avx2_kernels();
  if (const char* forced = std::getenv("MOEPP_KERNELS")) {
    if (std::strcmp(forced, "scalar") == 0) return kScalar;
    if (best != nullptr && std::strcmp(forced, best->isa) == 0) return *best;
  }
  return best != nullptr ? *best : kScalar;
}

}  // namespace

const KernelSet& scalar_kernels() { return kScalar; }

const KernelSet& active_kernels() {
  static const KernelSet& chosen = choose();
  return chosen;
}

std::vector<const KernelSet*> available_kernels() {
  std::vector<const KernelSet*> sets{&kScalar};
  if (const KernelSet* k = avx2_kernels()) sets.push_back(k);
  return sets;
}

}  // namespace moepp::kernels
