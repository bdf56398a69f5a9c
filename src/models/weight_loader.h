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
  // FFN expert matrices (load_ffn_expert): as matrix() and stacked(), except that experts the
  // model quantises as they load (stage_experts_for_quantization) stay in bf16 when the file
  // holds bf16 and the compute dtype is f32. The quantiser reads bf16 exactly as its f32 widening,
  // so the result is the same, without a pass that writes (and first touches) twice the bytes.
  Result<Weight> expert_matrix(const std::string& name, int64_t rows, int64_t cols);
  Result<Weight> expert_stacked(const std::vector<std::string>& names, const std::vector<int64_t>& rows, int64_t cols);
  void stage_experts_for_quantization(bool on) { stage_experts_ = on; }
  // Names, shapes and dtypes checked as always, but the weights returned carry their shape,
  // dtype and format only (data null): nothing read from the tensors, nothing allocated.
  void set_shapes_only(bool on) { shapes_only_ = on; }
  // A 1-D tensor [n], returned as [1, n].
  Result<Weight> vector(const std::string& name, int64_t n);
  // Tensors of shapes [rows_i, cols] stacked along rows into one weight (e.g. gate; up).
  Result<Weight> stacked(const std::vector<std::string>& names, const std::vector<int64_t>& rows, int64_t cols);

  bool has(const std::string& name) const { return source_.find(name) != nullptr; }
  // Whether tensors a and b are one tensor stored twice (a PyTorch .bin's tied lm_head is a view
  // of the embedding): same bytes, dtype and shape. Marks both used.
  bool same_tensor(const std::string& a, const std::string& b);
  // Bytes of the checkpoint tensors taken so far (the load's progress).
  int64_t bytes_used() const { return bytes_used_; }
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
  // matrix() and stacked() into a given dtype.
  Result<Weight> matrix_as(const std::string& name, int64_t rows, int64_t cols, DType target);
  Result<Weight> stacked_as(const std::vector<std::string>& names, const std::vector<int64_t>& rows, int64_t cols,
                            DType target);
  // The dtype an expert tensor stored as `stored` loads in (see expert_matrix).
  DType expert_dtype(DType stored) const {
    return stage_experts_ && stored == DType::kBF16 && target_ == DType::kF32 ? DType::kBF16 : target_;
  }
  void convert_into(const TensorEntry& e, void* dst, DType target) const;

  const TensorSource& source_;
  DType target_;
  std::string dir_;
  std::set<std::string> used_;
  std::vector<std::string> ignored_suffixes_;
  MatrixHook expert_hook_;
  ThreadPool* pool_;
  bool stage_experts_ = false;
  bool shapes_only_ = false;
  int64_t bytes_used_ = 0;
};

std::string shape_string(const std::vector<int64_t>& shape);

}  // namespace moepp
