#include "eval/ffn_text.h"

#include <gtest/gtest.h>

namespace moepp {
namespace {

TEST(FfnText, MarksTokensAtOrBelowHalfTheFfnWork) {
  const std::vector<std::string> texts = {"The", " whale", "", "!", " sea"};
  const std::vector<double> ffn = {2.0, 0.5, 0.0, 1.0, 1.25};
  // The empty text (a token inside a UTF-8 character) is never marked.
  EXPECT_EQ(render_ffn_text(texts, ffn, 2, /*color=*/false), "The[ whale]0.5[!]1.0 sea");
}

TEST(FfnText, ColoursByShareOfTopK) {
  const std::vector<std::string> texts = {"a", "b", "c", "d"};
  const std::vector<double> ffn = {0.25, 0.75, 1.5, 2.0};
  EXPECT_EQ(render_ffn_text(texts, ffn, 2, /*color=*/true),
            "\x1b[42;30ma\x1b[0m\x1b[46;30mb\x1b[0m\x1b[43;30mc\x1b[0md");
}

TEST(FfnText, LegendNamesTopK) {
  EXPECT_NE(ffn_text_legend(2, false).find("of 2"), std::string::npos);
  EXPECT_NE(ffn_text_legend(4, true).find("under 2.0"), std::string::npos);
}

}  // namespace
}  // namespace moepp
