// HTML escaping, script-safe JSON, piece display, and the report's structure on a tiny record.
#include "eval/html_report.h"

#include <gtest/gtest.h>

#include "base/markup.h"

namespace moepp {
namespace {

TEST(HtmlReport, Escaping) {
  EXPECT_EQ(html_escape("a<b>&\"c'"), "a&lt;b&gt;&amp;&quot;c&#39;");
  EXPECT_EQ(html_escape("plain \xE2\x96\x81text"), "plain \xE2\x96\x81text");
  EXPECT_EQ(script_safe_json(R"({"a": "</script><b>"})"), R"({"a": "<\/script><b>"})");
  EXPECT_EQ(script_safe_json("\"\xE2\x80\xA8\""), "\"\\u2028\"");
}

TEST(HtmlReport, DisplayPiece) {
  EXPECT_EQ(display_piece({5, "\xE2\x96\x81the", TokenClass::kWordStart}), " the");
  EXPECT_EQ(display_piece({5, "\xC4\xA0the", TokenClass::kWordStart}), " the");
  EXPECT_EQ(display_piece({13, "<0x0A>", TokenClass::kByte}), "\xE2\x86\xB5\n");
  EXPECT_EQ(display_piece({42, "", TokenClass::kUnknown}), "#42 ");
}

TEST(HtmlReport, RampAndNumbers) {
  EXPECT_EQ(ramp_color(0.0), "#fde725");
  EXPECT_EQ(ramp_color(1.0), "#440154");
  EXPECT_EQ(ramp_color(-3.0), "#fde725");
  EXPECT_EQ(report_number(0.123456), "0.1235");
}

TEST(HtmlReport, StructureAndEscapedPieces) {
  RouteRecord r;
  r.n_layers = 1;
  r.n_tokens = 2;
  r.top_k = 1;
  r.kinds = {{ExpertKind::kFfn, ExpertKind::kZero}};
  r.experts = {0, 1};
  r.weights = {1.0f, 0.0f};
  std::vector<TokenInfo> tokens = {{3, "<script>", TokenClass::kFragment}, {4, "</script>", TokenClass::kFragment}};
  const RouteStats s = compute_route_stats(r, tokens);
  const std::string html = render_route_report({"m<1>", &r, &tokens, &s});
  EXPECT_EQ(html.rfind("<!DOCTYPE html>", 0), 0u);
  EXPECT_NE(html.find("m&lt;1&gt;"), std::string::npos);
  EXPECT_NE(html.find("&lt;script&gt;"), std::string::npos);
  EXPECT_EQ(html.find("\"</script>\""), std::string::npos);  // not raw in the embedded JSON
  EXPECT_NE(html.find("id=\"heatmap\""), std::string::npos);
  EXPECT_NE(html.find("id=\"ffn-histogram\""), std::string::npos);
  EXPECT_NE(html.find("data-key=\"summary.mean_ffn_per_token\" data-value=\"0.5000\""), std::string::npos);
  EXPECT_EQ(html.find("http://"), std::string::npos);  // nothing fetched from the network
  EXPECT_EQ(html.find("https://"), std::string::npos);
  size_t spans = 0;
  for (size_t at = html.find("class=\"tok\""); at != std::string::npos; at = html.find("class=\"tok\"", at + 1)) ++spans;
  EXPECT_EQ(spans, 2u);
}

}  // namespace
}  // namespace moepp
