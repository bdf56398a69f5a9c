// libFuzzer target: a whole torch.save archive (zip reader + restricted unpickler + views).
#include <cstdlib>

#include "fuzz_common.h"
#include "io/pytorch_bin.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  moepp::TensorSource src;
  moepp::Status s = moepp::parse_pytorch_bin(data, size, "fuzz.bin", &src);
  if (s.ok()) {
    for (const moepp::TensorEntry& e : src.entries()) {
      if (static_cast<uint64_t>(e.numel()) * moepp::dtype_size(e.dtype) != e.nbytes) std::abort();
      moepp::touch_entry(e);
    }
  }
  return 0;
}
