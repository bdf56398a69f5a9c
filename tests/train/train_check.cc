// Test driver for tests/train/check_grads.py (no CLI flags parsing beyond one JSON file):
// loads a checkpoint through Model::load, runs one forward/backward on the given batch and,
// optionally, a few Trainer steps; writes gradients / parameters as f32 safetensors under the
// Hugging Face MoE++ names and a report.json with losses and routing counts.
//   moepp_train_check JOB.json
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "io/safetensors_writer.h"
#include "models/model.h"
#include "train/decoder_grad.h"
#include "train/trainer.h"

namespace moepp {
namespace {

using json = nlohmann::json;

Result<TrainBatch> batch_from(const json& tokens, const json& targets, size_t seq_begin, size_t seq_end) {
  TrainBatch b;
  b.n_seqs = static_cast<int64_t>(seq_end - seq_begin);
  b.seq_len = static_cast<int64_t>(tokens.at(seq_begin).size());
  for (size_t s = seq_begin; s < seq_end; ++s) {
    for (const auto& v : tokens.at(s)) b.tokens.push_back(v.get<int32_t>());
    for (const auto& v : targets.at(s)) b.targets.push_back(v.get<int32_t>());
  }
  return b;
}

Status write_buffer(const std::string& path, const TrainParams& params, const std::vector<float>& buffer) {
  std::vector<F32TensorView> views;
  for (const ParamTensor& t : params.tensors()) views.push_back({t.name, t.shape, buffer.data() + t.ref.offset});
  return write_safetensors_f32(path, views);
}

Status run(const std::string& job_path) {
  std::ifstream in(job_path);
  if (!in) return Status::Error(job_path + ": cannot open");
  json job = json::parse(in, nullptr, false);
  if (job.is_discarded()) return Status::Error(job_path + ": not JSON");
  const std::string out = job.at("out").get<std::string>();
  ThreadPool pool(job.value("threads", 1));

  MOEPP_ASSIGN_OR_RETURN(std::unique_ptr<Model> model, Model::load(job.at("model").get<std::string>(), LoadOptions{}));
  MOEPP_ASSIGN_OR_RETURN(TrainParams params, TrainParams::from_model(*model));
  model.reset();

  TrainerOptions opt;
  opt.loss.beta = job.value("beta", 0.01f);
  opt.loss.tau = job.value("tau", 0.75f);
  opt.loss.layers = job.value("layers", std::string("sum")) == "mean" ? LayerAggregation::kMean : LayerAggregation::kSum;
  opt.loss.scale_by_n_experts = job.value("scale_by_n_experts", false);
  const json& tokens = job.at("tokens");
  const json& targets = job.at("targets");
  MOEPP_ASSIGN_OR_RETURN(TrainBatch full, batch_from(tokens, targets, 0, tokens.size()));

  json report;
  std::vector<float> grads(static_cast<size_t>(params.size()), 0.0f);
  opt.capacity.factor = job.value("capacity_factor", 0.0f);
  opt.capacity.per_slot = job.value("capacity_per_slot", false);
  opt.capacity.tau = opt.loss.tau;
  MOEPP_ASSIGN_OR_RETURN(LossReport lr, forward_backward(pool, params, full, opt.loss, grads.data(), 1.0f, opt.capacity));
  report["loss"] = lr.loss;
  report["ce"] = lr.ce;
  report["balance"] = lr.balance;
  report["balance_per_layer"] = lr.balance_per_layer;
  report["expert_counts"] = lr.expert_counts;
  report["dropped"] = lr.dropped;
  MOEPP_RETURN_IF_ERROR(write_buffer(out + "/grads.safetensors", params, grads));

  const int64_t steps = job.value("steps", 0);
  if (steps > 0) {
    const json& o = job.at("optimizer");
    opt.adamw.beta1 = o.at("beta1").get<double>();
    opt.adamw.beta2 = o.at("beta2").get<double>();
    opt.adamw.eps = o.at("eps").get<double>();
    opt.adamw.weight_decay = o.at("weight_decay").get<double>();
    opt.adamw.clip_norm = o.at("clip_norm").get<double>();
    opt.schedule.max_lr = o.at("max_lr").get<double>();
    opt.schedule.min_lr = o.at("min_lr").get<double>();
    opt.schedule.init_lr = o.at("init_lr").get<double>();
    opt.schedule.warmup_steps = o.at("warmup_steps").get<int64_t>();
    opt.schedule.total_steps = o.at("total_steps").get<int64_t>();
    opt.grad_accum = o.at("grad_accum").get<int64_t>();
    std::vector<TrainBatch> micro;
    const size_t per = tokens.size() / static_cast<size_t>(opt.grad_accum);
    for (int64_t i = 0; i < opt.grad_accum; ++i) {
      MOEPP_ASSIGN_OR_RETURN(TrainBatch b, batch_from(tokens, targets, i * per, (i + 1) * per));
      micro.push_back(std::move(b));
    }
    MOEPP_ASSIGN_OR_RETURN(Trainer trainer, Trainer::create(std::move(params), opt));
    json step_reports = json::array();
    for (int64_t s = 0; s < steps; ++s) {
      MOEPP_ASSIGN_OR_RETURN(StepReport r, trainer.step(pool, micro));
      step_reports.push_back({{"loss", r.loss}, {"ce", r.ce}, {"balance", r.balance}, {"grad_norm", r.grad_norm},
                              {"lr", r.lr}});
    }
    report["steps"] = step_reports;
    MOEPP_RETURN_IF_ERROR(write_buffer(out + "/params_after.safetensors", trainer.params(), trainer.params().values()));
  }
  std::ofstream(out + "/report.json") << report.dump(1) << "\n";
  return Status::Ok();
}

}  // namespace
}  // namespace moepp

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: moepp_train_check JOB.json\n");
    return 2;
  }
  moepp::Status s = moepp::run(argv[1]);
  if (!s.ok()) {
    std::fprintf(stderr, "moepp_train_check: %s\n", s.message().c_str());
    return 1;
  }
  return 0;
}
