// The SVG is written as text: a few lines, rectangles and polylines need no plotting library
// (Debian has none for C++ that writes SVG without a display stack).
#include "bench/chart_svg.h"

#include <algorithm>
#include <cmath>
#include <map>

#include "base/markup.h"
#include "base/status.h"
#include "base/utf8.h"

namespace moepp {
namespace {

constexpr double kWidth = 860;
constexpr const char* kPalette[] = {"#1f5fbf", "#d2691e", "#2e8b57", "#8b3a9e", "#b22222", "#008b8b", "#6b6b00", "#555555"};
constexpr const char* kStyle =
    "<style>text{font:12px system-ui,'DejaVu Sans',sans-serif;fill:#2b3445}.title{font-size:14px;font-weight:600}"
    ".halo{paint-order:stroke;stroke:#fff;stroke-width:3px}.axis{stroke:#8a93a3;stroke-width:1}.grid{stroke:#e3e6ec;stroke-width:1}</style>";

// Axis ticks: a step of 1, 2 or 5 times a power of ten giving about `n` steps up to `top`.
double tick_step(double top, int n) {
  const double raw = top / n, base = std::pow(10.0, std::floor(std::log10(raw)));
  for (double m : {1.0, 2.0, 5.0})
    if (raw <= m * base) return m * base;
  return 10 * base;
}

// A plot area mapping data (x in [0, x_max], y in [0, y_max]) to pixels.
struct Frame {
  double left, top, width, height, x_max, y_max;
  double px(double x) const { return left + width * x / x_max; }
  double py(double y) const { return top + height * (1 - y / y_max); }
};

std::string axes(const Frame& f, const std::string& x_label, const std::string& y_label) {
  std::string o;
  const double xs = tick_step(f.x_max, 8), ys = tick_step(f.y_max, 6);
  for (double y = 0; y <= f.y_max + 1e-9; y += ys) {
    o += str_format("<line class=\"grid\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>", f.left, f.py(y), f.left + f.width, f.py(y));
    o += str_format("<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%g</text>", f.left - 6, f.py(y) + 4, y);
  }
  for (double x = 0; x <= f.x_max + 1e-9; x += xs)
    o += str_format("<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%g</text>", f.px(x), f.top + f.height + 16, x);
  o += str_format("<line class=\"axis\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>", f.left, f.top + f.height,
                  f.left + f.width, f.top + f.height);
  o += str_format("<line class=\"axis\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>", f.left, f.top, f.left, f.top + f.height);
  o += str_format("<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>", f.left + f.width / 2, f.top + f.height + 34,
                  html_escape(x_label).c_str());
  o += str_format("<text transform=\"translate(%.1f %.1f) rotate(-90)\" text-anchor=\"middle\">%s</text>", f.left - 40,
                  f.top + f.height / 2, html_escape(y_label).c_str());
  return o;
}

// A row's name as XML text: a checkpoint path is bytes, and XML allows neither control characters
// nor malformed UTF-8 (either would make the whole file unreadable), so those become '?'.
std::string row_name(const BenchRow& r) {
  std::string name = str_format("%s %s t=%d %s", r.model.c_str(), r.weights.c_str(), r.threads, r.test.c_str());
  if (r.zc_target >= 0 && !r.compare) name += str_format(" zc=%.2f", r.zc_target);  // pp/tg rows of each --zc-share
  const bool utf8 = is_valid_utf8(name);
  for (char& c : name)
    if (static_cast<unsigned char>(c) < 0x20 || (!utf8 && static_cast<unsigned char>(c) >= 0x80)) c = '?';
  return name;
}

std::string polyline(const std::vector<std::pair<double, double>>& pixels, const char* color, const char* extra) {
  if (pixels.size() < 2) return {};
  std::string points;
  for (const auto& [x, y] : pixels) points += str_format("%s%.1f,%.1f", points.empty() ? "" : " ", x, y);
  return str_format("<polyline fill=\"none\" stroke=\"%s\" %s points=\"%s\"/>", color, extra, points.c_str());
}

// --compare-vanilla rows: one series per (model, weights, threads, test), points at the measured share.
std::string speedup_panel(const std::vector<const BenchRow*>& rows, double top, double* height) {
  std::map<std::string, std::vector<const BenchRow*>> series;
  std::vector<std::string> order;  // series in the order their first row came
  double x_top = 0, y_top = 1;
  for (const BenchRow* r : rows) {
    const std::string key = row_name(*r);
    if (!series.count(key)) order.push_back(key);
    series[key].push_back(r);
    x_top = std::max(x_top, r->zc_share);
    y_top = std::max({y_top, r->expert_speedup, r->roofline_speedup, r->ffn_work_ratio});
  }
  const double x_max = std::min(1.0, std::ceil((x_top + 0.05) * 10) / 10);
  const double y_max = std::ceil(y_top * 1.1 * 2) / 2;
  const Frame f{70, top + 30, 420, 260, x_max, y_max};
  std::string o = str_format("<text class=\"title\" x=\"%.0f\" y=\"%.0f\">MoE++ layer against its vanilla twin: speed-up as the zero-computation share grows</text>",
                             10.0, top + 16);
  o += axes(f, "share of slots on zero-computation experts", "expert-layer speed-up");
  // The FFN-work ratio a share implies, 1 / (1 - share) (the vanilla layer's FFN slots over MoE++'s).
  std::vector<std::pair<double, double>> ideal;
  for (int i = 0; i <= 100; ++i) {
    const double x = x_max * i / 100, y = 1 / (1 - std::min(x, 0.999));
    if (y > y_max) break;
    ideal.push_back({f.px(x), f.py(y)});
  }
  o += polyline(ideal, "#8a93a3", "stroke-width=\"1.5\" stroke-dasharray=\"6 4\"");
  double legend_y = f.top + 8;
  const double legend_x = f.left + f.width + 20;
  o += str_format("<line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" stroke=\"#8a93a3\" stroke-width=\"1.5\" stroke-dasharray=\"6 4\"/>"
                  "<text x=\"%.0f\" y=\"%.0f\">FFN-work ratio, 1 / (1 - share)</text>",
                  legend_x, legend_y, legend_x + 24, legend_y, legend_x + 30, legend_y + 4);
  legend_y += 18;
  o += str_format("<line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" stroke=\"#2b3445\" stroke-dasharray=\"2 3\"/>"
                  "<text x=\"%.0f\" y=\"%.0f\">roofline's speed-up (dotted)</text>",
                  legend_x, legend_y, legend_x + 24, legend_y, legend_x + 30, legend_y + 4);
  legend_y += 22;
  for (size_t s = 0; s < order.size(); ++s) {
    std::vector<const BenchRow*> points = series[order[s]];
    std::sort(points.begin(), points.end(), [](const BenchRow* a, const BenchRow* b) { return a->zc_share < b->zc_share; });
    const char* color = kPalette[s % std::size(kPalette)];
    const std::string name = html_escape(order[s]);
    std::vector<std::pair<double, double>> measured, roofline;
    // A speed-up that could not be measured (0) is left out rather than drawn on the axis.
    points.erase(std::remove_if(points.begin(), points.end(), [](const BenchRow* r) { return r->expert_speedup <= 0; }),
                 points.end());
    for (const BenchRow* r : points) {
      measured.push_back({f.px(r->zc_share), f.py(r->expert_speedup)});
      if (r->roofline_speedup > 0) roofline.push_back({f.px(r->zc_share), f.py(r->roofline_speedup)});
    }
    o += polyline(roofline, color, "stroke-width=\"1.2\" stroke-dasharray=\"2 3\"");
    o += polyline(measured, color, "stroke-width=\"2\"");
    for (const BenchRow* r : points)
      o += str_format("<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4\" fill=\"%s\"><title>%s, zero-computation share %.3f: speed-up %.3f, "
                      "FFN-work ratio %.3f, roofline's %.3f</title></circle>",
                      f.px(r->zc_share), f.py(r->expert_speedup), color, name.c_str(), r->zc_share,
                      r->expert_speedup, r->ffn_work_ratio, r->roofline_speedup);
    o += str_format("<rect x=\"%.0f\" y=\"%.0f\" width=\"24\" height=\"4\" fill=\"%s\"/><text x=\"%.0f\" y=\"%.0f\">%s</text>", legend_x,
                    legend_y - 2, color, legend_x + 30, legend_y + 4, name.c_str());
    legend_y += 18;
  }
  *height = std::max(f.top + f.height + 48, legend_y + 10) - top;
  return o;
}

// pp/tg rows: a bar per row, tg against the read, pp against the peak its flop_share names.
std::string shares_panel(const std::vector<const BenchRow*>& rows, double top, double* height) {
  constexpr double kBar = 16, kPitch = 24;
  double x_top = 1;
  for (const BenchRow* r : rows) x_top = std::max({x_top, r->bw_share, r->flop_share});
  const double x_max = std::ceil(x_top * 1.05 * 10) / 10;
  const Frame f{310, top + 50, 440, kPitch * static_cast<double>(rows.size()), x_max, 1};
  std::string o = str_format("<text class=\"title\" x=\"10\" y=\"%.0f\">Share of the machine's measured limits: "
                             "decode (tg) of the read, prefill (pp) of the arithmetic peak</text>",
                             top + 16);
  const double xs = tick_step(x_max, 6);
  for (double x = 0; x <= x_max + 1e-9; x += xs) {
    o += str_format("<line class=\"grid\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>", f.px(x), f.top - 4, f.px(x), f.top + f.height);
    o += str_format("<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%g</text>", f.px(x), f.top + f.height + 16, x);
  }
  o += str_format("<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#b22222\" stroke-width=\"1.5\"/>", f.px(1), f.top - 8,
                  f.px(1), f.top + f.height);
  o += str_format("<text class=\"halo\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" fill=\"#b22222\">the limit</text>", f.px(1), f.top - 12);
  for (size_t i = 0; i < rows.size(); ++i) {
    const BenchRow& r = *rows[i];
    const bool decode = r.test.rfind("tg", 0) == 0;
    const double share = decode ? r.bw_share : r.flop_share;
    const std::string limit = decode ? "read" : r.peak + " peak";
    std::string label = row_name(r);
    if (label.size() > 44) {  // a checkpoint's long path: its end, from a character's first byte
      size_t from = label.size() - 41;
      while (from < label.size() && (static_cast<unsigned char>(label[from]) & 0xc0) == 0x80) ++from;
      label = "..." + label.substr(from);
    }
    const std::string name = html_escape(label), limit_name = html_escape(limit);
    const double y = f.top + kPitch * static_cast<double>(i);
    o += str_format("<text x=\"%.0f\" y=\"%.1f\" text-anchor=\"end\">%s</text>", f.left - 8, y + kBar - 4, name.c_str());
    o += str_format("<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.0f\" fill=\"%s\"><title>%s: %.1f tok/s, %.3f of the %s"
                    "</title></rect>",
                    f.left, y, f.px(share) - f.left, kBar, decode ? kPalette[0] : kPalette[1], name.c_str(), r.tok_s, share,
                    limit_name.c_str());
    o += str_format("<text class=\"halo\" x=\"%.1f\" y=\"%.1f\">%.2f of the %s</text>", f.px(share) + 4, y + kBar - 4, share,
                    limit_name.c_str());
  }
  *height = f.top + f.height + 30 - top;
  return o;
}

}  // namespace

std::string bench_chart_svg(const std::vector<BenchRow>& given) {
  if (given.empty()) return {};
  // A rate that could not be measured (a zero time, no limit) may be infinite or NaN: taken as 0
  // (a bar of no length, a speed-up point left out), so that every coordinate is a number. The
  // zero-computation share stays under 1, where 1 / (1 - share) is finite.
  std::vector<BenchRow> rows = given;
  auto finite = [](double& v) { v = std::isfinite(v) && v > 0 ? v : 0; };
  for (BenchRow& r : rows) {
    for (double* v : {&r.expert_speedup, &r.roofline_speedup, &r.ffn_work_ratio, &r.bw_share, &r.flop_share, &r.tok_s}) finite(*v);
    finite(r.zc_share);
    r.zc_share = std::min(r.zc_share, 0.999);
  }
  std::vector<const BenchRow*> compare, model;
  for (const BenchRow& r : rows) (r.compare ? compare : model).push_back(&r);
  std::string body;
  double y = 0;
  if (!compare.empty()) {
    double h = 0;
    body += speedup_panel(compare, y, &h);
    y += h + 10;
  }
  if (!model.empty()) {
    double h = 0;
    body += shares_panel(model, y, &h);
    y += h + 10;
  }
  return str_format("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\">", kWidth, y,
                    kWidth, y) +
         kStyle + "<rect width=\"100%\" height=\"100%\" fill=\"#fff\"/>" + body + "</svg>\n";
}

}  // namespace moepp
