// Turns checkpoint tensors into canonical weights: checks names, shapes and dtypes, converts
// to the compute dtype (zero-copy when the file already holds it, aligned), and reports any
// tensor the model did not use.
#pragma once

#include <functional>
#include <set>
#include <string>
#include <vector>

#include "base/status.h"
#include "io/tensor_source.h"
#include "platform/thread_pool.h"
#include "tensor/weight.h"

namespace moepp {

class WeightLoader {
 public:
  // pool: threads for the dtype conversions (none: the calling thread).
  WeightLoader(const TensorSource& source, DType target, std::string dir, ThreadPool* pool = nullptr)
      : source_(source), target_(target), dir_(std::move(dir)), pool_(pool) {}

  // A tensor of shape [rows, cols]; stored quantised (tensor/quantize.h) it loads as q8/q4.
  Result<Weight> matrix(const std::string& name, int64_t rows, int64_t cols);
  // A 1-D tensor [n], returned as [1, n].
  Result<Weight> vector(const std::string& name, int64_t n);
  // Tensors of shapes [rows_i, cols] stacked along rows into one weight (e.g. gate; up).
  Result<Weight> stacked(const std::vector<std::string>& names, const std::vector<int64_t>& rows, int64_t cols);

  bool has(const std::string& name) const { return source_.find(name) != nullptr; }
  // Called by load_ffn_expert on each expert matrix as soon as it is loaded (the model quantises
  // and interleaves it there), so loading holds one expert's originals at a time, not a layer's.
  using MatrixHook = std::function<Status(Weight*)>;
  void on_expert_matrix(MatrixHook hook) { expert_hook_ = std::move(hook); }
  Status expert_matrix_loaded(Weight* w) const { return expert_hook_ ? expert_hook_(w) : Status::Ok(); }
  // Tensors present in checkpoints but unused by inference (training-only, RoPE buffers).
  void ignore_suffix(const std::string& suffix) { ignored_suffixes_.push_back(suffix); }
  // Fails on the first tensor neither used nor ignored.
  Status check_all_used() const;

 private:
  Result<const TensorEntry*> find(const std::string& name, const std::vector<int64_t>& shape);
  // A q8/q4 tensor stored by `moepp quantize` (values + NAME.moepp_scales), checked and copied.
  Result<Weight> quantized_matrix(const std::string& name, const TensorEntry& scales, int64_t rows, int64_t cols);
  void convert_into(const TensorEntry& e, void* dst) const;

  const TensorSource& source_;
  DType target_;
  std::string dir_;
  std::set<std::string> used_;
  std::vector<std::string> ignored_suffixes_;
  MatrixHook expert_hook_;
  ThreadPool* pool_;
};

std::string shape_string(const std::vector<int64_t>& shape);

}  // namespace moepp
