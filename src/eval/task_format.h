// The JSONL task format (docs/evaluation.md): one document per line, multiple-choice
// {"context", "choices", "gold"} or target {"context", "target"}, as text or as token ids.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace moepp {

enum class TaskKind { kMultipleChoice, kTarget };

struct TaskDoc {
  int64_t line = 0;  // 1-based line in its file
  TaskKind kind = TaskKind::kMultipleChoice;
  bool ids_mode = false;  // context_ids given: ids are used as they are, no tokenizer
  std::string context;
  std::vector<std::string> choices;  // text continuations (ids mode: optional, for acc_norm)
  std::string target;
  int gold = -1;  // multiple choice: index of the correct choice
  std::vector<int32_t> context_ids;
  std::vector<std::vector<int32_t>> choice_ids;
  std::vector<int32_t> target_ids;

  // The gold continuation (few-shot examples show it): choices[gold] or target, in either mode.
  const std::string& gold_text() const { return kind == TaskKind::kTarget ? target : choices[gold]; }
  const std::vector<int32_t>& gold_ids() const { return kind == TaskKind::kTarget ? target_ids : choice_ids[gold]; }
};

// One line (a JSON object); errors name the line and the field.
Result<TaskDoc> parse_task_line(std::string_view line, int64_t line_no);
// Every non-blank line; all documents must be of one kind and one mode.
Result<std::vector<TaskDoc>> parse_task_jsonl(std::string_view text);
Result<std::vector<TaskDoc>> read_task_file(const std::string& path);

// lm-evaluation-harness's few-shot layout: each shot is context + gold continuation, shots and
// the query joined by "\n\n". Text mode only.
std::string fewshot_prompt(const std::vector<TaskDoc>& shots, const std::string& context);
// Ids mode: the shots' context_ids + gold ids, then the query's context_ids, concatenated.
std::vector<int32_t> fewshot_prompt_ids(const std::vector<TaskDoc>& shots, const std::vector<int32_t>& context_ids);

}  // namespace moepp
