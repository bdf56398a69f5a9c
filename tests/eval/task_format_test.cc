// The JSONL task format: valid documents in both modes, and clean errors for bad lines.
#include "eval/task_format.h"

#include <gtest/gtest.h>

#include "eval/task_scoring.h"

namespace moepp {
namespace {

TEST(TaskFormat, MultipleChoiceText) {
  auto d = parse_task_line(R"({"context": "Q: 2+2?\nA:", "choices": [" 4", " 5"], "gold": 0})", 3);
  ASSERT_TRUE(d.ok()) << d.status().message();
  EXPECT_EQ(d->kind, TaskKind::kMultipleChoice);
  EXPECT_FALSE(d->ids_mode);
  EXPECT_EQ(d->choices.size(), 2u);
  EXPECT_EQ(d->gold_text(), " 4");
  EXPECT_EQ(d->line, 3);
}

TEST(TaskFormat, TargetIds) {
  auto d = parse_task_line(R"({"context_ids": [1, 5, 6], "target_ids": [9], "target": " dog"})", 1);
  ASSERT_TRUE(d.ok()) << d.status().message();
  EXPECT_EQ(d->kind, TaskKind::kTarget);
  EXPECT_TRUE(d->ids_mode);
  EXPECT_EQ(d->context_ids, (std::vector<int32_t>{1, 5, 6}));
  EXPECT_EQ(d->gold_ids(), (std::vector<int32_t>{9}));
}

void expect_error(const std::string& line, const std::string& fragment) {
  auto d = parse_task_line(line, 7);
  ASSERT_FALSE(d.ok()) << line;
  EXPECT_NE(d.status().message().find(fragment), std::string::npos) << d.status().message();
  EXPECT_EQ(d.status().message().rfind("line 7: ", 0), 0u) << d.status().message();
}

TEST(TaskFormat, Errors) {
  expect_error("{not json", "not valid JSON");
  expect_error("[1, 2]", "expected a JSON object, got array");
  expect_error(R"({"context": "a"})", "got neither");
  expect_error(R"({"context": "a", "choices": ["x"], "target": "y", "gold": 0})", "got both");
  expect_error(R"({"choices": ["x"], "gold": 0})", "field 'context'");
  expect_error(R"({"context": 3, "choices": ["x"], "gold": 0})", "expected a string, got number");
  expect_error(R"({"context": "a", "choices": [], "gold": 0})", "an empty array");
  expect_error(R"({"context": "a", "choices": ["x", 2], "gold": 0})", "expected strings, got number");
  expect_error(R"({"context": "a", "choices": ["x", "y"], "gold": 2})", "expected an integer in [0, 2), got 2");
  expect_error(R"({"context": "a", "choices": ["x", "y"], "gold": "0"})", "field 'gold'");
  expect_error(R"({"context": "a", "choices": ["x", "y"]})", "field 'gold'");
  expect_error(R"({"context": "a", "target": ""})", "non-empty string");
  expect_error(R"({"context_ids": [1], "choices_ids": [[2], [-3]], "gold": 0})", "token ids in [0, 2^31)");
  expect_error(R"({"context_ids": [1], "choices_ids": [[2], []], "gold": 0})", "at least one token id");
  expect_error(R"({"context_ids": [1], "choices_ids": [[2], [3]], "choices": ["a"], "gold": 0})", "one per choices_ids entry");
  expect_error(R"({"context_ids": [1.5], "target_ids": [2]})", "integer token ids");
  expect_error(R"({"context": "a", "choices_ids": [[2]], "gold": 0})", "context_ids too");
}

TEST(TaskFormat, FileRules) {
  auto ok = parse_task_jsonl("\n{\"context\": \"a\", \"target\": \" b\"}\n\n{\"context\": \"c\", \"target\": \" d\"}\n");
  ASSERT_TRUE(ok.ok()) << ok.status().message();
  EXPECT_EQ(ok->size(), 2u);
  EXPECT_EQ((*ok)[1].line, 4);
  auto mixed = parse_task_jsonl("{\"context\": \"a\", \"target\": \" b\"}\n{\"context\": \"a\", \"choices\": [\"b\"], \"gold\": 0}\n");
  ASSERT_FALSE(mixed.ok());
  EXPECT_NE(mixed.status().message().find("line 2: expected every document to be like line 1"), std::string::npos)
      << mixed.status().message();
  auto empty = parse_task_jsonl("\n  \n");
  ASSERT_FALSE(empty.ok());
}

TEST(TaskFormat, FewShotPrompts) {
  auto a = parse_task_line(R"({"context": "Q1", "choices": [" x", " y"], "gold": 1})", 1);
  auto b = parse_task_line(R"({"context": "Q2", "target": " z"})", 2);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(fewshot_prompt({*a, *b}, "Q3"), "Q1 y\n\nQ2 z\n\nQ3");
  auto c = parse_task_line(R"({"context_ids": [1, 2], "choices_ids": [[3], [4, 5]], "gold": 1})", 1);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(fewshot_prompt_ids({*c}, {1, 9}), (std::vector<int32_t>{1, 2, 4, 5, 1, 9}));
}

TEST(TaskScoring, EncodeIdsModeAndNormLengths) {
  auto d = parse_task_line(R"({"context_ids": [1, 2], "choices_ids": [[3], [4, 5]], "choices": [" ab", " c"], "gold": 0})", 1);
  ASSERT_TRUE(d.ok());
  auto e = encode_task({*d}, {}, {}, nullptr);
  ASSERT_TRUE(e.ok()) << e.status().message();
  EXPECT_EQ((*e)[0].context, (std::vector<int32_t>{1, 2}));
  EXPECT_EQ((*e)[0].norm_lengths, (std::vector<double>{3.0, 2.0}));
  auto too_many = encode_task({*d}, {}, EncodeTaskOptions{2, true}, nullptr);
  EXPECT_FALSE(too_many.ok());
  auto text = parse_task_line(R"({"context": "a", "target": " b"})", 1);
  auto no_tok = encode_task({*text}, {}, {}, nullptr);
  ASSERT_FALSE(no_tok.ok());
  EXPECT_NE(no_tok.status().message().find("no tokenizer"), std::string::npos);
}

TEST(TaskScoring, MetricsAndStderr) {
  auto d0 = parse_task_line(R"({"context": "a", "choices": [" x", " yyyy"], "gold": 1})", 1);
  auto d1 = parse_task_line(R"({"context": "a", "choices": [" x", " yyyy"], "gold": 0})", 2);
  ASSERT_TRUE(d0.ok() && d1.ok());
  DocScore s0{{-1.0, -2.0}, {0, 0}, {1, 1}, 0, 1};  // acc wrong, acc_norm right
  DocScore s1{{-1.0, -2.0}, {0, 0}, {1, 1}, 0, 1};  // acc right, acc_norm wrong
  const TaskMetrics m = task_metrics({*d0, *d1}, {s0, s1});
  EXPECT_DOUBLE_EQ(m.acc, 0.5);
  EXPECT_DOUBLE_EQ(m.acc_norm, 0.5);
  EXPECT_DOUBLE_EQ(m.acc_stderr, 0.5);  // sample std sqrt(0.5) / sqrt(2)
  EXPECT_DOUBLE_EQ(mean_stderr({1.0}), 0.0);
}

}  // namespace
}  // namespace moepp
