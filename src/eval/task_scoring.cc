// Every (document, choice) pair becomes one score request; the scorer packs them into batches.
#include "eval/task_scoring.h"

#include <cmath>

namespace moepp {
namespace {

Status encode_pair(const Tokenizer& tok, std::string context, std::string continuation, bool add_bos,
                   std::vector<int32_t>* ctx_ids, std::vector<int32_t>* cont_ids) {
  const size_t keep = context.find_last_not_of(' ') == std::string::npos ? 0 : context.find_last_not_of(' ') + 1;
  continuation = context.substr(keep) + continuation;
  context.resize(keep);
  EncodeOptions eo;
  eo.add_special = add_bos;
  eo.parse_special = false;
  *ctx_ids = tok.encode(context, eo);
  const std::vector<int32_t> whole = tok.encode(context + continuation, eo);
  if (ctx_ids->empty()) {
    if (tok.bos_id() < 0) return Status::Error("empty context and the tokenizer has no BOS token to stand in for it");
    ctx_ids->push_back(tok.bos_id());
  }
  const size_t n_ctx = std::min(ctx_ids->size(), whole.size());
  cont_ids->assign(whole.begin() + static_cast<int64_t>(n_ctx), whole.end());
  if (cont_ids->empty()) return Status::Error("continuation encodes to no tokens");
  return Status::Ok();
}

}  // namespace

Result<std::vector<EncodedDoc>> encode_task(const std::vector<TaskDoc>& docs, const std::vector<TaskDoc>& fewshot,
                                            const EncodeTaskOptions& o, const Tokenizer* tok) {
  if (o.shots < 0 || o.shots > static_cast<int>(fewshot.size()))
    return Status::Error(str_format("--shots: expected 0 to the %zu documents of the few-shot file, got %d", fewshot.size(), o.shots));
  const std::vector<TaskDoc> shots(fewshot.begin(), fewshot.begin() + o.shots);
  std::vector<EncodedDoc> out;
  for (const TaskDoc& d : docs) {
    for (const TaskDoc& s : shots)
      if (s.ids_mode != d.ids_mode)
        return Status::Error(str_format("few-shot line %lld: expected a %s document like the task, got %s", static_cast<long long>(s.line),
                                        d.ids_mode ? "ids" : "text", s.ids_mode ? "ids" : "text"));
    EncodedDoc e;
    const size_t n = d.kind == TaskKind::kTarget ? 1 : (d.ids_mode ? d.choice_ids.size() : d.choices.size());
    if (d.ids_mode) {
      e.context = fewshot_prompt_ids(shots, d.context_ids);
      for (size_t c = 0; c < n; ++c) {
        e.continuations.push_back(d.kind == TaskKind::kTarget ? d.target_ids : d.choice_ids[c]);
        const std::string* text = d.kind == TaskKind::kTarget ? (d.target.empty() ? nullptr : &d.target)
                                                               : (d.choices.empty() ? nullptr : &d.choices[c]);
        e.norm_lengths.push_back(text ? static_cast<double>(text->size()) : static_cast<double>(e.continuations.back().size()));
      }
    } else {
      if (tok == nullptr) return Status::Error(str_format("line %lld: text task but the model has no tokenizer; give context_ids instead", static_cast<long long>(d.line)));
      const std::string context = fewshot_prompt(shots, d.context);
      for (size_t c = 0; c < n; ++c) {
        const std::string& cont = d.kind == TaskKind::kTarget ? d.target : d.choices[c];
        std::vector<int32_t> ctx, ids;
        Status s = encode_pair(*tok, context, cont, o.add_bos, &ctx, &ids);
        if (!s.ok()) return s.with_context(str_format("line %lld choice %zu", static_cast<long long>(d.line), c));
        // Choices share the context unless trailing spaces moved; keep the first choice's.
        if (c == 0) e.context = ctx;
        else if (ctx != e.context) return Status::Error(str_format("line %lld: internal: contexts of choices differ", static_cast<long long>(d.line)));
        e.continuations.push_back(std::move(ids));
        e.norm_lengths.push_back(static_cast<double>(cont.size()));
      }
    }
    if (e.context.empty()) return Status::Error(str_format("line %lld: empty context", static_cast<long long>(d.line)));
    for (double& len : e.norm_lengths) len = std::max(len, 1.0);
    out.push_back(std::move(e));
  }
  return out;
}

Result<std::vector<DocScore>> score_task(ThreadPool& pool, const Model& model, const std::vector<EncodedDoc>& docs,
                                         const ScorerOptions& options) {
  std::vector<ScoreRequest> requests;
  for (const EncodedDoc& d : docs)
    for (const auto& cont : d.continuations) {
      ScoreRequest q;
      q.tokens = d.context;
      q.tokens.insert(q.tokens.end(), cont.begin(), cont.end());
      q.score_from = static_cast<int64_t>(d.context.size());
      requests.push_back(std::move(q));
    }
  MOEPP_ASSIGN_OR_RETURN(std::vector<ScoreResult> results, score_requests(pool, model, requests, options));
  std::vector<DocScore> scores;
  size_t r = 0;
  for (const EncodedDoc& d : docs) {
    DocScore s;
    double best = -INFINITY, best_norm = -INFINITY;
    for (size_t c = 0; c < d.continuations.size(); ++c, ++r) {
      const double ll = results[r].sum();
      s.logliks.push_back(ll);
      s.greedy.push_back(results[r].all_greedy() ? 1 : 0);
      s.n_tokens.push_back(static_cast<int64_t>(d.continuations[c].size()));
      if (ll > best) best = ll, s.pred = static_cast<int>(c);
      if (ll / d.norm_lengths[c] > best_norm) best_norm = ll / d.norm_lengths[c], s.pred_norm = static_cast<int>(c);
    }
    scores.push_back(std::move(s));
  }
  return scores;
}

double mean_stderr(const std::vector<double>& v) {
  const double n = static_cast<double>(v.size());
  if (v.size() < 2) return 0.0;
  double mean = 0.0;
  for (double x : v) mean += x;
  mean /= n;
  double ss = 0.0;
  for (double x : v) ss += (x - mean) * (x - mean);
  return std::sqrt(ss / (n - 1.0)) / std::sqrt(n);
}

TaskMetrics task_metrics(const std::vector<TaskDoc>& docs, const std::vector<DocScore>& scores) {
  TaskMetrics m;
  m.n = static_cast<int64_t>(docs.size());
  if (docs.empty()) return m;
  m.kind = docs[0].kind;
  std::vector<double> acc, acc_norm;
  double ll_sum = 0.0;
  for (size_t i = 0; i < docs.size(); ++i) {
    if (m.kind == TaskKind::kMultipleChoice) {
      acc.push_back(scores[i].pred == docs[i].gold ? 1.0 : 0.0);
      acc_norm.push_back(scores[i].pred_norm == docs[i].gold ? 1.0 : 0.0);
    } else {
      acc.push_back(scores[i].greedy[0] ? 1.0 : 0.0);
      ll_sum += scores[i].logliks[0];
    }
  }
  auto mean = [](const std::vector<double>& v) {
    double s = 0.0;
    for (double x : v) s += x;
    return v.empty() ? 0.0 : s / static_cast<double>(v.size());
  };
  m.acc = mean(acc);
  m.acc_stderr = mean_stderr(acc);
  if (m.kind == TaskKind::kMultipleChoice) {
    m.acc_norm = mean(acc_norm);
    m.acc_norm_stderr = mean_stderr(acc_norm);
  } else {
    m.ppl = std::exp(-ll_sum / static_cast<double>(docs.size()));
  }
  return m;
}

}  // namespace moepp
