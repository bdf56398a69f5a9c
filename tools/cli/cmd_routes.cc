// `moepp routes -m DIR -f TEXT|--ids ... [--json OUT] [--html OUT] [--csv OUT]`: which experts
// every token chose on every layer, summary statistics, and the HTML routing report.
#include <cstdio>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "cli_common.h"
#include "commands.h"
#include "generation_flags.h"
#include "eval/html_report.h"
#include "eval/route_export.h"
#include "eval/route_recorder.h"
#include "eval/route_stats.h"
#include "eval/token_input.h"
#include "models/model.h"
#include "platform/durable_file.h"
#include "tokenizer/tokenizer.h"

namespace moepp::cli {
namespace {

struct RoutesOptions {
  std::string model_dir, json_out, html_out, csv_out, title;
  TokenInput input;
  ModelFlags model;
  int64_t ctx = 0, batch_tokens = 512;
  int threads = 0;
};

Status write_text(const std::string& path, const std::string& text) { return write_file_replacing(path, text.data(), text.size()); }

int run_routes(const RoutesOptions& o) {
  if (o.batch_tokens < 1) return fail(Status::Error("--batch-tokens: expected a positive number, got " + std::to_string(o.batch_tokens)));
  auto load_options = o.model.load_options();
  if (!load_options.ok()) return fail(load_options.status());
  // A tokenizer is needed for text and, when there is one, names the tokens of an id input.
  std::unique_ptr<Tokenizer> tok;
  auto t = load_tokenizer(o.model_dir);
  if (t.ok()) tok = std::move(t.value());
  else if (o.input.has_text()) return fail(t.status());
  auto ids = load_token_input(o.input, tok.get());
  if (!ids.ok()) return fail(ids.status());
  ThreadPool pool(thread_count(o.threads));  // also converts and quantises the weights while loading
  load_options->pool = &pool;
  auto loaded = Model::load(o.model_dir, *load_options);
  if (!loaded.ok()) return fail(loaded.status());
  const Model& model = *loaded.value();
  const int64_t max_pos = model.config().max_position_embeddings;
  const int64_t ctx = o.ctx > 0 ? o.ctx : (max_pos > 0 ? std::min<int64_t>(max_pos, 4096) : 2048);
  auto record = record_routes(pool, model, *ids, ctx, o.batch_tokens, /*progress=*/true);
  if (!record.ok()) return fail(record.status());

  std::vector<TokenInfo> tokens;
  for (int32_t id : *ids) {
    TokenInfo info;
    info.id = id;
    if (tok && id < tok->vocab_size()) {
      info.piece = tok->piece(id);
      info.cls = classify_piece(info.piece, tok->is_special(id));
    }
    tokens.push_back(std::move(info));
  }
  const RouteStats stats = compute_route_stats(*record, tokens);
  const std::string title = o.title.empty() ? o.model_dir : o.title;
  if (!o.json_out.empty()) {
    const nlohmann::json j = route_report_json(title, *record, tokens, stats);
    Status s = write_text(o.json_out, j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");
    if (!s.ok()) return fail(s);
  }
  if (!o.html_out.empty()) {
    Status s = write_text(o.html_out, render_route_report({title, &*record, &tokens, &stats}));
    if (!s.ok()) return fail(s);
  }
  if (!o.csv_out.empty()) {
    Status s = write_text(o.csv_out, route_csv(*record, tokens));
    if (!s.ok()) return fail(s);
  }
  std::printf("%lld tokens, %lld layers, top-%d\n", static_cast<long long>(record->n_tokens), static_cast<long long>(record->n_layers),
              record->top_k);
  std::printf("FFN experts per token (mean over layers): %.4f\n", stats.mean_ffn);
  std::printf("share of slots: ffn %.4f, zero %.4f, copy %.4f, constant %.4f\n", stats.kind_share[0], stats.kind_share[1],
              stats.kind_share[2], stats.kind_share[3]);
  for (const GroupStats& g : stats.by_class)
    std::printf("  %-12s %8lld tokens  %.4f FFN experts per token\n", g.label.c_str(), static_cast<long long>(g.count), g.mean_ffn);
  return 0;
}

}  // namespace

Runner add_routes_command(CLI::App& app) {
  auto o = std::make_shared<RoutesOptions>();
  CLI::App* sub = app.add_subcommand("routes", "Routing analysis: experts per token and layer, statistics, HTML report");
  sub->add_option("-m,--model", o->model_dir, "Model directory")->required();
  add_token_input_flags(sub, &o->input);
  sub->add_option("--json", o->json_out, "Write routes and statistics as JSON (see docs/evaluation.md)");
  sub->add_option("--html", o->html_out, "Write the self-contained HTML routing report");
  sub->add_option("--csv", o->csv_out, "Write one CSV row per token, layer and slot");
  sub->add_option("--title", o->title, "Name shown in the report (default: the model directory)");
  sub->add_option("--ctx", o->ctx, "Tokens per independent window (default: max_position_embeddings, at most 4096)");
  sub->add_option("--batch-tokens", o->batch_tokens, "Tokens per forward pass (windows are packed together)")->capture_default_str();
  o->model.add_to(sub);
  add_threads_option(sub, &o->threads);
  return [o] { return run_routes(*o); };
}

}  // namespace moepp::cli

namespace moepp::cli {
MOEPP_REGISTER_COMMAND(62, add_routes_command);
}  // namespace moepp::cli
