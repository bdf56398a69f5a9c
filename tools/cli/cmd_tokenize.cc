// `moepp tokenize` (text -> ids as one JSON array) and `moepp detokenize` (ids -> text).
#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>
#include <memory>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include "cli_common.h"
#include "commands.h"
#include "tokenizer/tokenizer.h"

namespace moepp::cli {
namespace {

struct TokenizeOptions {
  std::string model, prompt, file;
  bool no_bos = false;
  bool pieces = false;
  bool no_parse_special = false;
};

struct DetokenizeOptions {
  std::string model, ids;
  bool skip_special = false;
};

int run_tokenize(const TokenizeOptions& o) {
  auto tok = load_tokenizer(o.model);
  if (!tok.ok()) return fail(tok.status());
  std::string text;
  if (!o.prompt.empty()) {
    text = o.prompt;
  } else if (!o.file.empty()) {
    std::ifstream in(o.file, std::ios::binary);
    if (!in) return fail(Status::Error(o.file + ": cannot open"));
    std::stringstream ss;
    ss << in.rdbuf();
    text = ss.str();
  } else {
    text.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
  }
  EncodeOptions eo;
  eo.add_special = !o.no_bos;
  eo.parse_special = !o.no_parse_special;
  const std::vector<int32_t> ids = (*tok)->encode(text, eo);
  nlohmann::json out = nlohmann::json::array();
  for (int32_t id : ids) {
    if (o.pieces) out.push_back({{"id", id}, {"piece", (*tok)->piece(id)}});
    else out.push_back(id);
  }
  // Invalid UTF-8 in pieces (byte tokens of a byte-level vocabulary) is replaced, not fatal.
  std::printf("%s\n", out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
  return 0;
}

int run_detokenize(const DetokenizeOptions& o) {
  auto tok = load_tokenizer(o.model);
  if (!tok.ok()) return fail(tok.status());
  auto ids = parse_ids(o.ids, "--ids");
  if (!ids.ok()) return fail(ids.status());
  for (int32_t id : *ids)
    if (id >= (*tok)->vocab_size())
      return fail(Status::Error(str_format("--ids: id %d out of range, expected [0, %lld)", id, (long long)(*tok)->vocab_size())));
  std::printf("%s\n", (*tok)->decode(*ids, o.skip_special).c_str());
  return 0;
}

}  // namespace

Runner add_tokenize_command(CLI::App& app) {
  auto o = std::make_shared<TokenizeOptions>();
  CLI::App* sub = app.add_subcommand("tokenize", "Print the token ids of a text as one JSON array (text from -p, -f or stdin)");
  sub->add_option("-m,--model", o->model, "Model directory, tokenizer.json or tokenizer.model")->required();
  sub->add_option("-p,--prompt", o->prompt, "Text to tokenize");
  sub->add_option("-f,--file", o->file, "File to tokenize");
  sub->add_flag("--no-bos", o->no_bos, "Do not add BOS/EOS tokens");
  sub->add_flag("--pieces", o->pieces, "Print {\"id\", \"piece\"} objects instead of bare ids");
  sub->add_flag("--no-parse-special", o->no_parse_special, "Treat special-token text like \"<s>\" as plain text");
  return [o] { return run_tokenize(*o); };
}

Runner add_detokenize_command(CLI::App& app) {
  auto o = std::make_shared<DetokenizeOptions>();
  CLI::App* sub = app.add_subcommand("detokenize", "Print the text of comma-separated token ids");
  sub->add_option("-m,--model", o->model, "Model directory, tokenizer.json or tokenizer.model")->required();
  sub->add_option("--ids", o->ids, "Comma-separated token ids")->required();
  sub->add_flag("--skip-special", o->skip_special, "Leave out special tokens");
  return [o] { return run_detokenize(*o); };
}

}  // namespace moepp::cli

namespace moepp::cli {
MOEPP_REGISTER_COMMAND(50, add_tokenize_command);
}  // namespace moepp::cli

namespace moepp::cli {
MOEPP_REGISTER_COMMAND(51, add_detokenize_command);
}  // namespace moepp::cli
