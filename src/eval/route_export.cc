// JSON mirrors RouteRecord / RouteStats field by field; the HTML report shows the same numbers.
#include "eval/route_export.h"

#include "base/status.h"

namespace moepp {
namespace {

using nlohmann::json;

json kind_shares(const std::array<double, kExpertKinds>& share) {
  json j = json::object();
  for (int i = 0; i < kExpertKinds; ++i) j[expert_kind_name(static_cast<ExpertKind>(i))] = share[i];
  return j;
}

json group_json(const GroupStats& g, bool by_token) {
  json j = {{"count", g.count}, {"mean_ffn", g.mean_ffn}, {"class", token_class_name(g.cls)}};
  if (by_token) {
    j["id"] = g.id;
    j["piece"] = g.label;
  }
  return j;
}

}  // namespace

json route_report_json(const std::string& model_name, const RouteRecord& r, const std::vector<TokenInfo>& tokens,
                       const RouteStats& s) {
  json j;
  j["model"] = model_name;
  j["n_layers"] = r.n_layers;
  j["n_tokens"] = r.n_tokens;
  j["top_k"] = r.top_k;
  json ids = json::array(), pieces = json::array(), classes = json::array();
  for (const TokenInfo& t : tokens) {
    ids.push_back(t.id);
    pieces.push_back(t.piece);
    classes.push_back(token_class_name(t.cls));
  }
  j["tokens"] = ids;
  j["pieces"] = pieces;
  j["classes"] = classes;
  json kinds = json::array();
  for (const auto& layer : r.kinds) {
    json k = json::array();
    for (ExpertKind e : layer) k.push_back(expert_kind_name(e));
    kinds.push_back(k);
  }
  j["kinds"] = kinds;
  // Same shape as `moepp logits --routes`: [layer][token][slot].
  json layers = json::array(), weights = json::array();
  for (int64_t l = 0; l < r.n_layers; ++l) {
    json le = json::array(), lw = json::array();
    for (int64_t t = 0; t < r.n_tokens; ++t) {
      json e = json::array(), w = json::array();
      for (int k = 0; k < r.top_k; ++k) {
        e.push_back(r.experts[r.at(l, t, k)]);
        w.push_back(r.weights[r.at(l, t, k)]);
      }
      le.push_back(e);
      lw.push_back(w);
    }
    layers.push_back(le);
    weights.push_back(lw);
  }
  j["layers"] = layers;
  j["weights"] = weights;
  j["ffn_per_token"] = s.ffn_per_token;
  j["summary"] = {{"mean_ffn_per_token", s.mean_ffn}, {"kind_share", kind_shares(s.kind_share)}};
  json per_layer = json::array();
  for (const LayerRouteStats& ls : s.layers)
    per_layer.push_back({{"load", ls.load},
                         {"kind_share", kind_shares(ls.kind_share)},
                         {"mean_ffn", ls.mean_ffn},
                         {"weight_mean", ls.weight_mean},
                         {"weight_var", ls.weight_var},
                         {"top1_mean", ls.top1_mean},
                         {"top1_var", ls.top1_var},
                         {"score_var", ls.score_var}});
  j["per_layer"] = per_layer;
  j["ffn_histogram"] = s.ffn_histogram;
  json by_token = json::array(), by_class = json::array();
  for (const GroupStats& g : s.by_token) by_token.push_back(group_json(g, true));
  for (const GroupStats& g : s.by_class) by_class.push_back(group_json(g, false));
  j["by_token"] = by_token;
  j["by_class"] = by_class;
  return j;
}

std::string csv_field(const std::string& text) {
  if (text.find_first_of(",\"\r\n") == std::string::npos) return text;
  std::string out = "\"";
  for (char c : text) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

std::string route_csv(const RouteRecord& r, const std::vector<TokenInfo>& tokens) {
  std::string out = "token,id,piece,class,layer,slot,expert,kind,weight,score_var\n";
  for (int64_t t = 0; t < r.n_tokens; ++t) {
    const bool known = t < static_cast<int64_t>(tokens.size());
    const std::string prefix = std::to_string(t) + "," + (known ? std::to_string(tokens[t].id) : "") + "," +
                               csv_field(known ? tokens[t].piece : "") + "," +
                               (known ? token_class_name(tokens[t].cls) : "unknown") + ",";
    for (int64_t l = 0; l < r.n_layers; ++l)
      for (int k = 0; k < r.top_k; ++k) {
        const int32_t e = r.experts[r.at(l, t, k)];
        const char* kind = e >= 0 && e < static_cast<int32_t>(r.kinds[l].size()) ? expert_kind_name(r.kinds[l][e]) : "none";
        const float score_var = r.score_var.empty() ? 0.0f : r.score_var[static_cast<size_t>(l * r.n_tokens + t)];
        out += prefix + str_format("%lld,%d,%d,%s,%.9g,%.9g\n", static_cast<long long>(l), k, e, kind, r.weights[r.at(l, t, k)], score_var);
      }
  }
  return out;
}

}  // namespace moepp
