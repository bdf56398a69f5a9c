// Names and counts for the expert table.
#include "moe/moe_spec.h"

namespace moepp {

const char* expert_kind_name(ExpertKind kind) {
  switch (kind) {
    case ExpertKind::kFfn: return "ffn";
    case ExpertKind::kZero: return "zero";
    case ExpertKind::kCopy: return "copy";
    case ExpertKind::kConstant: return "constant";
  }
  return "?";
}

int64_t MoeLayerSpec::count(ExpertKind kind) const {
  int64_t n = 0;
  for (ExpertKind k : kinds) n += (k == kind);
  return n;
}

}  // namespace moepp
