// One-token products over cold copies of a matrix against a plain read of the same memory, on
// huge pages (as allocate_resident stores weights) and on small pages.
#include "bench/stream_probe.h"

#include <sys/mman.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <functional>
#include <memory>
#include <string>

#include "bench/machine.h"
#include "bench/turns.h"
#include "ops/dot_kernels.h"
#include "ops/matmul.h"
#include "platform/thread_pool.h"
#include "tensor/dtype.h"
#include "tensor/quantize.h"
#include "tensor/random_fill.h"
#include "tensor/weight.h"

namespace moepp {
namespace {

volatile uint64_t g_read_sink = 0;  // the plain reads' sums, so they are not optimised away

// Bytes from w.data to the end of an interleaved weight (for q8/q4 each group's values, then their
// scales; the layout interleave_rows writes, padding included).
size_t interleaved_extent(const Weight& w) {
  const int64_t blocks = (w.rows + w.block_rows() - 1) / w.block_rows();
  if (w.quant == WeightQuant::kNone)
    return static_cast<size_t>(blocks * 8 * w.padded_cols()) * dtype_size(w.dtype);
  return static_cast<size_t>(blocks * w.groups_per_row() * w.interleaved_group_stride());
}

// A copy of an interleaved weight on small (4 KiB) pages: a mapping advised against huge pages,
// so systems with transparent huge pages "always" keep it small too.
Result<Weight> small_page_copy(const Weight& w) {
  const size_t bytes = (interleaved_extent(w) + 4095) / 4096 * 4096;
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return Status::Error("bench --stream: no memory for a small-page copy");
  madvise(p, bytes, MADV_NOHUGEPAGE);
  std::memcpy(p, w.data, interleaved_extent(w));
  Weight out = w;
  out.owner = std::shared_ptr<void>(p, [bytes](void* q) { munmap(q, bytes); });
  out.data = p;
  if (w.scales != nullptr)
    out.scales = reinterpret_cast<const float*>(static_cast<uint8_t*>(p) +
                                                (reinterpret_cast<const uint8_t*>(w.scales) - static_cast<const uint8_t*>(w.data)));
  return out;
}

// The random [rows, cols] matrix of a format, row-major (interleave_rows makes the copies).
Result<Weight> random_matrix(const std::string& format, int64_t rows, int64_t cols, uint64_t seed) {
  const bool bf16 = format == "bf16";
  if (!bf16 && format != "f32" && format != "q8" && format != "q4")
    return Status::Error("--weights: expected f32, bf16, q8 or q4, got '" + format + "'");
  Weight w = make_owned_weight(bf16 ? DType::kBF16 : DType::kF32, rows, cols);
  if (w.data == nullptr) return Status::Error("bench: no memory for a " + format + " matrix");
  fill_random_normal(seed, 0.0f, 0.02f, w.dtype, w.owner.get(), rows * cols);
  if (format == "q8" || format == "q4") return quantize_weight(w, format == "q8" ? WeightQuant::kQ8 : WeightQuant::kQ4);
  return w;
}

// Enough interleaved copies of `base` to fill `bytes` (at least `least`, at most 4096): cold in
// every cache when taken in turn.
std::vector<Weight> cold_copies(const Weight& base, int64_t bytes, int least) {
  const Weight first = interleave_rows(base);
  const auto extent = static_cast<int64_t>(interleaved_extent(first));
  const int copies = static_cast<int>(std::clamp<int64_t>((bytes + extent - 1) / extent, least, 4096));
  std::vector<Weight> out{first};
  for (int c = 1; c < copies; ++c) out.push_back(interleave_rows(base));
  return out;
}

// Appends one format's rows: on huge pages, one per stream count, then the same on small pages.
Status probe_format(const std::string& format, const StreamProbeOptions& o, std::vector<StreamProbeRow>* out) {
  auto base = random_matrix(format, o.rows, o.cols, o.seed);
  if (!base.ok()) return base.status();
  // Each set's S + 1 variants start on distinct copies after the first (which the bit check reads).
  const int least_copies = static_cast<int>(std::max<size_t>(1, o.streams.size())) + 2;
  std::vector<Weight> huge = cold_copies(*base, o.copies_bytes, least_copies), small;
  const Weight& first = huge[0];
  const size_t extent = interleaved_extent(first);
  const int copies = static_cast<int>(huge.size());
  for (const Weight& w : huge) {
    auto s = small_page_copy(w);
    if (!s.ok()) return s.status();
    small.push_back(*s);
  }
  base = Status::Error("released");  // the row-major original is not needed any more

  // The input as decode has it: bf16 values (so bf16 weights take the vdpbf16ps path where the
  // CPU has one), quantised once for q8/q4 as a forward quantises it once per token.
  std::vector<float> x(static_cast<size_t>(o.cols)), y(static_cast<size_t>(o.rows)), y_small(y.size());
  fill_random_normal(o.seed + 1, 0.0f, 1.0f, DType::kF32, x.data(), o.cols);
  for (float& v : x) v = round_bf16(v);
  const kernels::KernelSet& ks = kernels::active_kernels();
  kernels::QuantizedRows qx;
  const bool quantized = first.quant != WeightQuant::kNone;
  if (quantized) kernels::quantize_activations(x.data(), 1, o.cols, o.cols, &qx);
  // Tasks of whole interleaved blocks (8 rows f32/bf16, 16 q8/q4), as decode's; the read takes the
  // matching share of the bytes per task.
  ThreadPool pool(o.threads);
  const int64_t R = first.block_rows();
  const int64_t block_rows =
      o.task_rows > 0 ? std::max<int64_t>(R, (o.task_rows + R - 1) / R * R) : rows_per_thread(o.rows, o.threads, R);
  const int64_t n_tasks = (o.rows + block_rows - 1) / block_rows;
  auto product = [&](const Weight& w, float* out) {
    pool.parallel_for(n_tasks, [&](int64_t t) {
      const int64_t r0 = t * block_rows, r1 = std::min(o.rows, r0 + block_rows);
      if (quantized) ks.quantized_rows(qx, 0, 1, w, r0, r1, out + r0, o.rows);
      else ks.rows(x.data(), 1, o.cols, w, r0, r1, out + r0, o.rows);
    });
  };
  std::vector<uint64_t> sums(static_cast<size_t>(n_tasks));
  auto read = [&](const Weight& w) {
    const size_t chunk = (extent / static_cast<size_t>(n_tasks) + 127) / 128 * 128;
    pool.parallel_for(n_tasks, [&](int64_t t) {
      const size_t begin = std::min(extent, static_cast<size_t>(t) * chunk), end = std::min(extent, begin + chunk);
      sums[static_cast<size_t>(t)] += read_memory(static_cast<const uint8_t*>(w.data) + begin, end - begin);
    });
  };
  // Each stream count's products, on both page sizes, must be the first one's bits. Where this
  // format's kernel walks one fixed order (one_token_streams_of is 0), one count is run, shown as 0;
  // where none is named, the count this format's kernel walks now. (Setting 0 for such a format
  // clears any forced count, which it never reads; `keep` puts it back.)
  const kernels::KeepOneTokenStreams keep;
  const int in_use = kernels::one_token_streams_of(first);
  const std::vector<int> streams = in_use == 0       ? std::vector<int>{0}
                                   : o.streams.empty() ? std::vector<int>{in_use}
                                                       : o.streams;
  const int S = static_cast<int>(streams.size());
  kernels::set_one_token_streams(streams[0]);
  product(huge[0], y.data());
  for (int v = 0; v < S; ++v) {
    kernels::set_one_token_streams(streams[static_cast<size_t>(v)]);
    for (const Weight* w : {&huge[0], &small[0]}) {
      product(*w, y_small.data());
      if (std::memcmp(y.data(), y_small.data(), y.size() * sizeof(float)) != 0) {
        return Status::Error("bench --stream: the " + format + " product on " + (w == &huge[0] ? "huge" : "small") +
                             " pages with " + std::to_string(streams[static_cast<size_t>(v)]) +
                             " streams differs from the one on huge pages with " + std::to_string(streams[0]));
      }
    }
  }

  // Variants take turns call by call, each on the next copy of its set (cold in every cache):
  // the product at each stream count on huge pages, then on small pages, then the two reads.
  std::vector<std::function<void(int)>> variants;
  for (const std::vector<Weight>* set : {&huge, &small})
    for (int v = 0; v < S; ++v)
      variants.push_back([&, set, count = streams[static_cast<size_t>(v)]](int c) {
        kernels::set_one_token_streams(count);
        product((*set)[static_cast<size_t>(c)], y.data());
      });
  variants.push_back([&](int c) { read(huge[static_cast<size_t>(c)]); });
  variants.push_back([&](int c) { read(small[static_cast<size_t>(c)]); });
  // The S + 1 variants on a set start evenly spread over its copies after the first: a copy read
  // by one variant and then, a call or two later, by another would come from the last-level
  // cache (hundreds of MiB on some machines) and flatter whichever came second.
  std::vector<int> first_copy;
  auto spread = [&](int v) { return 1 + v * (copies - 1) / (S + 1); };
  for (int set = 0; set < 2; ++set)
    for (int v = 0; v < S; ++v) first_copy.push_back(spread(v));
  first_copy.push_back(spread(S));
  first_copy.push_back(spread(S));
  const std::vector<double> seconds = time_in_turns(variants, first_copy, copies, o.calls);
  for (uint64_t v : sums) g_read_sink = g_read_sink + v;  // keeps the reads

  StreamProbeRow row;
  row.weights = format;
  row.rows = o.rows;
  row.cols = o.cols;
  row.matrix_bytes = static_cast<int64_t>(extent);
  row.copies = copies;
  const double bytes = static_cast<double>(extent) * o.calls / 1e9;
  for (int set = 0; set < 2; ++set)
    for (int v = 0; v < S; ++v) {
      StreamProbeRow r = row;
      r.pages = set == 0 ? "huge" : "small";
      r.streams = streams[static_cast<size_t>(v)];
      r.kernel_gb_s = bytes / seconds[static_cast<size_t>(set * S + v)];
      r.read_gb_s = bytes / seconds[static_cast<size_t>(2 * S + set)];
      out->push_back(r);
    }
  return Status::Ok();
}

Status check_shape(int64_t rows, int64_t cols) {
  if (rows < 8 || cols < 32 || rows > (1 << 20) || cols > (1 << 20))
    return Status::Error("--stream-shape: expected rows >= 8 and cols >= 32 (at most 2^20 each), got " +
                         std::to_string(rows) + "x" + std::to_string(cols));
  return Status::Ok();
}

// Appends one row per set for `tokens` inputs against copies of one format's matrix.
Status probe_batch(const std::string& format, const std::vector<Weight>& copies, int64_t tokens,
                   const std::vector<const kernels::KernelSet*>& sets, const BatchProbeOptions& o,
                   std::vector<BatchProbeRow>* out) {
  const int64_t N = o.rows, K = o.cols;
  std::vector<float> x(static_cast<size_t>(tokens * K));
  fill_random_normal(o.seed + 2 + static_cast<uint64_t>(tokens), 0.0f, 1.0f, DType::kF32, x.data(), tokens * K);
  for (float& v : x) v = round_bf16(v);
  const bool quantized = copies[0].quant != WeightQuant::kNone;
  std::vector<std::vector<float>> ys(sets.size(), std::vector<float>(static_cast<size_t>(tokens * N)));
  // As matmul_many: the inputs quantised (q8/q4) or paired (bf16, where the set pairs this many
  // tokens) once for all tasks.
  thread_local kernels::QuantizedRows qx;
  thread_local kernels::PairedRows px;
  auto prepare = [&](const kernels::KernelSet& set, const Weight& w) {
    if (quantized) kernels::quantize_all_rows(set, x.data(), tokens, K, K, &qx);
    px.K = 0;
    if (!quantized && w.dtype == DType::kBF16 && set.pairs(tokens)) {
      px.pairs.resize(static_cast<size_t>(tokens * kernels::paired_row_words(K)));
      if (set.pair_rows(x.data(), tokens, K, K, px.pairs.data())) px.K = K;
    }
  };
  auto task = [&](const kernels::KernelSet& set, const Weight& w, int64_t r0, int64_t r1, float* y) {
    if (quantized) set.quantized_rows(qx, 0, tokens, w, r0, r1, y + r0, N);
    else if (px.K > 0) set.paired_rows(px, 0, tokens, w, r0, r1, y + r0, N);
    else set.rows(x.data(), tokens, K, w, r0, r1, y + r0, N);
  };
  auto product = [&](const kernels::KernelSet& set, const Weight& w, float* y) {
    prepare(set, w);
    for (int64_t r0 = 0; r0 < N; r0 += o.task_rows) task(set, w, r0, std::min(N, r0 + o.task_rows), y);
  };
  // The same call with the weights in cache: each task run twice in a row and the second timed
  // (its rows then in L2 where they fit), with the inputs' preparation: the arithmetic alone, which
  // with the read's time shows how much of the shorter one the cold call hides. Returns the timed
  // seconds; it takes its turns with the others, so that the machine's drift hits all alike.
  using Clock = std::chrono::steady_clock;
  const Weight& cached_copy = copies.back();  // read by these calls alone
  auto cached_call = [&](const kernels::KernelSet& set, float* y) {
    auto t0 = Clock::now();
    prepare(set, cached_copy);
    double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    for (int64_t r0 = 0; r0 < N; r0 += o.task_rows) {
      const int64_t r1 = std::min(N, r0 + o.task_rows);
      task(set, cached_copy, r0, r1, y);
      t0 = Clock::now();
      task(set, cached_copy, r0, r1, y);
      seconds += std::chrono::duration<double>(Clock::now() - t0).count();
    }
    return seconds;
  };
  std::vector<std::function<void(int)>> variants;
  std::vector<int> first;
  // The others take turns through all copies but the last, the cached calls'.
  const int n_copies = static_cast<int>(copies.size()) - 1;
  for (size_t v = 0; v < sets.size(); ++v) {
    product(*sets[v], copies[0], ys[v].data());
    if (std::memcmp(ys[v].data(), ys[0].data(), ys[v].size() * sizeof(float)) != 0)
      return Status::Error(std::string("bench --batch-kernels: the ") + sets[v]->isa + " and " + sets[0]->isa + " " +
                           format + " products differ");
    variants.push_back([&, v](int c) { product(*sets[v], copies[static_cast<size_t>(c)], ys[v].data()); });
    // Each set (and the read below) starts its own share of the copies away, so none reads a
    // copy another just left in the last-level cache (nor copy 0, which the check above just read).
    first.push_back(1 + static_cast<int>(v) * (n_copies - 1) / static_cast<int>(sets.size() + 1));
  }
  // The cached calls take turns as well (their own timing: the second run of each task).
  std::vector<double> cached(sets.size(), 0.0);
  for (size_t v = 0; v < sets.size(); ++v) {
    variants.push_back([&, v](int) { cached[v] += cached_call(*sets[v], ys[v].data()); });
    first.push_back(0);
  }
  // A plain read of the same copies takes its turns too: the kernels' GB/s as a share of what the
  // memory gave in the same moments.
  const size_t extent = interleaved_extent(copies[0]);
  uint64_t read_sum = 0;
  variants.push_back([&](int c) {
    read_sum += read_memory(static_cast<const uint8_t*>(copies[static_cast<size_t>(c)].data), extent);
  });
  first.push_back(1 + static_cast<int>(sets.size()) * (n_copies - 1) / static_cast<int>(sets.size() + 1));
  const std::vector<double> seconds = time_in_turns(variants, first, n_copies, o.calls);
  g_read_sink = g_read_sink + read_sum;
  const double bytes = static_cast<double>(extent) * o.calls;
  const double read_gb_s = bytes / seconds.back() / 1e9;
  const double read_seconds = seconds.back();
  for (size_t v = 0; v < sets.size(); ++v) {
    BatchProbeRow row;
    row.weights = format;
    row.tokens = tokens;
    row.kernels = sets[v]->isa;
    row.rows = N;
    row.cols = K;
    row.gflop_s = 2.0 * static_cast<double>(N * K * tokens) * o.calls / seconds[v] / 1e9;
    row.gb_s = bytes / seconds[v] / 1e9;
    row.read_gb_s = read_gb_s;
    row.cached_gflop_s = 2.0 * static_cast<double>(N * K * tokens) * o.calls / cached[v] / 1e9;
    row.overlap = (cached[v] + read_seconds - seconds[v]) / std::min(cached[v], read_seconds);
    out->push_back(row);
  }
  return Status::Ok();
}

}  // namespace

Result<std::vector<BatchProbeRow>> probe_batch_kernels(const std::vector<std::string>& formats,
                                                       const BatchProbeOptions& options) {
  if (Status s = check_shape(options.rows, options.cols); !s.ok()) return s;
  if (options.calls < 1) return Status::Error("bench --batch-kernels: expected at least one call per set");
  if (options.tokens.empty()) return Status::Error("-p: expected the tokens of a call (e.g. 8,128), got none");
  for (int64_t t : options.tokens) {
    if (t < 1 || t > 65536) return Status::Error("-p: expected 1 to 65536 tokens a call, got " + std::to_string(t));
    // Inputs and one output per set: refused up front rather than failing to allocate.
    const double bytes = 4.0 * static_cast<double>(t) * static_cast<double>(options.cols + 8 * options.rows);
    if (bytes > 4e9)
      return Status::Error("-p: " + std::to_string(t) + " tokens of a " + std::to_string(options.rows) + "x" +
                           std::to_string(options.cols) + " matrix need more than 4 GB of inputs and outputs");
  }
  std::vector<const kernels::KernelSet*> sets;
  for (const kernels::KernelSet* set : kernels::available_kernels())
    if (set != &kernels::scalar_kernels()) sets.push_back(set);
  if (sets.empty()) sets.push_back(&kernels::scalar_kernels());
  std::vector<BatchProbeRow> rows;
  for (const std::string& f : formats) {
    auto base = random_matrix(f, options.rows, options.cols, options.seed);
    if (!base.ok()) return base.status();
    // At least one copy per set and the read, plus copy 0 (the bit check's), so that each starts
    // on its own, and the cached calls' own.
    const std::vector<Weight> copies = cold_copies(*base, options.copies_bytes, static_cast<int>(sets.size()) + 3);
    for (int64_t tokens : options.tokens)
      if (Status s = probe_batch(f, copies, tokens, sets, options, &rows); !s.ok()) return s;
  }
  return rows;
}

Result<std::vector<StreamProbeRow>> probe_one_token_stream(const std::vector<std::string>& formats,
                                                           const StreamProbeOptions& options) {
  if (Status s = check_shape(options.rows, options.cols); !s.ok()) return s;
  if (options.task_rows < 0) return Status::Error("--stream-task-rows: expected 0 (one call) or a positive number of rows");
  if (options.threads < 1 || options.threads > 1024)
    return Status::Error("-t: expected 1 to 1024 threads, got " + std::to_string(options.threads));
  if (options.calls < 1) return Status::Error("bench --stream: expected at least one call per variant");
  StreamProbeOptions o = options;
  for (size_t i = 0; i < o.streams.size(); ++i) {
    if (!kernels::valid_one_token_streams(o.streams[i]))
      return Status::Error("--streams: expected 1, 2 or 4 streams per thread, got " + std::to_string(o.streams[i]));
    if (std::find(o.streams.begin(), o.streams.begin() + static_cast<std::ptrdiff_t>(i), o.streams[i]) !=
        o.streams.begin() + static_cast<std::ptrdiff_t>(i))
      return Status::Error("--streams: " + std::to_string(o.streams[i]) + " is named twice");
  }
  std::vector<StreamProbeRow> rows;
  for (const std::string& f : formats) {
    const Status s = probe_format(f, o, &rows);
    if (!s.ok()) return s;
  }
  return rows;
}

}  // namespace moepp
