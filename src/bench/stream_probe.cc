// One-token products over cold copies of a matrix against a plain read of the same memory, on
// huge pages (as allocate_resident stores weights) and on small pages.
#include "bench/stream_probe.h"

#include <sys/mman.h>

#include <algorithm>
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
// scales; the layout interleave_rows8 writes, padding included).
size_t interleaved_extent(const Weight& w) {
  const int64_t blocks = (w.rows + 7) / 8;
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

// The random [rows, cols] matrix of a format, row-major (interleave_rows8 makes the copies).
Result<Weight> random_matrix(const std::string& format, const StreamProbeOptions& o) {
  const bool bf16 = format == "bf16";
  if (!bf16 && format != "f32" && format != "q8" && format != "q4")
    return Status::Error("--weights: expected f32, bf16, q8 or q4, got '" + format + "'");
  Weight w = make_owned_weight(bf16 ? DType::kBF16 : DType::kF32, o.rows, o.cols);
  if (w.data == nullptr) return Status::Error("bench --stream: no memory for a " + format + " matrix");
  fill_random_normal(o.seed, 0.0f, 0.02f, w.dtype, w.owner.get(), o.rows * o.cols);
  if (format == "q8" || format == "q4") return quantize_weight(w, format == "q8" ? WeightQuant::kQ8 : WeightQuant::kQ4);
  return w;
}

// Appends the huge-page row, then the small-page row, of one format.
Status probe_format(const std::string& format, const StreamProbeOptions& o, std::vector<StreamProbeRow>* out) {
  auto base = random_matrix(format, o);
  if (!base.ok()) return base.status();
  const Weight first = interleave_rows8(*base);
  const size_t extent = interleaved_extent(first);
  const int copies = static_cast<int>(std::clamp<int64_t>((o.copies_bytes + static_cast<int64_t>(extent) - 1) /
                                                             static_cast<int64_t>(extent), 2, 4096));
  std::vector<Weight> huge{first}, small;
  for (int c = 1; c < copies; ++c) huge.push_back(interleave_rows8(*base));
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
  // Row blocks of whole 8-row blocks; the read takes the matching share of the bytes per task.
  ThreadPool pool(o.threads);
  const int64_t block_rows =
      o.task_rows > 0 ? std::max<int64_t>(8, (o.task_rows + 7) / 8 * 8) : rows_per_thread(o.rows, o.threads);
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
  product(huge[0], y.data());
  product(small[0], y_small.data());
  if (std::memcmp(y.data(), y_small.data(), y.size() * sizeof(float)) != 0)
    return Status::Error("bench --stream: the " + format + " product differs between huge- and small-page copies");

  // Variants take turns call by call, each on the next copy of its set (cold in every cache).
  const std::vector<std::function<void(int)>> variants = {
      [&](int c) { product(huge[c], y.data()); },
      [&](int c) { product(small[c], y.data()); },
      [&](int c) { read(huge[c]); },
      [&](int c) { read(small[c]); },
  };
  // The read of a set starts half the set away from its product: a copy read by one variant
  // and then, a call or two later, by the other would come from the last-level cache (hundreds
  // of MiB on some machines) and flatter whichever variant came second.
  const std::vector<double> seconds = time_in_turns(variants, {0, 0, copies / 2, copies / 2}, copies, o.calls);
  for (uint64_t v : sums) g_read_sink = g_read_sink + v;  // keeps the reads

  StreamProbeRow row;
  row.weights = format;
  row.rows = o.rows;
  row.cols = o.cols;
  row.matrix_bytes = static_cast<int64_t>(extent);
  row.copies = copies;
  const double bytes = static_cast<double>(extent) * o.calls / 1e9;
  row.kernel_gb_s = bytes / seconds[0];
  row.read_gb_s = bytes / seconds[2];
  StreamProbeRow small_row = row;
  small_row.pages = "small";
  small_row.kernel_gb_s = bytes / seconds[1];
  small_row.read_gb_s = bytes / seconds[3];
  row.pages = "huge";
  out->push_back(row);
  out->push_back(small_row);
  return Status::Ok();
}

}  // namespace

Result<std::vector<StreamProbeRow>> probe_one_token_stream(const std::vector<std::string>& formats,
                                                           const StreamProbeOptions& options) {
  if (options.rows < 8 || options.cols < 32 || options.rows > (1 << 20) || options.cols > (1 << 20))
    return Status::Error("--stream-shape: expected rows >= 8 and cols >= 32 (at most 2^20 each), got " +
                         std::to_string(options.rows) + "x" + std::to_string(options.cols));
  if (options.task_rows < 0) return Status::Error("--stream-task-rows: expected 0 (one call) or a positive number of rows");
  if (options.threads < 1 || options.threads > 1024)
    return Status::Error("-t: expected 1 to 1024 threads, got " + std::to_string(options.threads));
  if (options.calls < 1) return Status::Error("bench --stream: expected at least one call per variant");
  std::vector<StreamProbeRow> rows;
  for (const std::string& f : formats) {
    const Status s = probe_format(f, options, &rows);
    if (!s.ok()) return s;
  }
  return rows;
}

}  // namespace moepp
