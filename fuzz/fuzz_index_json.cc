// libFuzzer target: sharded-index parsing (strict JSON, duplicate keys, shard name checks).
#include <string_view>

#include "io/checkpoint_dir.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto r = moepp::parse_checkpoint_index(std::string_view(reinterpret_cast<const char*>(data), size),
                                         "fuzz.index.json");
  (void)r;
  return 0;
}
