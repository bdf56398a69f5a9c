// `moepp bench --svg FILE`: the rows as a picture. --compare-vanilla rows: each series' expert
// speed-up against its measured zero-computation share, beside the FFN-work ratio that share
// implies and the roofline's speed-up; pp/tg rows: one bar per row, its share of the machine's
// limit that bounds it (tg: the read, pp: the arithmetic peak).
#pragma once

#include <string>
#include <vector>

#include "bench/bench_runner.h"

namespace moepp {

// A standalone SVG document (rows in the order given; a panel only for the kinds present).
// Empty rows give an empty string.
std::string bench_chart_svg(const std::vector<BenchRow>& rows);

}  // namespace moepp
