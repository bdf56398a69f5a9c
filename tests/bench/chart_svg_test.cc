// `moepp bench --svg`: the chart's marks sit where the rows' numbers put them.
#include "bench/chart_svg.h"

#include <gtest/gtest.h>

#include <limits>
#include <regex>
#include <string>
#include <vector>

#include "base/utf8.h"

namespace moepp {
namespace {

BenchRow compare_row(const std::string& weights, int threads, double zc, double speedup) {
  BenchRow r;
  r.model = "moepp-1b vs moe-1b";
  r.weights = weights;
  r.threads = threads;
  r.test = "moe_pp128";
  r.compare = true;
  r.zc_share = zc;
  r.expert_speedup = speedup;
  r.ffn_work_ratio = 1 / (1 - zc);
  r.roofline_speedup = 0.9 / (1 - zc);
  return r;
}

BenchRow model_row(const std::string& model, const std::string& test, double bw_share, double flop_share) {
  BenchRow r;
  r.model = model;
  r.weights = "q4";
  r.test = test;
  r.bw_share = bw_share;
  r.flop_share = flop_share;
  r.peak = "int8";
  return r;
}

// The numeric attribute `name` of every element `tag`, in document order.
std::vector<double> attribute(const std::string& svg, const std::string& tag, const std::string& name) {
  std::vector<double> out;
  const std::regex element("<" + tag + "\\b[^>]*>"), value(" " + name + "=\"([-0-9.]+)\"");
  for (auto it = std::sregex_iterator(svg.begin(), svg.end(), element); it != std::sregex_iterator(); ++it) {
    std::smatch m;
    const std::string e = it->str();
    if (std::regex_search(e, m, value)) out.push_back(std::stod(m[1]));
  }
  return out;
}

size_t count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

TEST(ChartSvg, SpeedupPointsFollowShareAndSpeedup) {
  // Rows arrive by thread count, shares out of order within a series.
  const std::vector<BenchRow> rows = {compare_row("bf16", 1, 0.5, 1.7), compare_row("bf16", 1, 0.1, 1.05),
                                      compare_row("bf16", 1, 0.25, 1.3), compare_row("bf16", 2, 0.1, 1.02),
                                      compare_row("bf16", 2, 0.25, 1.1), compare_row("bf16", 2, 0.5, 1.2)};
  const std::string svg = bench_chart_svg(rows);
  ASSERT_EQ(svg.rfind("<svg", 0), 0u);
  EXPECT_EQ(svg.substr(svg.size() - 7), "</svg>\n");
  const std::vector<double> cx = attribute(svg, "circle", "cx"), cy = attribute(svg, "circle", "cy");
  ASSERT_EQ(cx.size(), 6u);
  ASSERT_EQ(cy.size(), 6u);
  // Each series drawn by share: x grows, and y (pixels grow downwards) falls as the speed-up grows.
  for (int s = 0; s < 2; ++s)
    for (int i = 1; i < 3; ++i) {
      EXPECT_GT(cx[3 * s + i], cx[3 * s + i - 1]);
      EXPECT_LT(cy[3 * s + i], cy[3 * s + i - 1]);
    }
  // The same share sits at the same x in both series; a larger speed-up higher.
  for (int i = 0; i < 3; ++i) {
    EXPECT_DOUBLE_EQ(cx[i], cx[3 + i]);
    EXPECT_LT(cy[i], cy[3 + i]);
  }
  // y is linear in the speed-up: (1.7 - 1.3) / (1.3 - 1.05) of the pixel distances.
  EXPECT_NEAR((cy[1] - cy[2]) / (cy[0] - cy[1]), 0.4 / 0.25, 0.02);
  EXPECT_EQ(count(svg, "bf16 t=1 moe_pp128"), 4u);  // three points' titles and the legend
  EXPECT_NE(svg.find("FFN-work ratio"), std::string::npos);
  EXPECT_EQ(svg.find("Share of the machine"), std::string::npos);  // no pp/tg rows: no bars panel
}

TEST(ChartSvg, BarsAreProportionalToTheBindingShare) {
  const std::vector<BenchRow> rows = {model_row("mixtral-1.8b", "pp512", 0.2, 0.5), model_row("mixtral-1.8b", "tg64", 0.9, 0.1),
                                      model_row("moepp-1b", "tg64@d2048", 0.45, 0.05)};
  const std::string svg = bench_chart_svg(rows);
  const std::vector<double> width = attribute(svg, "rect", "width");  // the background's is "100%"
  ASSERT_EQ(width.size(), 3u);                                         // one bar a row
  // pp against the peak (0.5), tg against the read (0.9, 0.45).
  EXPECT_NEAR(width[1] / width[0], 0.9 / 0.5, 0.01);
  EXPECT_NEAR(width[1] / width[2], 2.0, 0.01);
  EXPECT_NE(svg.find("0.50 of the int8 peak"), std::string::npos);
  EXPECT_NE(svg.find("0.90 of the read"), std::string::npos);
  EXPECT_EQ(svg.find("<circle"), std::string::npos);  // no compare rows: no speed-up panel
}

TEST(ChartSvg, UnmeasuredRatesAreDrawnAtZero) {
  BenchRow speedup = compare_row("q8", 1, 0.5, std::numeric_limits<double>::quiet_NaN());
  speedup.roofline_speedup = std::numeric_limits<double>::infinity();
  const std::vector<BenchRow> rows = {speedup, compare_row("q8", 1, 0.25, 1.3),
                                      model_row("moepp-1b", "tg8", std::numeric_limits<double>::infinity(), 0.1),
                                      model_row("moepp-1b", "pp8", 0.2, std::numeric_limits<double>::quiet_NaN())};
  const std::string svg = bench_chart_svg(rows);
  EXPECT_EQ(svg.find("nan"), std::string::npos);
  EXPECT_EQ(svg.find("inf"), std::string::npos);
  const std::vector<double> cy = attribute(svg, "circle", "cy"), width = attribute(svg, "rect", "width");
  EXPECT_EQ(cy.size(), 1u);     // the unmeasured speed-up is left out, not drawn on the axis
  ASSERT_EQ(width.size(), 3u);  // the series' legend swatch, then the two bars
  EXPECT_EQ(width[1], 0);
  EXPECT_EQ(width[2], 0);
}

TEST(ChartSvg, NamesAreEscapedAndLongOnesShortened) {
  const std::string svg = bench_chart_svg({model_row("/models/a<b>&\"c\"", "tg8", 0.5, 0.1)});
  EXPECT_NE(svg.find("a&lt;b&gt;&amp;&quot;c&quot;"), std::string::npos);
  EXPECT_EQ(svg.find("a<b>"), std::string::npos);
  // A long path keeps its end, cut at a character's first byte: with 0-2 ASCII bytes after a run
  // of 3-byte characters, the cut (a fixed length from the end) falls on each byte of one in turn.
  std::string euros;
  for (int i = 0; i < 20; ++i) euros += "\xE2\x82\xAC";
  for (const std::string suffix : {"", "x", "xy"}) {
    const std::string shown = bench_chart_svg({model_row("/very/long/path/" + euros + suffix, "tg8", 0.5, 0.1)});
    EXPECT_EQ(shown.find("/very/long"), std::string::npos);
    const size_t cut = shown.find("...");
    ASSERT_NE(cut, std::string::npos) << suffix;
    EXPECT_NE(static_cast<unsigned char>(shown[cut + 3]) & 0xc0, 0x80) << suffix;
    EXPECT_TRUE(is_valid_utf8(shown)) << suffix;
    EXPECT_NE(shown.find("\xE2\x82\xAC" + suffix + " q4 t=1 tg8"), std::string::npos) << suffix;
  }
  EXPECT_TRUE(bench_chart_svg({}).empty());
}

TEST(ChartSvg, NamesThatAreNotXmlTextBecomeQuestionMarks) {
  // A checkpoint path is bytes: control characters and malformed UTF-8 would make the file unreadable.
  const std::string svg = bench_chart_svg({model_row("/m/\x01tab\there", "tg8", 0.5, 0.1),
                                           model_row("/m/latin1-\xE9t\xE9", "tg8", 0.5, 0.1)});
  EXPECT_TRUE(is_valid_utf8(svg));
  EXPECT_NE(svg.find("/m/?tab?here q4"), std::string::npos);
  EXPECT_NE(svg.find("/m/latin1-?t? q4"), std::string::npos);
  for (char c : svg) EXPECT_TRUE(static_cast<unsigned char>(c) >= 0x20 || c == '\n');
}

TEST(ChartSvg, BarsOfEachZeroComputationShareAreNamedByIt) {
  BenchRow a = model_row("moepp-1b", "tg8", 0.9, 0.1), b = a;
  a.zc_target = 0.25;
  b.zc_target = 0.5;
  const std::string svg = bench_chart_svg({a, b});
  EXPECT_NE(svg.find("moepp-1b q4 t=1 tg8 zc=0.25"), std::string::npos);
  EXPECT_NE(svg.find("moepp-1b q4 t=1 tg8 zc=0.50"), std::string::npos);
}

}  // namespace
}  // namespace moepp
