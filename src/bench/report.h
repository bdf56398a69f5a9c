// Output of `moepp bench`: markdown tables (default), CSV, or one JSON object per line.
#pragma once

#include <cstdio>
#include <string>
#include <vector>

#include "bench/bench_runner.h"
#include "bench/machine.h"

namespace moepp {

enum class ReportFormat { kMarkdown, kCsv, kJson };

// Machine limits, one row per thread count.
void print_machine(std::FILE* out, ReportFormat format, const std::vector<MachineLimits>& limits);

// Prints rows as they arrive; the header comes with the first row.
class RowPrinter {
 public:
  RowPrinter(std::FILE* out, ReportFormat format) : out_(out), format_(format) {}
  void print(const BenchRow& row);

 private:
  std::FILE* out_;
  ReportFormat format_;
  bool header_done_ = false;
};

// One JSON object (no trailing newline) with the row's fields; exposed for tests.
std::string row_json(const BenchRow& row);

}  // namespace moepp
