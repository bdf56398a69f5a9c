// HTML is assembled as a string; all SVG geometry is computed here, the inline script only
// fills the hover panel from the embedded JSON.
#include "eval/html_report.h"

#include <algorithm>
#include <cmath>

#include <nlohmann/json.hpp>

#include "base/markup.h"
#include "base/status.h"

namespace moepp {
namespace {

const char* kCss = R"CSS(
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;margin:0;color:#1d2330;background:#f6f7f9}
main{max-width:1180px;margin:0 auto;padding:14px 18px 40px}
h1{font-size:21px;margin:0 0 2px}h2{font-size:15px;margin:0 0 8px;color:#2b3445}
.meta{color:#5b6577;margin:0 0 10px}
.card{background:#fff;border:1px solid #dfe3ea;border-radius:8px;padding:12px 14px;margin:0 0 12px}
.row{display:grid;grid-template-columns:minmax(0,3fr) minmax(0,2fr);gap:12px}
.chips{display:flex;flex-wrap:wrap;gap:8px;margin:0 0 12px}
.chip{background:#fff;border:1px solid #dfe3ea;border-radius:8px;padding:6px 10px}
.chip b{display:block;font-size:18px}
#tokens{font:13px/2.0 "DejaVu Sans Mono",Menlo,Consolas,monospace;white-space:pre-wrap;overflow-wrap:anywhere;max-height:330px;overflow:auto}
.tok{border-radius:3px;padding:1px 0;cursor:default}
.tok:hover{outline:2px solid #111}
#hover-panel{font-size:12px;max-height:330px;overflow:auto}
#hover-panel table td{padding:1px 6px 1px 0}
.k-ffn{color:#1f5fbf}.k-zero{color:#8a8f98}.k-copy{color:#1d8a5a}.k-constant{color:#b8641b}.k-none{color:#bbb}
table.data{border-collapse:collapse;font-size:12.5px}
table.data th,table.data td{border-bottom:1px solid #eceff3;padding:3px 9px;text-align:right}
table.data th:first-child,table.data td:first-child{text-align:left}
svg text{font:11px system-ui,"DejaVu Sans",sans-serif;fill:#3a4252}
.legend{display:flex;align-items:center;gap:8px;font-size:12px;color:#5b6577;margin:0 0 6px}
)CSS";

const char* kScript = R"JS(
(function(){
  var d = JSON.parse(document.getElementById('moepp-routes').textContent);
  var panel = document.getElementById('hover-panel');
  function esc(s){return String(s).replace(/[&<>"']/g,function(c){return {'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;',"'":'&#39;'}[c];});}
  function show(i){
    var h = '<b>token ' + i + '</b> ' + esc(d.shown[i]) + ' &middot; ' + d.ffn[i].toFixed(2) + ' FFN experts per layer<table>';
    for (var l = 0; l < d.layers.length; l++) {
      h += '<tr><td>L' + l + '</td>';
      for (var k = 0; k < d.layers[l][i].length; k++) {
        var e = d.layers[l][i][k], kind = e >= 0 ? d.kinds[l][e] : 'none';
        h += '<td class="k-' + kind + '">e' + e + ' ' + kind + ' ' + d.weights[l][i][k].toFixed(3) + '</td>';
      }
      h += '</tr>';
    }
    panel.innerHTML = h + '</table>';
  }
  document.getElementById('tokens').addEventListener('mouseover', function(ev){
    var t = ev.target.closest('.tok'); if (t) show(+t.getAttribute('data-i'));
  });
  if (d.ffn.length > 0) show(0);
})();
)JS";

const char* kKindColor[kExpertKinds] = {"#3b7dd8", "#a3a8b3", "#2fa36b", "#e08a2e"};

std::string fmt_int(int64_t v) { return std::to_string(v); }

// "data-key=... data-value=..." for an SVG element or a table cell.
std::string keyed(const std::string& key, const std::string& value) {
  return " data-key=\"" + html_escape(key) + "\" data-value=\"" + value + "\"";
}

std::string td_num(const std::string& key, double v) { return "<td" + keyed(key, report_number(v)) + ">" + report_number(v) + "</td>"; }
std::string td_int(const std::string& key, int64_t v) { return "<td" + keyed(key, fmt_int(v)) + ">" + fmt_int(v) + "</td>"; }

bool dark(const std::string& hex) {
  const unsigned v = static_cast<unsigned>(std::stoul(hex.substr(1), nullptr, 16));
  const double r = (v >> 16) & 255, g = (v >> 8) & 255, b = v & 255;
  return 0.299 * r + 0.587 * g + 0.114 * b < 140;
}

std::string legend_svg(int top_k) {
  std::string s = "<svg width=\"220\" height=\"24\" role=\"img\" aria-label=\"colour scale\"><defs><linearGradient id=\"ramp\">";
  for (int i = 0; i <= 10; ++i) s += str_format("<stop offset=\"%d%%\" stop-color=\"%s\"/>", i * 10, ramp_color(i / 10.0).c_str());
  s += "</linearGradient></defs><rect x=\"20\" y=\"2\" width=\"180\" height=\"10\" fill=\"url(#ramp)\" rx=\"2\"/>";
  s += "<text x=\"20\" y=\"23\" text-anchor=\"middle\">0</text>";
  s += str_format("<text x=\"200\" y=\"23\" text-anchor=\"middle\">%d</text></svg>", top_k);
  return s;
}

std::string heatmap_svg(const RouteRecord& r, const RouteStats& s) {
  int64_t n_exp = 0;
  for (const auto& k : r.kinds) n_exp = std::max<int64_t>(n_exp, static_cast<int64_t>(k.size()));
  const double slots = static_cast<double>(std::max<int64_t>(1, r.n_tokens * r.top_k));
  double max_share = 1e-12;
  for (const LayerRouteStats& ls : s.layers)
    for (int64_t v : ls.load) max_share = std::max(max_share, static_cast<double>(v) / slots);
  const double cw = std::clamp(560.0 / static_cast<double>(std::max<int64_t>(1, n_exp)), 8.0, 40.0);
  const double ch = std::clamp(300.0 / static_cast<double>(std::max<int64_t>(1, r.n_layers)), 6.0, 24.0);
  const double x0 = 40, y0 = 30;
  const double w = std::max(430.0, x0 + cw * static_cast<double>(n_exp) + 10), h = y0 + ch * static_cast<double>(r.n_layers) + 24;
  std::string o = str_format("<svg id=\"heatmap\" width=\"%.0f\" height=\"%.0f\" role=\"img\" aria-label=\"expert load per layer\">", w, h);
  for (int64_t e = 0; e < n_exp; ++e) {
    const ExpertKind kind = e < static_cast<int64_t>(r.kinds[0].size()) ? r.kinds[0][e] : ExpertKind::kFfn;
    o += str_format("<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%lld</text>", x0 + cw * (e + 0.5), y0 - 14, static_cast<long long>(e));
    o += str_format("<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"4\" fill=\"%s\"><title>%s</title></rect>", x0 + cw * e + 1, y0 - 8,
                    cw - 2, kKindColor[static_cast<int>(kind)], expert_kind_name(kind));
  }
  for (int64_t l = 0; l < r.n_layers; ++l) {
    o += str_format("<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">L%lld</text>", x0 - 4, y0 + ch * (l + 0.5) + 4, static_cast<long long>(l));
    const LayerRouteStats& ls = s.layers[l];
    for (size_t e = 0; e < ls.load.size(); ++e) {
      const double share = static_cast<double>(ls.load[e]) / slots;
      const char* kind = expert_kind_name(r.kinds[l][e]);
      o += str_format("<rect class=\"cell\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\"", x0 + cw * e, y0 + ch * l,
                      cw - 1, ch - 1, ramp_color(share / max_share).c_str());
      o += keyed(str_format("per_layer.%lld.load.%zu", static_cast<long long>(l), e), fmt_int(ls.load[e]));
      o += str_format("><title>layer %lld, expert %zu (%s): %lld slots, %.1f%%</title></rect>", static_cast<long long>(l), e, kind,
                      static_cast<long long>(ls.load[e]), 100.0 * share);
    }
  }
  o += str_format("<text x=\"%.1f\" y=\"%.1f\">colour: share of the layer's slots (max %.1f%%); bar: expert kind</text></svg>", x0,
                  h - 6, 100.0 * max_share);
  return o;
}

std::string histogram_svg(const RouteRecord& r, const RouteStats& s) {
  const size_t nb = s.ffn_histogram.size();
  int64_t max_v = 1;
  for (int64_t v : s.ffn_histogram) max_v = std::max(max_v, v);
  const double W = 420, H = 200, x0 = 36, y0 = 10, pw = W - x0 - 10, ph = H - y0 - 34;
  const double bw = pw / static_cast<double>(std::max<size_t>(1, nb));
  std::string o = str_format("<svg id=\"ffn-histogram\" width=\"%.0f\" height=\"%.0f\" role=\"img\" aria-label=\"FFN experts per token\">", W, H);
  o += str_format("<line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" stroke=\"#888\"/>", x0, y0 + ph, x0 + pw, y0 + ph);
  o += str_format("<text x=\"%.0f\" y=\"%.0f\" text-anchor=\"end\">%lld</text>", x0 - 4, y0 + 8, static_cast<long long>(max_v));
  const int label_every = static_cast<int>(std::ceil(static_cast<double>(nb) / 12.0));
  for (size_t i = 0; i < nb; ++i) {
    const double mean = r.n_layers > 0 ? static_cast<double>(i) / static_cast<double>(r.n_layers) : 0.0;
    const double bh = ph * static_cast<double>(s.ffn_histogram[i]) / static_cast<double>(max_v);
    const double t = r.top_k > 0 ? mean / r.top_k : 0.0;
    o += str_format("<rect class=\"bar\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\"", x0 + bw * i + 1, y0 + ph - bh,
                    std::max(1.0, bw - 2), bh, ramp_color(t).c_str());
    o += keyed(str_format("ffn_histogram.%zu", i), fmt_int(s.ffn_histogram[i]));
    o += str_format("><title>%.2f FFN experts per layer: %lld tokens</title></rect>", mean, static_cast<long long>(s.ffn_histogram[i]));
    if (static_cast<int>(i) % label_every == 0)
      o += str_format("<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%.2g</text>", x0 + bw * (i + 0.5), y0 + ph + 14, mean);
  }
  o += str_format("<text x=\"%.0f\" y=\"%.0f\" text-anchor=\"middle\">FFN experts per token (mean over layers)</text></svg>", x0 + pw / 2, H - 4);
  return o;
}

std::string kind_share_svg(const RouteStats& s) {
  const double W = 420, x0 = 40, bw = W - x0 - 10, bh = 14;
  const double H = 34 + (bh + 4) * static_cast<double>(s.layers.size());
  std::string o = str_format("<svg id=\"kind-share\" width=\"%.0f\" height=\"%.0f\" role=\"img\" aria-label=\"expert kinds per layer\">", W, H);
  double lx = x0;
  for (int k = 0; k < kExpertKinds; ++k) {
    o += str_format("<rect x=\"%.0f\" y=\"2\" width=\"10\" height=\"10\" fill=\"%s\"/><text x=\"%.0f\" y=\"11\">%s</text>", lx, kKindColor[k], lx + 14,
                    expert_kind_name(static_cast<ExpertKind>(k)));
    lx += 86;
  }
  for (size_t l = 0; l < s.layers.size(); ++l) {
    const double y = 22 + (bh + 4) * static_cast<double>(l);
    o += str_format("<text x=\"%.0f\" y=\"%.1f\" text-anchor=\"end\">L%zu</text>", x0 - 4, y + 11, l);
    double x = x0;
    for (int k = 0; k < kExpertKinds; ++k) {
      const double v = s.layers[l].kind_share[k];
      const char* kind = expert_kind_name(static_cast<ExpertKind>(k));
      o += str_format("<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.0f\" fill=\"%s\"", x, y, bw * v, bh, kKindColor[k]);
      o += keyed(str_format("per_layer.%zu.kind_share.%s", l, kind), report_number(v));
      o += str_format("><title>layer %zu: %s %.1f%%</title></rect>", l, kind, 100.0 * v);
      x += bw * v;
    }
  }
  return o + "</svg>";
}

}  // namespace

std::string script_safe_json(std::string_view j) {
  std::string out;
  out.reserve(j.size());
  for (size_t i = 0; i < j.size(); ++i) {
    if (j[i] == '<' && i + 1 < j.size() && j[i + 1] == '/') {
      out += "<\\/";
      ++i;
    } else if (j.substr(i, 3) == "\xE2\x80\xA8" || j.substr(i, 3) == "\xE2\x80\xA9") {
      out += j[i + 2] == '\xA8' ? "\\u2028" : "\\u2029";
      i += 2;
    } else {
      out += j[i];
    }
  }
  return out;
}

std::string display_piece(const TokenInfo& t) {
  if (t.piece.empty()) return "#" + std::to_string(t.id) + " ";
  if (t.cls == TokenClass::kByte) {
    if (t.piece == "<0x0A>") return "\xE2\x86\xB5\n";  // U+21B5 then the line break
    if (t.piece == "<0x09>") return "\t";
    return t.piece;
  }
  std::string out;
  for (size_t i = 0; i < t.piece.size();) {
    if (t.piece.compare(i, 3, "\xE2\x96\x81") == 0) out += ' ', i += 3;
    else if (t.piece.compare(i, 2, "\xC4\xA0") == 0) out += ' ', i += 2;
    else if (t.piece.compare(i, 2, "\xC4\x8A") == 0) out += "\xE2\x86\xB5\n", i += 2;  // byte-level BPE newline
    else out += t.piece[i++];
  }
  return out;
}

std::string report_number(double v) { return str_format("%.4f", v); }

std::string ramp_color(double t) {
  // viridis at 0, 0.25, 0.5, 0.75, 1 (light end first so text stays readable at low counts)
  static const double stops[5][3] = {{253, 231, 37}, {94, 201, 98}, {33, 145, 140}, {59, 82, 139}, {68, 1, 84}};
  t = std::clamp(std::isfinite(t) ? t : 0.0, 0.0, 1.0) * 4.0;
  const int i = std::min(3, static_cast<int>(t));
  const double f = t - i;
  int rgb[3];
  for (int c = 0; c < 3; ++c) rgb[c] = static_cast<int>(std::lround(stops[i][c] + (stops[i + 1][c] - stops[i][c]) * f));
  return str_format("#%02x%02x%02x", rgb[0], rgb[1], rgb[2]);
}

std::string render_route_report(const ReportInput& in) {
  const RouteRecord& r = *in.record;
  const RouteStats& s = *in.stats;
  const std::vector<TokenInfo>& toks = *in.tokens;
  std::string o;
  o += "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">";
  o += "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">";
  o += "<title>moepp routing report: " + html_escape(in.title) + "</title><style>" + kCss + "</style></head><body><main>\n";
  o += "<h1>Routing report</h1><p class=\"meta\">" + html_escape(in.title) +
       str_format(" &middot; %lld tokens &middot; %lld layers &middot; top-%d</p>\n", static_cast<long long>(r.n_tokens),
                  static_cast<long long>(r.n_layers), r.top_k);

  // Summary chips.
  o += "<section id=\"summary\" class=\"chips\">";
  o += "<div class=\"chip\">FFN experts per token<b" + keyed("summary.mean_ffn_per_token", report_number(s.mean_ffn)) + ">" +
       report_number(s.mean_ffn) + "</b></div>";
  for (int k = 0; k < kExpertKinds; ++k) {
    const char* kind = expert_kind_name(static_cast<ExpertKind>(k));
    o += std::string("<div class=\"chip\">share of slots: ") + kind + "<b" +
         keyed(std::string("summary.kind_share.") + kind, report_number(s.kind_share[k])) + ">" + report_number(s.kind_share[k]) + "</b></div>";
  }
  o += "</section>\n";

  // Text and hover panel.
  o += "<div class=\"row\"><section id=\"text\" class=\"card\"><h2>Text coloured by FFN experts per token</h2><div class=\"legend\">"
       "FFN experts per token (mean over layers)" + legend_svg(r.top_k) + "</div><div id=\"tokens\">";
  for (int64_t t = 0; t < r.n_tokens; ++t) {
    const TokenInfo info = t < static_cast<int64_t>(toks.size()) ? toks[t] : TokenInfo{};
    const std::string color = ramp_color(r.top_k > 0 ? s.ffn_per_token[t] / r.top_k : 0.0);
    std::string title = str_format("token %lld, id %d: %.2f FFN experts per layer", static_cast<long long>(t), info.id, s.ffn_per_token[t]);
    for (int64_t l = 0; l < r.n_layers; ++l) {
      title += str_format("\nL%lld:", static_cast<long long>(l));
      for (int k = 0; k < r.top_k; ++k) {
        const int32_t e = r.experts[r.at(l, t, k)];
        const char* kind = e >= 0 && e < static_cast<int32_t>(r.kinds[l].size()) ? expert_kind_name(r.kinds[l][e]) : "none";
        title += str_format(" e%d %s %.3f", e, kind, r.weights[r.at(l, t, k)]);
      }
    }
    o += str_format("<span class=\"tok\" data-i=\"%lld\"", static_cast<long long>(t)) + keyed(str_format("ffn_per_token.%lld", static_cast<long long>(t)), report_number(s.ffn_per_token[t])) +
         " style=\"background:" + color + (dark(color) ? ";color:#fff" : "") + "\" title=\"" + html_escape(title) + "\">" +
         html_escape(display_piece(info)) + "</span>";
  }
  o += "</div></section>\n<section class=\"card\"><h2>Routing of the token under the pointer</h2><div id=\"hover-panel\"></div></section></div>\n";

  // Heat map and histograms.
  o += "<div class=\"row\"><section id=\"load\" class=\"card\"><h2>Expert load per layer</h2>" + heatmap_svg(r, s) + "</section>";
  o += "<section id=\"histograms\" class=\"card\"><h2>FFN experts per token</h2>" + histogram_svg(r, s) +
       "<h2>Expert kinds chosen, per layer</h2>" + kind_share_svg(s) + "</section></div>\n";

  // Tables.
  o += "<div class=\"row\"><section id=\"by-class\" class=\"card\"><h2>By token class</h2><table id=\"class-table\" class=\"data\">"
       "<tr><th>class</th><th>tokens</th><th>FFN experts per token</th></tr>";
  for (const GroupStats& g : s.by_class)
    o += "<tr><td>" + html_escape(g.label) + "</td>" + td_int("by_class." + g.label + ".count", g.count) +
         td_num("by_class." + g.label + ".mean_ffn", g.mean_ffn) + "</tr>";
  o += "</table></section>\n<section id=\"by-token\" class=\"card\"><h2>Tokens with the fewest and the most FFN experts</h2>"
       "<table id=\"token-table\" class=\"data\"><tr><th>token</th><th>id</th><th>count</th><th>FFN experts per token</th></tr>";
  const size_t n = s.by_token.size(), show = 12;
  for (size_t i = 0; i < n; ++i) {
    if (i >= show && i + show < n) {
      if (i == show) o += "<tr><td colspan=\"4\">&hellip;</td></tr>";
      continue;
    }
    const GroupStats& g = s.by_token[i];
    TokenInfo ti;
    ti.id = g.id;
    ti.piece = g.label[0] == '#' ? "" : g.label;
    ti.cls = g.cls;
    const std::string key = "by_token." + std::to_string(g.id);
    o += "<tr><td>" + html_escape(display_piece(ti)) + "</td><td>" + std::to_string(g.id) + "</td>" + td_int(key + ".count", g.count) +
         td_num(key + ".mean_ffn", g.mean_ffn) + "</tr>";
  }
  o += "</table></section></div>\n";

  o += "<section id=\"per-layer\" class=\"card\"><h2>Per layer</h2><table id=\"layer-table\" class=\"data\"><tr><th>layer</th>"
       "<th>FFN experts per token</th><th>ffn</th><th>zero</th><th>copy</th><th>constant</th><th>weight mean</th><th>weight variance</th>"
       "<th>top-1 weight mean</th><th>top-1 weight variance</th><th>router score variance</th></tr>";
  for (size_t l = 0; l < s.layers.size(); ++l) {
    const LayerRouteStats& ls = s.layers[l];
    const std::string key = "per_layer." + std::to_string(l) + ".";
    o += "<tr><td>L" + std::to_string(l) + "</td>" + td_num(key + "mean_ffn", ls.mean_ffn);
    for (int k = 0; k < kExpertKinds; ++k)
      o += td_num(key + "kind_share." + expert_kind_name(static_cast<ExpertKind>(k)), ls.kind_share[k]);
    o += td_num(key + "weight_mean", ls.weight_mean) + td_num(key + "weight_var", ls.weight_var) + td_num(key + "top1_mean", ls.top1_mean) +
         td_num(key + "top1_var", ls.top1_var) + td_num(key + "score_var", ls.score_var) + "</tr>";
  }
  o += "</table><p class=\"meta\">Shares count (token, slot) pairs. Weights are the routing weights applied to expert outputs "
       "; their variances are over tokens and slots. Router score variance: per token, the variance of the router's "
       "probabilities over all experts (higher = more decided), averaged over tokens.</p></section>\n";

  // Data for the hover panel.
  nlohmann::json d;
  nlohmann::json shown = nlohmann::json::array(), kinds = nlohmann::json::array(), layers = nlohmann::json::array(),
                 weights = nlohmann::json::array();
  for (int64_t t = 0; t < r.n_tokens; ++t) shown.push_back(display_piece(t < static_cast<int64_t>(toks.size()) ? toks[t] : TokenInfo{}));
  for (int64_t l = 0; l < r.n_layers; ++l) {
    nlohmann::json kl = nlohmann::json::array(), le = nlohmann::json::array(), lw = nlohmann::json::array();
    for (ExpertKind k : r.kinds[l]) kl.push_back(expert_kind_name(k));
    for (int64_t t = 0; t < r.n_tokens; ++t) {
      nlohmann::json e = nlohmann::json::array(), w = nlohmann::json::array();
      for (int k = 0; k < r.top_k; ++k) {
        e.push_back(r.experts[r.at(l, t, k)]);
        w.push_back(std::round(r.weights[r.at(l, t, k)] * 1e4) / 1e4);
      }
      le.push_back(e);
      lw.push_back(w);
    }
    kinds.push_back(kl);
    layers.push_back(le);
    weights.push_back(lw);
  }
  d["shown"] = shown;
  d["kinds"] = kinds;
  d["layers"] = layers;
  d["weights"] = weights;
  d["ffn"] = s.ffn_per_token;
  o += "<script type=\"application/json\" id=\"moepp-routes\">" +
       script_safe_json(d.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)) + "</script>\n";
  o += std::string("<script>") + kScript + "</script>\n</main></body></html>\n";
  return o;
}

}  // namespace moepp
