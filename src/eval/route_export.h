// Routing results as JSON (the `moepp routes --json` file) and CSV (one row per token, layer
// and slot) for plotting elsewhere. Formats are documented in docs/evaluation.md.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "eval/route_stats.h"

namespace moepp {

// Token pieces may hold invalid UTF-8 (byte tokens); dump with error_handler_t::replace.
nlohmann::json route_report_json(const std::string& model_name, const RouteRecord& record,
                                 const std::vector<TokenInfo>& tokens, const RouteStats& stats);

// Header "token,id,piece,class,layer,slot,expert,kind,weight"; fields quoted as RFC 4180 says.
std::string route_csv(const RouteRecord& record, const std::vector<TokenInfo>& tokens);
std::string csv_field(const std::string& text);

}  // namespace moepp
