// JSONL task parsing without exceptions: nlohmann::json in non-throwing mode, every field's
// type checked before it is read.
#include "eval/task_format.h"

#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

namespace moepp {
namespace {

using nlohmann::json;

std::string type_of(const json& j) { return j.type_name(); }

Status field_error(int64_t line, const char* field, const std::string& expected, const std::string& got) {
  return Status::Error(str_format("line %lld: field '%s': expected %s, got %s", static_cast<long long>(line), field,
                                  expected.c_str(), got.c_str()));
}

Result<std::vector<int32_t>> read_ids(const json& j, int64_t line, const char* field, bool allow_empty) {
  if (!j.is_array()) return field_error(line, field, "an array of token ids", type_of(j));
  if (j.empty() && !allow_empty) return field_error(line, field, "at least one token id", "an empty array");
  std::vector<int32_t> ids;
  for (const json& v : j) {
    if (!v.is_number_integer()) return field_error(line, field, "integer token ids", type_of(v) + " " + v.dump());
    const int64_t id = v.get<int64_t>();
    if (id < 0 || id > INT32_MAX) return field_error(line, field, "token ids in [0, 2^31)", std::to_string(id));
    ids.push_back(static_cast<int32_t>(id));
  }
  return ids;
}

}  // namespace

Result<TaskDoc> parse_task_line(std::string_view text, int64_t line) {
  const json j = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Status::Error(str_format("line %lld: not valid JSON, expected one JSON object per line", static_cast<long long>(line)));
  if (!j.is_object()) return Status::Error(str_format("line %lld: expected a JSON object, got %s", static_cast<long long>(line), j.type_name()));
  TaskDoc d;
  d.line = line;
  const bool mc = j.contains("choices") || j.contains("choices_ids");
  const bool target = j.contains("target") || j.contains("target_ids");
  if (mc == target)
    return Status::Error(str_format("line %lld: expected either \"choices\" (multiple choice) or \"target\", got %s",
                                    static_cast<long long>(line), mc ? "both" : "neither"));
  d.kind = mc ? TaskKind::kMultipleChoice : TaskKind::kTarget;
  d.ids_mode = j.contains("context_ids");
  if (d.ids_mode) {
    MOEPP_ASSIGN_OR_RETURN(d.context_ids, read_ids(j["context_ids"], line, "context_ids", /*allow_empty=*/false));
  } else {
    if (!j.contains("context")) return field_error(line, "context", "a string (or \"context_ids\")", "nothing");
    if (!j["context"].is_string()) return field_error(line, "context", "a string", type_of(j["context"]));
    d.context = j["context"].get<std::string>();
  }
  if (mc) {
    if (j.contains("choices")) {
      const json& c = j["choices"];
      if (!c.is_array() || c.empty()) return field_error(line, "choices", "a non-empty array of strings", c.is_array() ? "an empty array" : type_of(c));
      for (const json& s : c) {
        if (!s.is_string()) return field_error(line, "choices", "strings", type_of(s));
        d.choices.push_back(s.get<std::string>());
      }
    }
    if (d.ids_mode) {
      if (!j.contains("choices_ids")) return field_error(line, "choices_ids", "an array of id arrays (context_ids is given)", "nothing");
      const json& c = j["choices_ids"];
      if (!c.is_array() || c.empty()) return field_error(line, "choices_ids", "a non-empty array of id arrays", c.is_array() ? "an empty array" : type_of(c));
      for (const json& ids : c) {
        MOEPP_ASSIGN_OR_RETURN(std::vector<int32_t> v, read_ids(ids, line, "choices_ids", false));
        d.choice_ids.push_back(std::move(v));
      }
      if (!d.choices.empty() && d.choices.size() != d.choice_ids.size())
        return field_error(line, "choices", str_format("%zu strings, one per choices_ids entry", d.choice_ids.size()),
                           std::to_string(d.choices.size()));
    } else if (j.contains("choices_ids")) {
      return field_error(line, "choices_ids", "context_ids too (ids mode)", "no context_ids");
    }
    const size_t n = d.ids_mode ? d.choice_ids.size() : d.choices.size();
    if (!j.contains("gold")) return field_error(line, "gold", "the index of the correct choice", "nothing");
    const json& g = j["gold"];
    if (!g.is_number_integer() || g.get<int64_t>() < 0 || g.get<int64_t>() >= static_cast<int64_t>(n))
      return field_error(line, "gold", str_format("an integer in [0, %zu)", n), g.dump());
    d.gold = static_cast<int>(g.get<int64_t>());
  } else {
    if (d.ids_mode) {
      if (!j.contains("target_ids")) return field_error(line, "target_ids", "an array of token ids (context_ids is given)", "nothing");
      MOEPP_ASSIGN_OR_RETURN(d.target_ids, read_ids(j["target_ids"], line, "target_ids", false));
      if (j.contains("target")) {
        if (!j["target"].is_string()) return field_error(line, "target", "a string", type_of(j["target"]));
        d.target = j["target"].get<std::string>();
      }
    } else {
      if (!j.contains("target") || !j["target"].is_string())
        return field_error(line, "target", "a string", j.contains("target") ? type_of(j["target"]) : "nothing");
      d.target = j["target"].get<std::string>();
      if (d.target.empty()) return field_error(line, "target", "a non-empty string", "\"\"");
    }
  }
  return d;
}

Result<std::vector<TaskDoc>> parse_task_jsonl(std::string_view text) {
  std::vector<TaskDoc> docs;
  int64_t line_no = 0;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    ++line_no;
    std::string_view line = text.substr(start, end - start);
    start = end + 1;
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) continue;
    MOEPP_ASSIGN_OR_RETURN(TaskDoc d, parse_task_line(line, line_no));
    if (!docs.empty() && (d.kind != docs[0].kind || d.ids_mode != docs[0].ids_mode))
      return Status::Error(str_format("line %lld: expected every document to be like line %lld (%s, %s), got a %s %s document",
                                      static_cast<long long>(line_no), static_cast<long long>(docs[0].line),
                                      docs[0].kind == TaskKind::kTarget ? "target" : "multiple choice",
                                      docs[0].ids_mode ? "ids" : "text", d.kind == TaskKind::kTarget ? "target" : "multiple-choice",
                                      d.ids_mode ? "ids" : "text"));
    docs.push_back(std::move(d));
  }
  if (docs.empty()) return Status::Error("expected at least one JSON document, got none");
  return docs;
}

Result<std::vector<TaskDoc>> read_task_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::Error(path + ": cannot open");
  std::stringstream ss;
  ss << in.rdbuf();
  auto docs = parse_task_jsonl(ss.str());
  if (!docs.ok()) return docs.status().with_context(path);
  return docs;
}

std::string fewshot_prompt(const std::vector<TaskDoc>& shots, const std::string& context) {
  std::string out;
  for (const TaskDoc& s : shots) out += s.context + s.gold_text() + "\n\n";
  return out + context;
}

std::vector<int32_t> fewshot_prompt_ids(const std::vector<TaskDoc>& shots, const std::vector<int32_t>& context_ids) {
  std::vector<int32_t> out;
  for (const TaskDoc& s : shots) {
    out.insert(out.end(), s.context_ids.begin(), s.context_ids.end());
    const std::vector<int32_t>& g = s.gold_ids();
    out.insert(out.end(), g.begin(), g.end());
  }
  out.insert(out.end(), context_ids.begin(), context_ids.end());
  return out;
}

}  // namespace moepp
