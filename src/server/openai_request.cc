#include "server/openai_request.h"

#include <cmath>
#include <cstdio>
#include <limits>
#include <set>

#include "base/utf8.h"

namespace moepp::server {

std::string error_body(const ApiError& error) {
  nlohmann::json body = {{"error",
                          {{"message", error.message},
                           {"type", error.type},
                           {"param", error.param.empty() ? nlohmann::json(nullptr) : nlohmann::json(error.param)},
                           {"code", nullptr}}}};
  return body.dump();
}

namespace {

const char* type_name(const nlohmann::json& j) {
  if (j.is_null()) return "null";
  if (j.is_boolean()) return "a boolean";
  if (j.is_number_integer()) return "an integer";
  if (j.is_number()) return "a number";
  if (j.is_string()) return "a string";
  if (j.is_array()) return "an array";
  return "an object";
}

// Fails with "field: expected X, got Y" and returns false, so checks chain as `if (!f(...)) return`.
bool fail(ApiError* error, const std::string& field, const std::string& expected, const std::string& got) {
  error->status = 400;
  error->param = field;
  error->message = field + ": expected " + expected + ", got " + got;
  return false;
}

bool get_int(const nlohmann::json& body, const char* field, int64_t lo, int64_t hi, std::optional<int64_t>* out,
             ApiError* error) {
  auto it = body.find(field);
  if (it == body.end() || it->is_null()) return true;
  const std::string range = "an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]";
  if (!it->is_number_integer()) return fail(error, field, range, type_name(*it));
  // Unsigned values beyond int64 are out of every range we accept.
  if (it->is_number_unsigned() && it->get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
    return fail(error, field, range, it->dump());
  const int64_t v = it->get<int64_t>();
  if (v < lo || v > hi) return fail(error, field, range, std::to_string(v));
  *out = v;
  return true;
}

bool get_number(const nlohmann::json& body, const char* field, double lo, double hi, bool lo_open,
                std::optional<double>* out, ApiError* error) {
  auto it = body.find(field);
  if (it == body.end() || it->is_null()) return true;
  char range[96];
  std::snprintf(range, sizeof(range), "a number in %s%g, %g]", lo_open ? "(" : "[", lo, hi);
  if (!it->is_number()) return fail(error, field, range, type_name(*it));
  const double v = it->get<double>();
  if (!std::isfinite(v) || v > hi || (lo_open ? v <= lo : v < lo)) return fail(error, field, range, it->dump());
  *out = v;
  return true;
}

bool get_bool(const nlohmann::json& body, const char* field, bool* out, ApiError* error) {
  auto it = body.find(field);
  if (it == body.end() || it->is_null()) return true;
  if (!it->is_boolean()) return fail(error, field, "a boolean", type_name(*it));
  *out = it->get<bool>();
  return true;
}

bool check_utf8(const std::string& s, const std::string& field, ApiError* error) {
  if (is_valid_utf8(s)) return true;
  return fail(error, field, "valid UTF-8 text", "invalid bytes");
}

bool parse_stop(const nlohmann::json& body, const RequestLimits& limits, CompletionRequest* r, ApiError* error) {
  auto it = body.find("stop");
  if (it == body.end() || it->is_null()) return true;
  std::vector<nlohmann::json> items;
  if (it->is_string()) items.push_back(*it);
  else if (it->is_array()) items.assign(it->begin(), it->end());
  else return fail(error, "stop", "a string or an array of strings", type_name(*it));
  if (static_cast<int>(items.size()) > limits.max_stop)
    return fail(error, "stop", "at most " + std::to_string(limits.max_stop) + " strings", std::to_string(items.size()));
  for (const auto& s : items) {
    if (!s.is_string()) return fail(error, "stop", "strings", type_name(s));
    if (s.get<std::string>().empty()) return fail(error, "stop", "non-empty strings", "\"\"");
    if (!check_utf8(s.get<std::string>(), "stop", error)) return false;
    r->stop.push_back(s.get<std::string>());
  }
  return true;
}

bool parse_prompt(const nlohmann::json& body, CompletionRequest* r, ApiError* error) {
  auto it = body.find("prompt");
  if (it == body.end()) return fail(error, "prompt", "a string or an array of token ids", "nothing");
  const nlohmann::json* p = &*it;
  // A one-element batch of prompts is the same request; larger batches are not supported.
  if (p->is_array() && p->size() == 1 && ((*p)[0].is_string() || (*p)[0].is_array())) p = &(*p)[0];
  if (p->is_string()) {
    r->prompt_text = p->get<std::string>();
    return check_utf8(r->prompt_text, "prompt", error);
  }
  if (!p->is_array()) return fail(error, "prompt", "a string or an array of token ids", type_name(*p));
  if (p->empty()) return fail(error, "prompt", "at least one token", "an empty array");
  std::vector<int32_t> ids;
  for (const auto& t : *p) {
    if (!t.is_number_integer())
      return fail(error, "prompt", "one string or one array of token ids", std::string("an array with ") + type_name(t));
    const int64_t v = t.get<int64_t>();
    if (v < 0 || v > std::numeric_limits<int32_t>::max()) return fail(error, "prompt", "token ids >= 0", std::to_string(v));
    ids.push_back(static_cast<int32_t>(v));
  }
  r->prompt_ids = std::move(ids);
  return true;
}

bool parse_messages(const nlohmann::json& body, CompletionRequest* r, ApiError* error) {
  auto it = body.find("messages");
  if (it == body.end()) return fail(error, "messages", "an array of messages", "nothing");
  if (!it->is_array() || it->empty()) return fail(error, "messages", "a non-empty array of messages", it->is_array() ? "an empty array" : type_name(*it));
  static const std::set<std::string> kRoles = {"system", "developer", "user", "assistant", "tool"};
  r->messages = nlohmann::ordered_json::array();
  for (size_t i = 0; i < it->size(); ++i) {
    const auto& m = (*it)[i];
    const std::string where = "messages[" + std::to_string(i) + "]";
    if (!m.is_object()) return fail(error, where, "an object", type_name(m));
    for (const auto& [key, value] : m.items())
      if (key != "role" && key != "content" && key != "name")
        return fail(error, where + "." + key, "one of role, content, name", "an unsupported field");
    auto role = m.find("role");
    if (role == m.end() || !role->is_string() || !kRoles.count(role->get<std::string>()))
      return fail(error, where + ".role", "system, developer, user, assistant or tool",
                  role == m.end() ? "nothing" : role->dump());
    auto content = m.find("content");
    std::string text;
    if (content == m.end() || content->is_null()) {
      return fail(error, where + ".content", "a string or an array of text parts", "nothing");
    } else if (content->is_string()) {
      text = content->get<std::string>();
    } else if (content->is_array()) {
      // Text parts are joined; images and audio need a model that reads them.
      for (const auto& part : *content) {
        if (!part.is_object() || part.value("type", "") != "text" || !part.contains("text") || !part["text"].is_string())
          return fail(error, where + ".content", "text parts {\"type\": \"text\", \"text\": ...}", part.dump());
        text += part["text"].get<std::string>();
      }
    } else {
      return fail(error, where + ".content", "a string or an array of text parts", type_name(*content));
    }
    if (!check_utf8(text, where + ".content", error)) return false;
    r->messages.push_back({{"role", role->get<std::string>()}, {"content", text}});
  }
  return true;
}

}  // namespace

std::optional<CompletionRequest> parse_completion_request(const nlohmann::json& body, bool chat,
                                                          const RequestLimits& limits, ApiError* error) {
  if (!body.is_object()) {
    fail(error, "body", "a JSON object", type_name(body));
    error->param.clear();
    return std::nullopt;
  }
  static const std::set<std::string> kCommon = {"model", "max_tokens", "temperature", "top_p", "top_k", "seed",
                                                 "stop", "n", "stream", "stream_options", "user",
                                                 "presence_penalty", "frequency_penalty", "moepp_routes"};
  static const std::set<std::string> kCompletion = {"prompt", "logprobs", "echo"};
  static const std::set<std::string> kChat = {"messages", "logprobs", "top_logprobs", "max_completion_tokens"};
  for (const auto& [key, value] : body.items())
    if (!kCommon.count(key) && !(chat ? kChat : kCompletion).count(key)) {
      error->status = 400;
      error->param = key;
      error->message = "unrecognized request argument supplied: " + key;
      return std::nullopt;
    }

  CompletionRequest r;
  r.chat = chat;
  if (auto it = body.find("model"); it != body.end() && !it->is_null()) {
    if (!it->is_string()) return fail(error, "model", "a string", type_name(*it)), std::nullopt;
    r.model = it->get<std::string>();
  }
  if (chat ? !parse_messages(body, &r, error) : !parse_prompt(body, &r, error)) return std::nullopt;

  std::optional<int64_t> max_tokens, top_k, seed, n, logprobs, top_logprobs;
  std::optional<double> temperature, top_p, presence, frequency;
  if (!get_int(body, "max_tokens", 1, limits.max_tokens, &max_tokens, error)) return std::nullopt;
  if (chat && !get_int(body, "max_completion_tokens", 1, limits.max_tokens, &max_tokens, error)) return std::nullopt;
  if (!get_number(body, "temperature", 0, 2, false, &temperature, error)) return std::nullopt;
  if (!get_number(body, "top_p", 0, 1, true, &top_p, error)) return std::nullopt;
  if (!get_int(body, "top_k", 0, 1'000'000'000, &top_k, error)) return std::nullopt;
  if (!get_int(body, "seed", std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max(), &seed, error))
    return std::nullopt;
  if (!get_int(body, "n", 1, limits.max_n, &n, error)) return std::nullopt;
  if (!get_number(body, "presence_penalty", -2, 2, false, &presence, error)) return std::nullopt;
  if (!get_number(body, "frequency_penalty", -2, 2, false, &frequency, error)) return std::nullopt;
  if ((presence && *presence != 0) || (frequency && *frequency != 0)) {
    const char* field = presence && *presence != 0 ? "presence_penalty" : "frequency_penalty";
    fail(error, field, "0 (penalties are not supported)", std::to_string(presence && *presence != 0 ? *presence : *frequency));
    return std::nullopt;
  }
  if (!parse_stop(body, limits, &r, error)) return std::nullopt;
  if (!get_bool(body, "stream", &r.stream, error)) return std::nullopt;
  if (!get_bool(body, "moepp_routes", &r.routes, error)) return std::nullopt;
  if (auto it = body.find("user"); it != body.end() && !it->is_null() && !it->is_string())
    return fail(error, "user", "a string", type_name(*it)), std::nullopt;
  if (auto it = body.find("stream_options"); it != body.end() && !it->is_null()) {
    if (!it->is_object()) return fail(error, "stream_options", "an object", type_name(*it)), std::nullopt;
    for (const auto& [key, value] : it->items())
      if (key != "include_usage") return fail(error, "stream_options." + key, "include_usage only", "an unsupported field"), std::nullopt;
    if (!get_bool(*it, "include_usage", &r.include_usage, error)) return std::nullopt;
  }
  if (chat) {
    bool want = false;
    if (!get_bool(body, "logprobs", &want, error)) return std::nullopt;
    if (!get_int(body, "top_logprobs", 0, limits.max_top_logprobs, &top_logprobs, error)) return std::nullopt;
    if (top_logprobs && !want) return fail(error, "top_logprobs", "logprobs: true alongside", "logprobs false or absent"), std::nullopt;
    if (want) r.top_logprobs = static_cast<int>(top_logprobs.value_or(0));
  } else {
    if (!get_int(body, "logprobs", 0, limits.max_top_logprobs, &logprobs, error)) return std::nullopt;
    if (logprobs) r.top_logprobs = static_cast<int>(*logprobs);
    bool echo = false;
    if (!get_bool(body, "echo", &echo, error)) return std::nullopt;
    if (echo) return fail(error, "echo", "false (echo is not supported)", "true"), std::nullopt;
  }
  r.max_tokens = max_tokens;
  r.sampling.temperature = static_cast<float>(temperature.value_or(1.0));
  r.sampling.top_p = static_cast<float>(top_p.value_or(1.0));
  r.sampling.top_k = static_cast<int>(top_k.value_or(0));
  r.seed_given = seed.has_value();
  r.sampling.seed = static_cast<uint64_t>(seed.value_or(0));
  r.n = static_cast<int>(n.value_or(1));
  return r;
}

}  // namespace moepp::server
