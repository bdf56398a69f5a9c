// The routing report: one self-contained HTML page (inline CSS, SVG and a little JS; no network)
// with the text coloured by FFN experts per token, a layer x expert load heat map, histograms
// and the tables of route_stats. Every number shown carries data-key naming its JSON field.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "eval/route_stats.h"

namespace moepp {

// A JSON text made safe inside <script>: "</" becomes "<\/", U+2028/9 escaped.
std::string script_safe_json(std::string_view json_text);
// How a piece is shown: word markers as spaces, <0x0A> as a return symbol, "#id" without a piece.
std::string display_piece(const TokenInfo& token);
// Fixed format used for every number in the report ("%.4f").
std::string report_number(double v);
// Colour of an FFN-expert count t in [0, 1] of the scale (a viridis-like ramp), "#rrggbb".
std::string ramp_color(double t);

struct ReportInput {
  std::string title;  // model name or directory
  const RouteRecord* record = nullptr;
  const std::vector<TokenInfo>* tokens = nullptr;
  const RouteStats* stats = nullptr;
};

std::string render_route_report(const ReportInput& input);

}  // namespace moepp
