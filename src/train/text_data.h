// Training data: plain-text files tokenised once into one token stream (documents joined with
// BOS/EOS as the tokenizer adds them), split into training and validation tokens, and cut into
// batches. Training batches are windows at pseudo-random offsets that depend only on (seed,
// step, micro-batch), so a resumed run sees exactly the batches an uninterrupted run would.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/status.h"
#include "tokenizer/tokenizer.h"
#include "train/decoder_grad.h"

namespace moepp {

struct TokenData {
  std::vector<int32_t> train;  // token stream for training windows
  std::vector<int32_t> val;    // held-out stream (may be empty)
};

// Tokenises each file (one document per file, special tokens as the tokenizer's config adds
// them). val_files empty: the last val_fraction of the stream is held out.
Result<TokenData> load_text_data(const Tokenizer& tokenizer, const std::vector<std::string>& train_files,
                                 const std::vector<std::string>& val_files, double val_fraction);

// A batch of n_seqs windows of seq_len + 1 tokens from `tokens` (inputs and next-token
// targets); offsets from (seed, step, micro). Fails when the stream is shorter than a window.
Result<TrainBatch> sample_batch(const std::vector<int32_t>& tokens, int64_t n_seqs, int64_t seq_len,
                                uint64_t seed, int64_t step, int64_t micro);

// Validation batch `index`: consecutive non-overlapping windows (wrapping around the stream).
Result<TrainBatch> validation_batch(const std::vector<int32_t>& tokens, int64_t n_seqs, int64_t seq_len,
                                    int64_t index);

}  // namespace moepp
