// model_type -> family. The one place that lists the families.
#include "models/family.h"

namespace moepp {

const char* family_name(Family family) {
  switch (family) {
    case Family::kMoePP: return "MoE++";
    case Family::kMixtral: return "mixtral";
    case Family::kLlamaMoe: return "llama_moe";
  }
  return "?";
}

namespace {
const FamilyDef* const kFamilies[] = {&kMoePPFamily, &kMixtralFamily, &kLlamaMoeFamily};
}

const FamilyDef* find_family(const std::string& model_type) {
  for (const FamilyDef* f : kFamilies)
    if (model_type == f->model_type) return f;
  return nullptr;
}

std::string supported_model_types() {
  std::string s;
  for (const FamilyDef* f : kFamilies) s += (s.empty() ? "\"" : ", \"") + std::string(f->model_type) + "\"";
  return s;
}

}  // namespace moepp
