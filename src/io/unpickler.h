// Restricted unpickler for torch.save's data.pkl: interprets only the opcodes a state dict uses
// and only the state-dict globals, so loading a .bin never executes anything.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "base/status.h"
#include "tensor/dtype.h"

namespace moepp {

// One tensor of the state dict, as _rebuild_tensor_v2 describes it (not yet checked against
// the storage bytes: that is the caller's job, it knows the zip entry sizes).
struct PickledTensor {
  std::string name;
  DType dtype = DType::kF32;  // from the storage type (torch.FloatStorage -> kF32, ...)
  std::string storage_key;    // zip entry <root>/data/<storage_key>
  uint64_t storage_numel = 0;  // elements, from the persistent id
  int64_t storage_offset = 0;  // elements
  std::vector<int64_t> size;
  std::vector<int64_t> stride;
};

// Limits on hostile input; a real state-dict pickle is far below all of them.
inline constexpr size_t kPickleMaxObjects = size_t{1} << 23;
inline constexpr size_t kPickleMaxStack = size_t{1} << 20;
inline constexpr size_t kPickleMaxDims = 64;

// Runs data.pkl and returns the tensors of the state dict in pickle order. The top object must
// be a dict (plain or OrderedDict) of str -> tensor; a dict whose only entry is "state_dict" or
// "model" holding such a dict is unwrapped once. `where` (e.g. "x.bin: data.pkl") prefixes errors.
Result<std::vector<PickledTensor>> unpickle_state_dict(const uint8_t* data, size_t size,
                                                       const std::string& where);

}  // namespace moepp
