// Bad config.json files give one clear error naming the file and the field, never a crash.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "models/model.h"

namespace moepp {
namespace {

namespace fs = std::filesystem;

class ConfigErrors : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("moepp_config_test_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  void write(const std::string& name, const std::string& text) {
    std::ofstream(dir_ / name) << text;
  }
  // Loads and returns the error message (empty if it loaded).
  std::string load_error() {
    auto m = Model::load(dir_.string(), LoadOptions{});
    return m.ok() ? "" : m.status().message();
  }
  static std::string mixtral(const std::string& extra) {
    return R"({"model_type": "mixtral", "vocab_size": 32, "hidden_size": 16, "num_hidden_layers": 1,
               "num_attention_heads": 2, "num_key_value_heads": 1, "intermediate_size": 8,
               "num_local_experts": 4, "num_experts_per_tok": 2)" + extra + "}";
  }
  fs::path dir_;
};

#define EXPECT_HAS(haystack, needle) EXPECT_NE((haystack).find(needle), std::string::npos) << (haystack)

TEST_F(ConfigErrors, MissingConfig) {
  const std::string e = load_error();
  EXPECT_HAS(e, "config.json");
  EXPECT_HAS(e, "cannot open");
}

TEST_F(ConfigErrors, NotJson) {
  write("config.json", "{\"model_type\": \"mixtral\",");
  EXPECT_HAS(load_error(), "config.json: not valid JSON");
  write("config.json", "[1, 2]");
  EXPECT_HAS(load_error(), "expected a JSON object");
}

TEST_F(ConfigErrors, UnknownModelType) {
  write("config.json", R"({"model_type": "gpt2"})");
  const std::string e = load_error();
  EXPECT_HAS(e, "field 'model_type'");
  EXPECT_HAS(e, "\"MoE++\"");
  EXPECT_HAS(e, "got \"gpt2\"");
}

TEST_F(ConfigErrors, WrongTypesAndRanges) {
  write("config.json", R"({"model_type": "mixtral", "vocab_size": 32, "hidden_size": "abc"})");
  EXPECT_HAS(load_error(), "field 'hidden_size': expected a positive integer, got \"abc\"");
  write("config.json", R"({"model_type": "mixtral", "vocab_size": 32, "hidden_size": 16, "num_hidden_layers": 1,
      "num_attention_heads": 4, "num_key_value_heads": 3})");
  EXPECT_HAS(load_error(), "field 'num_key_value_heads': expected a positive divisor");
  write("config.json", R"({"model_type": "mixtral", "vocab_size": 32, "hidden_size": 16, "num_hidden_layers": 1,
      "num_attention_heads": 2, "intermediate_size": 8, "num_local_experts": 4, "num_experts_per_tok": 9})");
  EXPECT_HAS(load_error(), "field 'num_experts_per_tok': expected at most num_local_experts (4)");
  write("config.json", mixtral(R"(, "rope_scaling": {"type": "linear", "factor": 2.0})"));
  EXPECT_HAS(load_error(), "field 'rope_scaling'");
  write("config.json", mixtral(R"(, "rms_norm_eps": -1)"));
  EXPECT_HAS(load_error(), "field 'rms_norm_eps'");
}

TEST_F(ConfigErrors, MoePPUnsupportedPaths) {
  const std::string base = R"({"model_type": "MoE++", "vocab_size": 32, "hidden_size": 16, "num_hidden_layers": 1,
      "num_attention_heads": 2, "intermediate_size": 8, "num_experts": [8])";
  write("config.json", base + R"(, "moe_expert_interval": 2})");
  EXPECT_HAS(load_error(), "field 'moe_expert_interval': expected 1");
  write("config.json", base + R"(, "num_constant_experts": 6})");  // 8 - 6 - 1 - 1 = 0 FFN experts
  EXPECT_HAS(load_error(), "field 'num_experts'");
  write("config.json", R"({"model_type": "MoE++", "vocab_size": 32, "hidden_size": 16, "num_hidden_layers": 1,
      "num_attention_heads": 2, "intermediate_size": 8, "num_experts": ["x"]})");
  EXPECT_HAS(load_error(), "field 'num_experts'");
}

TEST_F(ConfigErrors, LlamaMoeFields) {
  const std::string base = R"({"model_type": "llama_moe", "vocab_size": 32, "hidden_size": 16, "num_hidden_layers": 2,
      "num_attention_heads": 2, "intermediate_size": 16, "num_experts": 4, "num_selects": 2)";
  write("config.json", base + R"(, "gate_type": "SwitchGate"})");
  EXPECT_HAS(load_error(), "field 'gate_type'");
  write("config.json", base + R"(, "size_experts": [[4, 4, 4, 4]]})");
  EXPECT_HAS(load_error(), "field 'size_experts'");
  write("config.json", base + R"(, "score_scale_factor": [1.0]})");
  EXPECT_HAS(load_error(), "field 'score_scale_factor'");
  write("config.json", base + R"(, "gate_network": "conv"})");
  EXPECT_HAS(load_error(), "field 'gate_network'");
}

TEST_F(ConfigErrors, NoWeights) {
  write("config.json", mixtral(""));
  const std::string e = load_error();
  EXPECT_HAS(e, "model.safetensors");
  EXPECT_HAS(e, "pytorch_model.bin");
}

TEST_F(ConfigErrors, BadTokenizerConfig) {
  write("config.json", mixtral(""));
  write("tokenizer_config.json", R"({"added_tokens_decoder": {"99999": {"content": "<s>"}}})");
  EXPECT_HAS(load_error(), "tokenizer_config.json: field 'added_tokens_decoder'");
}

}  // namespace
}  // namespace moepp
