// Text placed in HTML or SVG (XML) documents: the routing report and the bench's charts.
#pragma once

#include <string>
#include <string_view>

namespace moepp {

// Escapes & < > " ' for HTML/XML text and attribute values.
std::string html_escape(std::string_view text);

}  // namespace moepp
