// Text files -> token streams -> batches.
#include "train/text_data.h"

#include <fstream>
#include <sstream>

namespace moepp {
namespace {

// splitmix64: a stateless hash so the offsets of (seed, step, micro, row) need no RNG state.
uint64_t mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

Result<std::vector<int32_t>> tokenize_files(const Tokenizer& tok, const std::vector<std::string>& files) {
  std::vector<int32_t> out;
  for (const std::string& f : files) {
    std::ifstream in(f, std::ios::binary);
    if (!in) return Status::Error(f + ": cannot open training text");
    std::stringstream ss;
    ss << in.rdbuf();
    std::vector<int32_t> ids = tok.encode(ss.str(), EncodeOptions{});
    out.insert(out.end(), ids.begin(), ids.end());
    // Documents are separated by EOS when the tokenizer did not add one itself.
    if (tok.eos_id() >= 0 && (ids.empty() || ids.back() != tok.eos_id())) out.push_back(tok.eos_id());
  }
  return out;
}

TrainBatch window_batch(const std::vector<int32_t>& tokens, int64_t n_seqs, int64_t seq_len,
                        const std::vector<int64_t>& starts) {
  TrainBatch b;
  b.n_seqs = n_seqs;
  b.seq_len = seq_len;
  for (int64_t start : starts)
    for (int64_t i = 0; i < seq_len; ++i) {
      b.tokens.push_back(tokens[start + i]);
      b.targets.push_back(tokens[start + i + 1]);
    }
  return b;
}

}  // namespace

Result<TokenData> load_text_data(const Tokenizer& tokenizer, const std::vector<std::string>& train_files,
                                 const std::vector<std::string>& val_files, double val_fraction) {
  if (train_files.empty()) return Status::Error("train: no training text files given");
  if (!(val_fraction >= 0 && val_fraction < 1))
    return Status::Error(str_format("train: validation fraction must be in [0, 1), got %g", val_fraction));
  TokenData d;
  MOEPP_ASSIGN_OR_RETURN(d.train, tokenize_files(tokenizer, train_files));
  if (!val_files.empty()) {
    MOEPP_ASSIGN_OR_RETURN(d.val, tokenize_files(tokenizer, val_files));
  } else if (val_fraction > 0) {
    const size_t n_val = static_cast<size_t>(static_cast<double>(d.train.size()) * val_fraction);
    d.val.assign(d.train.end() - static_cast<std::ptrdiff_t>(n_val), d.train.end());
    d.train.resize(d.train.size() - n_val);
  }
  return d;
}

Result<TrainBatch> sample_batch(const std::vector<int32_t>& tokens, int64_t n_seqs, int64_t seq_len, uint64_t seed,
                                int64_t step, int64_t micro) {
  const int64_t n = static_cast<int64_t>(tokens.size());
  if (n < seq_len + 1)
    return Status::Error(str_format("train: %lld training tokens, need at least seq_len + 1 = %lld", (long long)n,
                                    (long long)(seq_len + 1)));
  std::vector<int64_t> starts;
  const uint64_t range = static_cast<uint64_t>(n - seq_len);  // starts in [0, n - seq_len - 1]
  for (int64_t r = 0; r < n_seqs; ++r) {
    const uint64_t h = mix(mix(mix(mix(seed) ^ static_cast<uint64_t>(step)) ^ static_cast<uint64_t>(micro)) ^
                           static_cast<uint64_t>(r));
    starts.push_back(static_cast<int64_t>(h % range));
  }
  return window_batch(tokens, n_seqs, seq_len, starts);
}

Result<TrainBatch> validation_batch(const std::vector<int32_t>& tokens, int64_t n_seqs, int64_t seq_len,
                                    int64_t index) {
  const int64_t n = static_cast<int64_t>(tokens.size());
  if (n < seq_len + 1)
    return Status::Error(str_format("train: %lld validation tokens, need at least seq_len + 1 = %lld", (long long)n,
                                    (long long)(seq_len + 1)));
  const int64_t windows = (n - 1) / seq_len;
  std::vector<int64_t> starts;
  for (int64_t r = 0; r < n_seqs; ++r) starts.push_back(((index * n_seqs + r) % windows) * seq_len);
  return window_batch(tokens, n_seqs, seq_len, starts);
}

}  // namespace moepp
