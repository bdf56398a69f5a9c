// libFuzzer target: the restricted pickle VM alone, fed data.pkl bytes directly (a zip wrapper
// would hide most mutations from it).
#include "io/unpickler.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto r = moepp::unpickle_state_dict(data, size, "fuzz.bin: data.pkl");
  (void)r;
  return 0;
}
