// Stop strings over streamed text: text is released as soon as it cannot be the start of a stop
// string, and everything from the first stop string on is cut off.
#pragma once

#include <string>
#include <vector>

namespace moepp::server {

class StopStringFilter {
 public:
  explicit StopStringFilter(std::vector<std::string> stops) : stops_(std::move(stops)) {}

  // Appends `text`; returns what may be sent now. Sets *stopped once a stop string appeared
  // (the returned text then ends just before it, and later calls return nothing).
  std::string push(const std::string& text, bool* stopped);
  // At the end of generation: the text held back because it began like a stop string.
  std::string flush();

 private:
  std::vector<std::string> stops_;
  std::string pending_;
  bool stopped_ = false;
};

}  // namespace moepp::server
