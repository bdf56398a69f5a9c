// Model-loading and generation flags -> LoadOptions / GenerateOptions.
#include "generation_flags.h"

#include "cli_common.h"
#include "platform/thread_pool.h"

namespace moepp::cli {

Result<WeightQuant> parse_quant(const std::string& text, const char* flag) {
  if (text.empty() || text == "none") return WeightQuant::kNone;
  if (text == "q8") return WeightQuant::kQ8;
  if (text == "q4") return WeightQuant::kQ4;
  return Status::Error(std::string(flag) + ": expected q8, q4 or none, got '" + text + "'");
}

Result<std::optional<KvStorage>> parse_kv_cache(const std::string& text) {
  if (text.empty() || text == "auto") return std::optional<KvStorage>();
  for (KvStorage s : {KvStorage::kF32, KvStorage::kBF16, KvStorage::kQ8})
    if (text == kv_storage_name(s)) return std::optional<KvStorage>(s);
  return Status::Error("--kv-cache: expected f32, bf16, q8 or auto, got '" + text + "'");
}

void ModelFlags::add_to(CLI::App* sub) {
  sub->add_option("--dtype", dtype, "Compute precision: f32 or bf16 (bf16 also stores weights in bf16)")->capture_default_str();
  sub->add_option("--weights", weights, "Quantise weights at load: q8 (int8) or q4 (4-bit), groups of 32 with one scale");
  sub->add_option("--experts", experts, "Quantisation of the FFN experts only (overrides --weights): q8, q4, none");
  sub->add_option("--rest", rest, "Quantisation of attention and lm_head (overrides --weights): q8, q4, none");
  sub->add_option("--kv-cache", kv_cache,
                  "KV cache storage: auto (the compute dtype: f32, or bf16 with --dtype bf16), f32, bf16, or q8 "
                  "(int8 with a scale per 32 values: about half the memory and bytes of bf16, less accurate)");
}

Result<LoadOptions> ModelFlags::load_options() const {
  LoadOptions options;
  MOEPP_ASSIGN_OR_RETURN(options.dtype, parse_dtype(dtype));
  MOEPP_ASSIGN_OR_RETURN(WeightQuant all, parse_quant(weights, "--weights"));
  options.expert_quant = options.rest_quant = all;
  if (!experts.empty()) {
    MOEPP_ASSIGN_OR_RETURN(options.expert_quant, parse_quant(experts, "--experts"));
  }
  if (!rest.empty()) {
    MOEPP_ASSIGN_OR_RETURN(options.rest_quant, parse_quant(rest, "--rest"));
  }
  MOEPP_ASSIGN_OR_RETURN(options.kv_cache, parse_kv_cache(kv_cache));
  options.progress = progress_bar("loading");
  return options;
}

void GenerationFlags::add_to(CLI::App* sub) {
  sub->add_option("-n,--n-predict", n_predict, "Maximum tokens to generate")->capture_default_str();
  sub->add_option("--temp,--temperature", temperature, "Sampling temperature; 0 = greedy")->capture_default_str();
  sub->add_option("--top-k", top_k, "Keep the k most likely tokens; 0 = all")->capture_default_str();
  sub->add_option("--top-p", top_p, "Nucleus sampling mass in (0, 1]")->capture_default_str();
  sub->add_option("-s,--seed", seed, "Random seed for sampling")->capture_default_str();
  add_threads_option(sub, &threads);
  model.add_to(sub);
}

Result<GenerateOptions> GenerationFlags::options() const {
  if (n_predict < 0) return Status::Error("-n: expected a number of tokens >= 0, got " + std::to_string(n_predict));
  GenerateOptions g;
  g.max_new_tokens = n_predict;
  g.sampling = {temperature, top_k, top_p, seed};
  MOEPP_RETURN_IF_ERROR(g.sampling.validate());
  return g;
}

void DraftFlags::add_to(CLI::App* sub) {
  sub->add_option("--draft", draft,
                  "Speculative decoding: a draft model directory (same tokenizer), 'self' (this model with "
                  "--draft-top-k experts per token), 'zc' (this model routed to zero-computation experts only: "
                  "no FFN expert runs) or 'ngram' (prompt lookup)");
  sub->add_option("--draft-n", draft_n, "Draft tokens per verify step (the start value; adapted to the acceptance rate)")
      ->capture_default_str();
  sub->add_option("--draft-top-k", draft_top_k, "Experts per token of the 'self' draft")->capture_default_str();
}

Result<std::function<std::unique_ptr<Drafter>()>> DraftFlags::factory(const Model& target, const Tokenizer* tokenizer,
                                                                      const LoadOptions& load, ThreadPool& pool,
                                                                      const SamplingParams& sampling,
                                                                      std::unique_ptr<Model>* holder) const {
  using Factory = std::function<std::unique_ptr<Drafter>()>;
  if (draft_n < 1 || draft_n > 8) return Status::Error(str_format("--draft-n: expected 1..8, got %d", draft_n));
  SamplingParams draft_sampling = sampling;
  draft_sampling.seed = sampling.seed ^ 0x9e3779b97f4a7c15ULL;  // its own random stream
  if (draft == "ngram") return Factory([] { return std::make_unique<NgramDrafter>(); });
  std::string name = draft;
  if (draft == "self") {
    if (draft_top_k < 1) return Status::Error(str_format("--draft-top-k: expected >= 1, got %d", draft_top_k));
    *holder = target.with_top_k(draft_top_k);
    name = "self-top" + std::to_string(draft_top_k);
  } else if (draft == "zc") {
    auto zc = target.with_zero_computation_only();
    if (!zc.ok()) return zc.status().with_context("--draft zc");
    *holder = std::move(zc).value();
    name = "self-zc";
  } else {
    auto d = Model::load(draft, load);
    if (!d.ok()) return d.status().with_context("--draft");
    if ((*d)->config().vocab_size != target.config().vocab_size)
      return Status::Error(str_format("--draft %s: vocabulary of %lld tokens, the target has %lld; draft and target must share a tokenizer",
                                      draft.c_str(), static_cast<long long>((*d)->config().vocab_size),
                                      static_cast<long long>(target.config().vocab_size)));
    auto draft_tok = load_tokenizer(draft);
    if (tokenizer != nullptr && draft_tok.ok()) {
      const Tokenizer& a = *tokenizer;
      const Tokenizer& b = **draft_tok;
      if (a.vocab_size() != b.vocab_size())
        return Status::Error(str_format("--draft %s: its tokenizer has %lld pieces, the target's %lld; they must be the same tokenizer",
                                        draft.c_str(), static_cast<long long>(b.vocab_size()), static_cast<long long>(a.vocab_size())));
      for (int64_t id = 0; id < a.vocab_size(); ++id)
        if (a.piece(static_cast<int32_t>(id)) != b.piece(static_cast<int32_t>(id)))
          return Status::Error(str_format("--draft %s: token %lld is '%s' there and '%s' in the target; they must be the same tokenizer",
                                          draft.c_str(), static_cast<long long>(id), b.piece(static_cast<int32_t>(id)).c_str(),
                                          a.piece(static_cast<int32_t>(id)).c_str()));
    }
    *holder = std::move(d).value();
  }
  const Model* m = holder->get();
  return Factory([m, &pool, draft_sampling, name] { return std::make_unique<ModelDrafter>(*m, pool, draft_sampling, name); });
}

void add_token_input_flags(CLI::App* sub, TokenInput* input) {
  sub->add_option("-f,--file", input->text_file, "Text file (encoded with the model's tokenizer)");
  sub->add_option("--ids", input->ids, "Token ids instead of text: 1,2,3");
  sub->add_option("--ids-file", input->ids_file, "File of token ids separated by commas or whitespace");
  sub->add_flag("--no-bos", input->no_bos, "Do not add the tokenizer's BOS token to the text");
}

int GenerationFlags::thread_count() const { return cli::thread_count(threads); }

}  // namespace moepp::cli
