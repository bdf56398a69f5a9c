// tokenizer.json "decoder" graph: Sequence, Replace, ByteFallback, Fuse, Strip, ByteLevel,
// Metaspace, BPEDecoder. Works on the list of token strings like HF's decode_chain.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "tokenizer/hf_json.h"

namespace moepp {

class HfDecoder {
 public:
  virtual ~HfDecoder() = default;
  virtual void decode_chain(std::vector<std::string>& tokens) const = 0;
};

// `obj.json()` is the decoder object; null gives a null pointer (tokens joined by " ").
Result<std::unique_ptr<HfDecoder>> parse_hf_decoder(const HfJsonObject& obj);

}  // namespace moepp
