// `moepp train-tokenizer -f a.txt b.txt -o DIR --vocab-size 8000`: a SentencePiece BPE vocabulary
// for a corpus, trained by Debian's libsentencepiece_train (the library spm_train wraps), written
// as DIR/tokenizer.model + tokenizer_config.json so that `moepp train --tokenizer DIR` and every
// other command load it.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include <sentencepiece_trainer.h>

#include <nlohmann/json.hpp>

#include "cli_common.h"
#include "commands.h"
#include "platform/durable_file.h"
#include "tokenizer/tokenizer.h"

namespace moepp::cli {
namespace {

struct TrainTokenizerOptions {
  std::vector<std::string> files;
  std::string out;
  int vocab_size = 8000;
  std::string model_type = "bpe";
  double character_coverage = 1.0;
  int threads = 2;
  int64_t max_sentences = 2'000'000;
};

int run_train_tokenizer(const TrainTokenizerOptions& o) {
  namespace fs = std::filesystem;
  if (o.files.empty()) return fail(Status::Error("-f: expected at least one text file"));
  std::string inputs;
  for (const std::string& f : o.files) {
    std::error_code ec;
    if (!fs::is_regular_file(f, ec)) return fail(Status::Error(f + ": not a readable file"));
    if (f.find(',') != std::string::npos) return fail(Status::Error(f + ": file names with commas are not supported"));
    inputs += (inputs.empty() ? "" : ",") + f;
  }
  if (o.vocab_size < 16 || o.vocab_size > 1'000'000)
    return fail(Status::Error(str_format("--vocab-size: expected 16..1000000, got %d", o.vocab_size)));
  if (o.model_type != "bpe" && o.model_type != "unigram")
    return fail(Status::Error("--model-type: expected bpe or unigram, got '" + o.model_type + "'"));
  if (!(o.character_coverage > 0.9 && o.character_coverage <= 1.0))
    return fail(Status::Error(str_format("--character-coverage: expected (0.9, 1], got %g", o.character_coverage)));
  std::error_code ec;
  fs::create_directories(o.out, ec);
  if (ec) return fail(Status::Error(o.out + ": cannot create the directory: " + ec.message()));

  // LLaMA's conventions: <unk> 0, <s> 1, </s> 2, no pad; byte fallback so that no text is ever
  // unknown; digits split; text kept as written (identity normalisation).
  const std::unordered_map<std::string, std::string> args = {
      {"input", inputs},
      {"model_prefix", (fs::path(o.out) / "tokenizer").string()},
      {"vocab_size", std::to_string(o.vocab_size)},
      {"model_type", o.model_type},
      {"character_coverage", std::to_string(o.character_coverage)},
      {"byte_fallback", "true"},
      {"split_digits", "true"},
      {"normalization_rule_name", "identity"},
      {"unk_id", "0"}, {"bos_id", "1"}, {"eos_id", "2"}, {"pad_id", "-1"},
      {"num_threads", std::to_string(thread_count(o.threads))},
      {"input_sentence_size", std::to_string(o.max_sentences)},
      {"shuffle_input_sentence", "true"},
      {"minloglevel", "1"},
  };
  const auto status = sentencepiece::SentencePieceTrainer::Train(args);
  if (!status.ok()) return fail(Status::Error("sentencepiece training: " + std::string(status.message())));
  const nlohmann::json config = {{"add_bos_token", true}, {"add_eos_token", false}, {"bos_token", "<s>"},
                                 {"eos_token", "</s>"}, {"unk_token", "<unk>"}, {"legacy", true},
                                 {"tokenizer_class", "LlamaTokenizer"}};
  const std::string text = config.dump(2) + "\n";
  if (Status s = write_file_replacing((fs::path(o.out) / "tokenizer_config.json").string(), text.data(), text.size()); !s.ok())
    return fail(s);
  auto tok = load_tokenizer(o.out);
  if (!tok.ok()) return fail(tok.status().with_context("the trained tokenizer does not load"));
  std::printf("wrote %s/tokenizer.model (%s, %lld pieces) and tokenizer_config.json\n", o.out.c_str(), o.model_type.c_str(),
              static_cast<long long>((*tok)->vocab_size()));
  return 0;
}

}  // namespace

Runner add_train_tokenizer_command(CLI::App& app) {
  auto o = std::make_shared<TrainTokenizerOptions>();
  CLI::App* sub = app.add_subcommand("train-tokenizer", "Train a SentencePiece BPE vocabulary on text files (for moepp train)");
  sub->add_option("-f,--files", o->files, "Plain-text files (one sentence or paragraph per line works best)")->required();
  sub->add_option("-o,--out", o->out, "Directory for tokenizer.model and tokenizer_config.json")->required();
  sub->add_option("--vocab-size", o->vocab_size, "Pieces in the vocabulary")->capture_default_str();
  sub->add_option("--model-type", o->model_type, "bpe or unigram")->capture_default_str();
  sub->add_option("--character-coverage", o->character_coverage, "Share of characters kept as pieces; rarer ones fall back to bytes")
      ->capture_default_str();
  add_threads_option(sub, &o->threads, "Training threads (default 2; 0: physical cores)");
  sub->add_option("--max-sentences", o->max_sentences, "Sentences sampled from the input at most")->capture_default_str();
  return [o] { return run_train_tokenizer(*o); };
}

}  // namespace moepp::cli

namespace moepp::cli {
MOEPP_REGISTER_COMMAND(69, add_train_tokenizer_command);
}  // namespace moepp::cli
