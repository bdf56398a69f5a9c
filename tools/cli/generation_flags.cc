// Model-loading and generation flags -> LoadOptions / GenerateOptions.
#include "generation_flags.h"

#include "cli_common.h"
#include "platform/thread_pool.h"

namespace moepp::cli {
namespace {

Result<WeightQuant> parse_quant(const std::string& text, const char* flag) {
  if (text.empty() || text == "none") return WeightQuant::kNone;
  if (text == "q8") return WeightQuant::kQ8;
  if (text == "q4") return WeightQuant::kQ4;
  return Status::Error(std::string(flag) + ": expected q8, q4 or none, got '" + text + "'");
}

}  // namespace

void ModelFlags::add_to(CLI::App* sub) {
  sub->add_option("--dtype", dtype, "Compute precision: f32 or bf16 (bf16 also stores weights in bf16)")->capture_default_str();
  sub->add_option("--weights", weights, "Quantise weights at load: q8 (int8) or q4 (4-bit), groups of 32 with one scale");
  sub->add_option("--experts", experts, "Quantisation of the FFN experts only (overrides --weights): q8, q4, none");
  sub->add_option("--rest", rest, "Quantisation of attention and lm_head (overrides --weights): q8, q4, none");
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
  return options;
}

void GenerationFlags::add_to(CLI::App* sub) {
  sub->add_option("-n,--n-predict", n_predict, "Maximum tokens to generate")->capture_default_str();
  sub->add_option("--temp,--temperature", temperature, "Sampling temperature; 0 = greedy")->capture_default_str();
  sub->add_option("--top-k", top_k, "Keep the k most likely tokens; 0 = all")->capture_default_str();
  sub->add_option("--top-p", top_p, "Nucleus sampling mass in (0, 1]")->capture_default_str();
  sub->add_option("-s,--seed", seed, "Random seed for sampling")->capture_default_str();
  sub->add_option("-t,--threads", threads, "Threads (default: physical cores)");
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

void add_token_input_flags(CLI::App* sub, TokenInput* input) {
  sub->add_option("-f,--file", input->text_file, "Text file (encoded with the model's tokenizer)");
  sub->add_option("--ids", input->ids, "Token ids instead of text: 1,2,3");
  sub->add_option("--ids-file", input->ids_file, "File of token ids separated by commas or whitespace");
  sub->add_flag("--no-bos", input->no_bos, "Do not add the tokenizer's BOS token to the text");
}

int GenerationFlags::thread_count() const { return threads > 0 ? threads : ThreadPool::default_threads(); }

}  // namespace moepp::cli
