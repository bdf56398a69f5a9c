// Stop strings over text that arrives in arbitrary pieces.
#include <gtest/gtest.h>

#include "server/stop_strings.h"

namespace moepp::server {
namespace {

// Feeds `pieces`, returns everything released and whether a stop string was seen.
std::pair<std::string, bool> run(std::vector<std::string> stops, const std::vector<std::string>& pieces) {
  StopStringFilter f(std::move(stops));
  std::string out;
  bool stopped = false;
  for (const auto& p : pieces) {
    out += f.push(p, &stopped);
    if (stopped) return {out, true};
  }
  return {out + f.flush(), false};
}

TEST(StopStrings, CutsAtTheFirstStopEvenAcrossPieces) {
  EXPECT_EQ(run({"END"}, {"hello E", "N", "D world"}), std::make_pair(std::string("hello "), true));
  EXPECT_EQ(run({"\n\n", "###"}, {"a#", "#", "b\n", "\nc"}), std::make_pair(std::string("a##b"), true));
  EXPECT_EQ(run({"y", "xyz"}, {"axyz"}), std::make_pair(std::string("a"), true));  // earliest match wins, not first listed
}

TEST(StopStrings, HeldBackTextIsReleasedWhenItTurnsOutHarmless) {
  StopStringFilter f({"STOP"});
  bool stopped = false;
  EXPECT_EQ(f.push("abcST", &stopped), "abc");
  EXPECT_EQ(f.push("O", &stopped), "");
  EXPECT_EQ(f.push("x", &stopped), "STOx");
  EXPECT_FALSE(stopped);
  EXPECT_EQ(f.push("ST", &stopped), "");
  EXPECT_EQ(f.flush(), "ST");
}

TEST(StopStrings, NoStopsPassesEverythingAndMultibyteStaysWhole) {
  EXPECT_EQ(run({}, {"a", "b"}), std::make_pair(std::string("ab"), false));
  // The stop begins with a 3-byte character; the text before it is released whole.
  EXPECT_EQ(run({"€uro"}, {"5 €", "ur", "o!"}), std::make_pair(std::string("5 "), true));
}

TEST(StopStrings, NothingAfterStop) {
  StopStringFilter f({"x"});
  bool stopped = false;
  EXPECT_EQ(f.push("axb", &stopped), "a");
  EXPECT_TRUE(stopped);
  EXPECT_EQ(f.push("more", &stopped), "");
  EXPECT_TRUE(stopped);
  EXPECT_EQ(f.flush(), "");
}

}  // namespace
}  // namespace moepp::server
