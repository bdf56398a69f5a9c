// Saved-logits files (docs/evaluation.md "Saved logits") and the KL divergence of a run against
// them: how far a quantised or otherwise changed model moves each next-token distribution.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "base/status.h"
#include "platform/durable_file.h"

namespace moepp {

// File layout, little-endian:
//   header (32 bytes): magic "MOEPPLG1", u32 version = 1, u32 top_k (0 = full distribution),
//                      u64 n_rows, u64 vocab_size
//   n_rows records:    i32 target token id, then
//                      top_k == 0: f32 log_softmax [vocab_size]
//                      top_k > 0:  top_k x (i32 id, f32 log_softmax), best first, then
//                                  f32 log(1 - sum of the top_k probabilities) (-inf if none left)
constexpr char kLogitsMagic[8] = {'M', 'O', 'E', 'P', 'P', 'L', 'G', '1'};

struct LogitsRow {
  int32_t target = 0;
  std::vector<int32_t> ids;       // top_k > 0: [top_k] ids, best first
  std::vector<float> logprobs;    // [vocab] or [top_k]
  float rest_logprob = 0.0f;      // top_k > 0 only
};

class LogitsWriter {
 public:
  Status open(const std::string& path, int64_t vocab_size, int top_k);
  Status add(int32_t target, const float* logits /*[vocab]*/);
  // Writes the row count into the header and puts the file in place: rows go to PATH.partial
  // until then (platform/durable_file.h), so an error leaves the old file whole.
  Status close();

 private:
  std::string path_;
  ReplacingFile out_;
  FILE* f_ = nullptr;  // out_'s, while open
  int64_t vocab_ = 0, rows_ = 0;
  int top_k_ = 0;
};

class LogitsReader {
 public:
  ~LogitsReader();
  Status open(const std::string& path);
  Status next(LogitsRow* row);  // error past the end or on a truncated file
  int64_t n_rows() const { return n_rows_; }
  int64_t vocab_size() const { return vocab_; }
  int top_k() const { return top_k_; }

 private:
  std::string path_;
  FILE* f_ = nullptr;
  int64_t vocab_ = 0, n_rows_ = 0, read_ = 0;
  int top_k_ = 0;
};

// log_softmax of a row of logits, in double.
void log_softmax(const float* logits, int64_t vocab, std::vector<double>* out);

// KL(base || current) for one row, in nats. With a top-k base the distribution is coarsened to
// the k ids plus one "rest" bucket, which gives a lower bound of the full KL.
double kl_divergence(const LogitsRow& base, const std::vector<double>& current_logprobs);

struct KlSummary {
  int64_t n = 0;
  double mean = 0.0, stderr_mean = 0.0, max = 0.0, median = 0.0, p99 = 0.0;
  double same_top1 = 0.0;  // share of rows whose argmax agrees
};
KlSummary summarize_kl(const std::vector<double>& kl, int64_t same_top1_count);

}  // namespace moepp
