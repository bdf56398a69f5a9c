// PyTorch .bin reader (torch.save zip format, docs §9): zip directory + restricted unpickler;
// contiguous tensors are zero-copy views of the archive, strided ones are copied once.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "base/status.h"
#include "io/tensor_source.h"

namespace moepp {

// Parses a torch.save archive held in memory and adds its tensors to `out`. Contiguous tensors
// point into `data` (the caller keeps it alive); strided ones are copied into `out->own()`.
Status parse_pytorch_bin(const uint8_t* data, size_t size, const std::string& file_name,
                         TensorSource* out);

// Maps `path`, parses it and adds its tensors to `out` (which keeps the mapping alive).
Status add_pytorch_bin_file(const std::string& path, TensorSource* out);

}  // namespace moepp
