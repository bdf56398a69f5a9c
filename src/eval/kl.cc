// Saved-logits reading and writing with plain stdio; KL per row and its summary.
#include "eval/kl.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>

namespace moepp {
namespace {

template <typename T>
bool write_pod(FILE* f, const T& v) { return std::fwrite(&v, sizeof(T), 1, f) == 1; }
template <typename T>
bool read_pod(FILE* f, T* v) { return std::fread(v, sizeof(T), 1, f) == 1; }

}  // namespace

void log_softmax(const float* logits, int64_t vocab, std::vector<double>* out) {
  out->resize(static_cast<size_t>(vocab));
  double max_v = logits[0];
  for (int64_t i = 1; i < vocab; ++i) max_v = std::max(max_v, static_cast<double>(logits[i]));
  double sum = 0.0;
  for (int64_t i = 0; i < vocab; ++i) sum += std::exp(logits[i] - max_v);
  const double lse = max_v + std::log(sum);
  for (int64_t i = 0; i < vocab; ++i) (*out)[i] = logits[i] - lse;
}

Status LogitsWriter::open(const std::string& path, int64_t vocab_size, int top_k) {
  if (top_k < 0 || top_k > vocab_size)
    return Status::Error(str_format("--save-top-k: expected 0 (full) to the vocabulary size %lld, got %d",
                                    static_cast<long long>(vocab_size), top_k));
  path_ = path;
  vocab_ = vocab_size;
  top_k_ = top_k;
  MOEPP_RETURN_IF_ERROR(out_.open(path));
  f_ = out_.get();
  // close() writes the row count into the header: a pipe cannot take it.
  if (::lseek(::fileno(f_), 0, SEEK_CUR) < 0)
    return Status::Error(path + ": --save-logits needs a file it can seek in (a pipe or terminal cannot take the header's row count)");
  const uint32_t version = 1, k = static_cast<uint32_t>(top_k);
  const uint64_t rows = 0, vocab = static_cast<uint64_t>(vocab_size);
  if (std::fwrite(kLogitsMagic, 1, 8, f_) != 8 || !write_pod(f_, version) || !write_pod(f_, k) ||
      !write_pod(f_, rows) || !write_pod(f_, vocab))
    return Status::Error(path + ": write failed");
  return Status::Ok();
}

Status LogitsWriter::add(int32_t target, const float* logits) {
  std::vector<double> lp;
  log_softmax(logits, vocab_, &lp);
  bool ok = write_pod(f_, target);
  if (top_k_ == 0) {
    std::vector<float> row(lp.begin(), lp.end());
    ok = ok && std::fwrite(row.data(), sizeof(float), row.size(), f_) == row.size();
  } else {
    std::vector<int32_t> order(static_cast<size_t>(vocab_));
    std::iota(order.begin(), order.end(), 0);
    std::partial_sort(order.begin(), order.begin() + top_k_, order.end(),
                      [&](int32_t a, int32_t b) { return lp[a] > lp[b] || (lp[a] == lp[b] && a < b); });
    double mass = 0.0;
    for (int i = 0; i < top_k_; ++i) {
      const float v = static_cast<float>(lp[order[i]]);
      ok = ok && write_pod(f_, order[i]) && write_pod(f_, v);
      mass += std::exp(lp[order[i]]);
    }
    const float rest = mass < 1.0 ? static_cast<float>(std::log1p(-mass)) : -std::numeric_limits<float>::infinity();
    ok = ok && write_pod(f_, rest);
  }
  if (!ok) return Status::Error(path_ + ": write failed");
  ++rows_;
  return Status::Ok();
}

Status LogitsWriter::close() {
  if (f_ == nullptr) return Status::Ok();
  const uint64_t rows = static_cast<uint64_t>(rows_);
  const bool ok = std::fseek(f_, 16, SEEK_SET) == 0 && write_pod(f_, rows);
  f_ = nullptr;
  return out_.commit(ok);
}

LogitsReader::~LogitsReader() {
  if (f_ != nullptr) std::fclose(f_);
}

Status LogitsReader::open(const std::string& path) {
  path_ = path;
  f_ = std::fopen(path.c_str(), "rb");
  if (f_ == nullptr) return Status::Error(path + ": cannot open: " + std::strerror(errno));
  char magic[8];
  uint32_t version = 0, k = 0;
  uint64_t rows = 0, vocab = 0;
  if (std::fread(magic, 1, 8, f_) != 8 || !read_pod(f_, &version) || !read_pod(f_, &k) || !read_pod(f_, &rows) ||
      !read_pod(f_, &vocab))
    return Status::Error(path + ": saved logits: truncated header, expected 32 bytes");
  if (std::memcmp(magic, kLogitsMagic, 8) != 0)
    return Status::Error(path + ": saved logits: bad magic, expected MOEPPLG1 (a file from --save-logits)");
  if (version != 1) return Status::Error(str_format("%s: saved logits: version %u, expected 1", path.c_str(), version));
  if (vocab == 0 || vocab > (1u << 24) || k > vocab)
    return Status::Error(str_format("%s: saved logits: vocab_size %llu / top_k %u, expected 0 < top_k <= vocab_size <= 2^24",
                                    path.c_str(), static_cast<unsigned long long>(vocab), k));
  vocab_ = static_cast<int64_t>(vocab);
  top_k_ = static_cast<int>(k);
  n_rows_ = static_cast<int64_t>(rows);
  return Status::Ok();
}

Status LogitsReader::next(LogitsRow* row) {
  if (read_ >= n_rows_)
    return Status::Error(str_format("%s: saved logits: more rows requested than the %lld saved (different text or settings?)",
                                    path_.c_str(), static_cast<long long>(n_rows_)));
  bool ok = read_pod(f_, &row->target);
  if (top_k_ == 0) {
    row->ids.clear();
    row->logprobs.resize(static_cast<size_t>(vocab_));
    ok = ok && std::fread(row->logprobs.data(), sizeof(float), row->logprobs.size(), f_) == row->logprobs.size();
  } else {
    row->ids.resize(static_cast<size_t>(top_k_));
    row->logprobs.resize(static_cast<size_t>(top_k_));
    for (int i = 0; i < top_k_ && ok; ++i) ok = read_pod(f_, &row->ids[i]) && read_pod(f_, &row->logprobs[i]);
    ok = ok && read_pod(f_, &row->rest_logprob);
    for (int i = 0; i < top_k_ && ok; ++i)
      if (row->ids[i] < 0 || row->ids[i] >= vocab_) ok = false;
  }
  if (!ok)
    return Status::Error(str_format("%s: saved logits: row %lld truncated or invalid", path_.c_str(), static_cast<long long>(read_)));
  ++read_;
  return Status::Ok();
}

double kl_divergence(const LogitsRow& base, const std::vector<double>& cur) {
  double kl = 0.0;
  if (base.ids.empty()) {
    for (size_t i = 0; i < base.logprobs.size(); ++i) {
      const double lp = base.logprobs[i];
      if (std::isinf(lp)) continue;
      kl += std::exp(lp) * (lp - cur[i]);
    }
    return std::max(kl, 0.0);
  }
  double cur_mass = 0.0;
  for (size_t i = 0; i < base.ids.size(); ++i) {
    const double lp = base.logprobs[i];
    kl += std::exp(lp) * (lp - cur[base.ids[i]]);
    cur_mass += std::exp(cur[base.ids[i]]);
  }
  const double rest = base.rest_logprob;
  if (!std::isinf(rest)) {
    const double cur_rest = std::log(std::max(1.0 - cur_mass, 1e-300));
    kl += std::exp(rest) * (rest - cur_rest);
  }
  return std::max(kl, 0.0);
}

KlSummary summarize_kl(const std::vector<double>& kl, int64_t same_top1_count) {
  KlSummary s;
  s.n = static_cast<int64_t>(kl.size());
  if (s.n == 0) return s;
  double sum = 0.0;
  for (double v : kl) sum += v, s.max = std::max(s.max, v);
  s.mean = sum / static_cast<double>(s.n);
  if (s.n > 1) {
    double ss = 0.0;
    for (double v : kl) ss += (v - s.mean) * (v - s.mean);
    s.stderr_mean = std::sqrt(ss / static_cast<double>(s.n - 1) / static_cast<double>(s.n));
  }
  std::vector<double> sorted = kl;
  std::sort(sorted.begin(), sorted.end());
  s.median = sorted[sorted.size() / 2];
  s.p99 = sorted[std::min(sorted.size() - 1, static_cast<size_t>(0.99 * static_cast<double>(sorted.size())))];
  s.same_top1 = static_cast<double>(same_top1_count) / static_cast<double>(s.n);
  return s;
}

}  // namespace moepp
