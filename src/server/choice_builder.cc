#include "server/choice_builder.h"

namespace moepp::server {

namespace {

nlohmann::json byte_list(const std::string& s) {
  nlohmann::json bytes = nlohmann::json::array();
  for (unsigned char c : s) bytes.push_back(static_cast<int>(c));
  return bytes;
}

}  // namespace

ChoiceBuilder::ChoiceBuilder(const Tokenizer& tokenizer, bool chat, std::vector<std::string> stops, int top_logprobs,
                             bool routes, int top_k)
    : tokenizer_(tokenizer),
      chat_(chat),
      decoder_(tokenizer, /*skip_special=*/true),
      stops_(std::move(stops)),
      top_logprobs_(top_logprobs),
      routes_(routes),
      top_k_(top_k) {
  take_logprobs();
}

std::string ChoiceBuilder::add(const TokenEvent& event, bool* stopped) {
  ++tokens_;
  if (top_logprobs_ >= 0) add_logprobs(event);
  if (routes_) {
    nlohmann::json layers = nlohmann::json::array();
    for (size_t i = 0; i + static_cast<size_t>(top_k_) <= event.experts.size(); i += static_cast<size_t>(top_k_))
      layers.push_back(std::vector<int32_t>(event.experts.begin() + static_cast<std::ptrdiff_t>(i),
                                            event.experts.begin() + static_cast<std::ptrdiff_t>(i) + top_k_));
    route_list_.push_back(std::move(layers));
  }
  std::string text = stops_.push(decoder_.push(event.id), stopped);
  text_offset_ += static_cast<int64_t>(text.size());
  return text;
}

std::string ChoiceBuilder::finish_text() {
  bool stopped = false;
  std::string text = stops_.push(decoder_.flush(), &stopped);
  text += stops_.flush();
  return text;
}

void ChoiceBuilder::add_logprobs(const TokenEvent& event) {
  const std::string token = tokenizer_.decode({event.id}, false);
  if (chat_) {
    nlohmann::json top = nlohmann::json::array();
    for (const auto& [id, lp] : event.top) {
      const std::string t = tokenizer_.decode({id}, false);
      top.push_back({{"token", t}, {"logprob", lp}, {"bytes", byte_list(t)}});
    }
    logprobs_["content"].push_back({{"token", token}, {"logprob", event.logprob}, {"bytes", byte_list(token)}, {"top_logprobs", top}});
    return;
  }
  logprobs_["tokens"].push_back(token);
  logprobs_["token_logprobs"].push_back(event.logprob);
  logprobs_["text_offset"].push_back(text_offset_);
  if (top_logprobs_ > 0) {
    nlohmann::json top = nlohmann::json::object();
    for (const auto& [id, lp] : event.top) top[tokenizer_.decode({id}, false)] = lp;
    logprobs_["top_logprobs"].push_back(top);
  }
}

nlohmann::json ChoiceBuilder::take_logprobs() {
  if (top_logprobs_ < 0) return nullptr;
  nlohmann::json out = std::move(logprobs_);
  if (chat_) {
    logprobs_ = {{"content", nlohmann::json::array()}};
  } else {
    logprobs_ = {{"tokens", nlohmann::json::array()}, {"token_logprobs", nlohmann::json::array()},
                 {"top_logprobs", top_logprobs_ > 0 ? nlohmann::json::array() : nlohmann::json(nullptr)},
                 {"text_offset", nlohmann::json::array()}};
  }
  return out;
}

nlohmann::json ChoiceBuilder::take_routes() {
  if (!routes_) return nullptr;
  nlohmann::json out = std::move(route_list_);
  route_list_ = nlohmann::json::array();
  return out;
}

}  // namespace moepp::server
