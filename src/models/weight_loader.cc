// Name/shape/dtype checks and dtype conversion of checkpoint tensors.
#include "models/weight_loader.h"

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "tensor/quantize.h"

namespace moepp {

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

namespace {

// A weight's shape and dtype with no values (data null): a shapes-only load's weights, and the
// start of a view into the file.
Weight shape_only_weight(DType dtype, int64_t rows, int64_t cols) {
  Weight w;
  w.dtype = dtype;
  w.rows = rows;
  w.cols = cols;
  return w;
}

}  // namespace

Result<const TensorEntry*> WeightLoader::find(const std::string& name, const std::vector<int64_t>& shape) {
  const TensorEntry* e = source_.find(name);
  if (e == nullptr) return Status::Error(dir_ + ": missing tensor '" + name + "'");
  if (e->dtype == DType::kI8 || e->dtype == DType::kU8)
    return Status::Error(e->file + ": tensor '" + name + "': stored as " + dtype_name(e->dtype) +
                         " (quantised), expected its scales in '" + name + kQuantScalesSuffix + "', found none");
  if (e->shape != shape)
    return Status::Error(e->file + ": tensor '" + name + "': expected shape " + shape_string(shape) +
                         ", got " + shape_string(e->shape));
  if (e->dtype != DType::kF32 && e->dtype != DType::kBF16 && e->dtype != DType::kF16)
    return Status::Error(e->file + ": tensor '" + name + "': expected dtype F32, BF16 or F16, got " +
                         dtype_name(e->dtype));
  used_.insert(name);
  bytes_used_ += static_cast<int64_t>(e->nbytes);
  return e;
}

void WeightLoader::convert_into(const TensorEntry& e, void* dst, DType target) const {
  // Ranges of 256K values (0.5-1 MiB), each read from the mapped file and written by one thread.
  parallel_ranges(pool_, e.numel(), int64_t{1} << 18, [&](int64_t i0, int64_t i1) {
    if (e.dtype == target) {
      const size_t size = dtype_size(target);
      std::memcpy(static_cast<uint8_t*>(dst) + i0 * size, static_cast<const uint8_t*>(e.data) + i0 * size,
                  static_cast<size_t>(i1 - i0) * size);
    } else if (target == DType::kF32) {
      float* out = static_cast<float*>(dst);
      for (int64_t i = i0; i < i1; ++i) out[i] = load_as_f32(e.data, e.dtype, static_cast<size_t>(i));
    } else {  // bf16 target from f32 or f16: round to nearest even, as torch's .to(bfloat16)
      uint16_t* out = static_cast<uint16_t*>(dst);
      for (int64_t i = i0; i < i1; ++i) out[i] = f32_to_bf16(load_as_f32(e.data, e.dtype, static_cast<size_t>(i)));
    }
  });
}

Result<Weight> WeightLoader::quantized_matrix(const std::string& name, const TensorEntry& scales, int64_t rows,
                                              int64_t cols) {
  const TensorEntry* e = source_.find(name);
  if (e == nullptr) return Status::Error(dir_ + ": missing tensor '" + name + "' (its scales are there)");
  Weight w;
  w.rows = rows;
  w.cols = cols;
  std::vector<int64_t> shape;
  if (e->dtype == DType::kI8) {
    w.quant = WeightQuant::kQ8;
    shape = {rows, cols};
  } else if (e->dtype == DType::kU8) {
    w.quant = WeightQuant::kQ4;
    shape = {rows, w.q4_row_bytes()};
  } else {
    return Status::Error(e->file + ": quantised tensor '" + name + "': expected dtype I8 (q8) or U8 (q4), got " +
                         dtype_name(e->dtype));
  }
  if (e->shape != shape)
    return Status::Error(e->file + ": quantised tensor '" + name + "': expected shape " + shape_string(shape) +
                         ", got " + shape_string(e->shape));
  const std::vector<int64_t> scale_shape{rows, w.groups_per_row()};
  if (scales.dtype != DType::kF32 || scales.shape != scale_shape)
    return Status::Error(scales.file + ": tensor '" + scales.name + "': expected F32 " + shape_string(scale_shape) +
                         ", got " + dtype_name(scales.dtype) + " " + shape_string(scales.shape));
  used_.insert(name);
  used_.insert(scales.name);
  bytes_used_ += static_cast<int64_t>(e->nbytes + scales.nbytes);
  if (shapes_only_) return w;
  // Copied into aligned memory: safetensors packs tensors back to back, so the scales may sit
  // at any byte offset in the file.
  const size_t value_bytes = e->nbytes;
  w.owner = allocate_aligned(value_bytes + 64 + scales.nbytes);
  uint8_t* bytes = static_cast<uint8_t*>(w.owner.get());
  std::memcpy(bytes, e->data, value_bytes);
  const size_t scale_offset = (value_bytes + 63) / 64 * 64;
  std::memcpy(bytes + scale_offset, scales.data, scales.nbytes);
  w.data = bytes;
  w.scales = reinterpret_cast<const float*>(bytes + scale_offset);
  for (int64_t i = 0; i < rows * w.groups_per_row(); ++i)
    if (!std::isfinite(w.scales[i]))
      return Status::Error(scales.file + ": tensor '" + scales.name + "': scale " + std::to_string(i) + " is not finite");
  return w;
}

Result<Weight> WeightLoader::matrix(const std::string& name, int64_t rows, int64_t cols) {
  return matrix_as(name, rows, cols, target_);
}

Result<Weight> WeightLoader::expert_matrix(const std::string& name, int64_t rows, int64_t cols) {
  const TensorEntry* e = source_.find(name);
  return matrix_as(name, rows, cols, e != nullptr ? expert_dtype(e->dtype) : target_);
}

Result<Weight> WeightLoader::matrix_as(const std::string& name, int64_t rows, int64_t cols, DType target) {
  if (const TensorEntry* scales = source_.find(name + kQuantScalesSuffix))
    return quantized_matrix(name, *scales, rows, cols);
  MOEPP_ASSIGN_OR_RETURN(const TensorEntry* e, find(name, {rows, cols}));
  if (shapes_only_) return shape_only_weight(target, rows, cols);
  const bool aligned = reinterpret_cast<uintptr_t>(e->data) % dtype_size(target) == 0;
  if (e->dtype == target && aligned) {  // zero-copy view into the mapped file
    Weight w = shape_only_weight(target, rows, cols);
    w.data = e->data;
    return w;
  }
  Weight w = make_owned_weight(target, rows, cols);
  convert_into(*e, const_cast<void*>(w.data), target);
  return w;
}

Result<Weight> WeightLoader::vector(const std::string& name, int64_t n) {
  MOEPP_ASSIGN_OR_RETURN(const TensorEntry* e, find(name, {n}));
  if (shapes_only_) return shape_only_weight(target_, 1, n);
  Weight w = make_owned_weight(target_, 1, n);
  convert_into(*e, const_cast<void*>(w.data), target_);
  return w;
}

Result<Weight> WeightLoader::stacked(const std::vector<std::string>& names,
                                     const std::vector<int64_t>& rows, int64_t cols) {
  return stacked_as(names, rows, cols, target_);
}

Result<Weight> WeightLoader::expert_stacked(const std::vector<std::string>& names, const std::vector<int64_t>& rows,
                                            int64_t cols) {
  // bf16 only if every part is (one dtype for the stacked copy).
  DType target = names.empty() ? target_ : DType::kBF16;
  for (const std::string& name : names) {
    const TensorEntry* e = source_.find(name);
    if (e == nullptr || expert_dtype(e->dtype) != DType::kBF16) target = target_;
  }
  return stacked_as(names, rows, cols, target);
}

Result<Weight> WeightLoader::stacked_as(const std::vector<std::string>& names, const std::vector<int64_t>& rows,
                                        int64_t cols, DType target) {
  int64_t total = 0;
  for (int64_t r : rows) total += r;
  Weight w = shapes_only_ ? shape_only_weight(target, total, cols) : make_owned_weight(target, total, cols);
  uint8_t* dst = static_cast<uint8_t*>(const_cast<void*>(w.data));
  for (size_t i = 0; i < names.size(); ++i) {
    if (has(names[i] + kQuantScalesSuffix))
      return Status::Error(dir_ + ": tensor '" + names[i] +
                           "' is quantised, but this family stacks it with others: quantised files are written in "
                           "the MoE++ layout by `moepp quantize`");
    MOEPP_ASSIGN_OR_RETURN(const TensorEntry* e, find(names[i], {rows[i], cols}));
    if (shapes_only_) continue;
    convert_into(*e, dst, target);
    dst += static_cast<size_t>(rows[i] * cols) * dtype_size(target);
  }
  return w;
}

bool WeightLoader::same_tensor(const std::string& a, const std::string& b) {
  const TensorEntry* ea = source_.find(a);
  const TensorEntry* eb = source_.find(b);
  if (ea == nullptr || eb == nullptr || ea->data != eb->data || ea->dtype != eb->dtype || ea->shape != eb->shape)
    return false;
  used_.insert(a);
  used_.insert(b);
  return true;
}

Status WeightLoader::check_all_used() const {
  for (const TensorEntry& e : source_.entries()) {
    if (used_.count(e.name)) continue;
    bool ignored = false;
    for (const std::string& s : ignored_suffixes_)
      ignored |= e.name.size() >= s.size() && e.name.compare(e.name.size() - s.size(), s.size(), s) == 0;
    if (!ignored)
      return Status::Error(e.file + ": unexpected tensor '" + e.name + "' (shape " + shape_string(e.shape) +
                           "): not part of this model's layout; is config.json right?");
  }
  return Status::Ok();
}

}  // namespace moepp
