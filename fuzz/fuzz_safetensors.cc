// libFuzzer target: parse_safetensors on arbitrary bytes; accepted entries must lie in the input.
#include <cstdlib>

#include "fuzz_common.h"
#include "io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto r = moepp::parse_safetensors(data, size, "fuzz.safetensors");
  if (r.ok()) {
    for (const moepp::TensorEntry& e : r->tensors) {
      if (e.data < data || e.data + e.nbytes > data + size) std::abort();
      if (static_cast<uint64_t>(e.numel()) * moepp::dtype_size(e.dtype) != e.nbytes) std::abort();
      moepp::touch_entry(e);
    }
  }
  return 0;
}
