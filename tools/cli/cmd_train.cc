// `moepp train`: trains an MoE++ or vanilla MoE model on plain-text files (src/train/), with a
// progress line (step, loss, tokens/s, ETA), periodic validation loss, resumable checkpoints
// (--checkpoint-dir, --resume: exact continuation), and writes the final model as a Hugging Face
// MoE++ directory that `moepp generate` loads. Every flag can also come from --config FILE.json
// ({"steps": 100, "seq-len": 128, ...}, keys = long flag names); flags on the command line win.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli_common.h"
#include "commands.h"
#include "bench/machine.h"
#include "io/safetensors.h"
#include "models/model.h"
#include "platform/thread_pool.h"
#include "tokenizer/tokenizer.h"
#include "train/linear.h"
#include "train/model_io.h"
#include "train/text_data.h"
#include "train/train_checkpoint.h"
#include "train/trainer.h"

namespace moepp::cli {
namespace {

// The run's throughput as tokens/s and as a share of the machine's fp32 FMA peak, measured here
// with the same thread count (matmul FLOPs only: the products issue almost all of them).
void report_throughput(int64_t tokens, uint64_t flops, double seconds, int threads) {
  if (tokens <= 0 || seconds <= 0) return;
  MachineOptions mo;
  mo.threads = threads;
  mo.repetitions = 3;
  std::string isa;
  const double peak = measure_fp32_gflop_s(mo, &isa);
  const double gflop_s = static_cast<double>(flops) / seconds / 1e9;
  std::fprintf(stderr,
               "train: %lld tokens in %.0f s: %.0f tok/s, %.1f GFLOP/s of matmuls = %.1f%% of the measured fp32 peak "
               "(%.1f GFLOP/s, %s, %d threads)\n",
               (long long)tokens, seconds, static_cast<double>(tokens) / seconds, gflop_s,
               peak > 0 ? 100.0 * gflop_s / peak : 0.0, peak, isa.c_str(), threads);
}

using json = nlohmann::json;

struct TrainCliOptions {
  std::string config_file, init_from, model_config, tokenizer, out, checkpoint_dir;
  std::vector<std::string> data, val_data;
  double val_fraction = 0.05;
  int64_t steps = 100, seq_len = 128, batch = 8, grad_accum = 1, warmup = 10;
  double lr = 5e-4, min_lr = 5e-5, init_lr = 1e-7, weight_decay = 0.1, beta1 = 0.9, beta2 = 0.95, eps = 1e-8,
         clip = 1.0;
  double balance_beta = 0.01, tau = 0.75;
  std::string balance_layers = "sum";
  std::string save_dtype = "f32";
  bool balance_scale_n = false;
  double capacity_factor = 0;
  bool capacity_per_slot = false;
  int64_t seed = 1, threads = 0, log_every = 1, eval_every = 50, eval_batches = 4, checkpoint_every = 0,
          stop_at = 0;
  bool resume = false;
};

// A flag bound to a field, settable from the command line or from the JSON config.
struct Binding {
  std::string key;
  CLI::Option* option;
  std::function<Status(const json&)> from_json;
};

template <typename T>
void bind_option(CLI::App* sub, std::vector<Binding>* b, const std::string& key, T& field, const std::string& help) {
  CLI::Option* opt = sub->add_option("--" + key, field, help)->capture_default_str();
  // A repeated scalar flag: the last one wins (handy when appending to a stored command line).
  if constexpr (!std::is_same_v<T, std::vector<std::string>>) opt->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  b->push_back({key, opt, [&field, key](const json& v) -> Status {
                  bool ok = false;
                  if constexpr (std::is_same_v<T, std::string>) ok = v.is_string();
                  else if constexpr (std::is_same_v<T, std::vector<std::string>>) {
                    ok = v.is_array();
                    for (const auto& e : v) ok = ok && e.is_string();
                  } else if constexpr (std::is_integral_v<T>) ok = v.is_number_integer();
                  else ok = v.is_number();
                  if (!ok) return Status::Error("config key '" + key + "': wrong type, got " + v.dump());
                  field = v.get<T>();
                  return Status::Ok();
                }});
}

void bind_flag(CLI::App* sub, std::vector<Binding>* b, const std::string& key, bool& field, const std::string& help) {
  CLI::Option* opt = sub->add_flag("--" + key, field, help);
  b->push_back({key, opt, [&field, key](const json& v) -> Status {
                  if (!v.is_boolean()) return Status::Error("config key '" + key + "': expected true or false, got " + v.dump());
                  field = v.get<bool>();
                  return Status::Ok();
                }});
}

Status apply_config_file(const std::string& path, const std::vector<Binding>& bindings) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::Error(path + ": cannot open training config");
  std::stringstream ss;
  ss << in.rdbuf();
  MOEPP_ASSIGN_OR_RETURN(json j, parse_json_strict(ss.str(), path));
  if (!j.is_object()) return Status::Error(path + ": expected a JSON object of flag names to values");
  for (const auto& [key, value] : j.items()) {
    const Binding* found = nullptr;
    for (const Binding& b : bindings)
      if (b.key == key) found = &b;
    if (found == nullptr || key == "config") return Status::Error(path + ": unknown key '" + key + "' (keys are the long flag names of moepp train)");
    if (found->option->count() > 0) continue;  // the command line wins
    MOEPP_RETURN_IF_ERROR(found->from_json(value).with_context(path));
  }
  return Status::Ok();
}

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const long s = static_cast<long>(seconds + 0.5);
  if (s >= 3600) return str_format("%ldh%02ldm", s / 3600, (s / 60) % 60);
  if (s >= 60) return str_format("%ldm%02lds", s / 60, s % 60);
  return str_format("%lds", s);
}

uint64_t stream_checksum(const std::vector<int32_t>& tokens) {  // FNV-1a over the ids
  uint64_t h = 1469598103934665603ULL;
  for (int32_t t : tokens) h = (h ^ static_cast<uint32_t>(t)) * 1099511628211ULL;
  return h;
}

Result<double> validation_loss(ThreadPool& pool, const Trainer& trainer, const TokenData& data,
                               const TrainCliOptions& o) {
  double total = 0;
  for (int64_t i = 0; i < o.eval_batches; ++i) {
    MOEPP_ASSIGN_OR_RETURN(TrainBatch b, validation_batch(data.val, o.batch, o.seq_len, i));
    MOEPP_ASSIGN_OR_RETURN(LossReport r, trainer.evaluate(pool, b));
    total += r.ce;
  }
  return total / static_cast<double>(o.eval_batches);
}

Status validate(const TrainCliOptions& o) {
  if (o.data.empty()) return Status::Error("--data: give at least one training text file");
  if (o.out.empty()) return Status::Error("--out: give the directory for the trained model");
  if (o.save_dtype != "f32" && o.save_dtype != "bf16")
    return Status::Error("--save-dtype: expected f32 or bf16, got '" + o.save_dtype + "'");
  if (!o.resume && o.init_from.empty() == o.model_config.empty())
    return Status::Error("give the starting model with --init-from DIR (trained weights) or --model-config FILE "
                         "(random weights), one of them");
  if (o.resume && o.checkpoint_dir.empty()) return Status::Error("--resume needs --checkpoint-dir");
  if (o.tokenizer.empty() && o.init_from.empty()) return Status::Error("--tokenizer: give the tokenizer file or directory");
  if (o.steps < 1) return Status::Error(str_format("--steps: expected >= 1, got %lld", (long long)o.steps));
  if (o.seq_len < 1 || o.batch < 1)
    return Status::Error(str_format("--seq-len and --batch: expected >= 1, got %lld and %lld", (long long)o.seq_len,
                                    (long long)o.batch));
  if (o.log_every < 1 || o.eval_every < 0 || o.eval_batches < 1 || o.checkpoint_every < 0 || o.stop_at < 0 || o.threads < 0)
    return Status::Error("--log-every, --eval-batches: expected >= 1; --eval-every, --checkpoint-every, --stop-at, --threads: >= 0");
  if (o.threads > kMaxThreads) return Status::Error(str_format("--threads: expected 0 to %d, got %lld", kMaxThreads, static_cast<long long>(o.threads)));
  if (o.balance_layers != "sum" && o.balance_layers != "mean")
    return Status::Error("--balance-layers: expected sum or mean, got " + o.balance_layers);
  return Status::Ok();
}

int run_train(TrainCliOptions& o, const std::vector<Binding>& bindings) {
  if (!o.config_file.empty()) {
    Status s = apply_config_file(o.config_file, bindings);
    if (!s.ok()) return fail(s);
  }
  if (Status s = validate(o); !s.ok()) return fail(s);
  TrainerOptions topt;
  topt.loss.beta = static_cast<float>(o.balance_beta);
  topt.loss.tau = static_cast<float>(o.tau);
  topt.loss.layers = o.balance_layers == "mean" ? LayerAggregation::kMean : LayerAggregation::kSum;
  topt.loss.scale_by_n_experts = o.balance_scale_n;
  topt.adamw = {o.beta1, o.beta2, o.eps, o.weight_decay, o.clip};
  topt.schedule = {o.lr, o.min_lr, o.init_lr, o.warmup, o.steps};
  topt.grad_accum = o.grad_accum;
  topt.capacity.factor = static_cast<float>(o.capacity_factor);
  topt.capacity.per_slot = o.capacity_per_slot;
  if (Status s = topt.validate(); !s.ok()) return fail(s);

  // The model: from a checkpoint, a trained directory, or a config with random weights.
  json model_config_json;
  json meta;
  if (o.resume) {
    auto m = read_train_checkpoint_meta(o.checkpoint_dir);
    if (!m.ok()) return fail(m.status());
    meta = *m;
    if (!meta.contains("model_config")) return fail(Status::Error(o.checkpoint_dir + "/train_state.json: no model_config"));
    model_config_json = meta["model_config"];
  } else {
    const std::string path = o.init_from.empty() ? o.model_config : o.init_from + "/config.json";
    std::ifstream in(path, std::ios::binary);
    if (!in) return fail(Status::Error(path + ": cannot open"));
    std::stringstream ss;
    ss << in.rdbuf();
    auto j = parse_json_strict(ss.str(), path);
    if (!j.ok()) return fail(j.status());
    model_config_json = *j;
  }
  auto config = model_config_from_json(model_config_json, o.resume ? o.checkpoint_dir + "/train_state.json" : "model config");
  if (!config.ok()) return fail(config.status());
  Result<TrainParams> params = Status::Error("unset");
  if (!o.resume && !o.init_from.empty()) {
    auto model = [&] {
      ThreadPool pool(thread_count(static_cast<int>(o.threads)));  // for the load
      LoadOptions load;
      load.pool = &pool;
      load.progress = progress_bar("loading");
      return Model::load(o.init_from, load);
    }();
    if (!model.ok()) return fail(model.status());
    params = TrainParams::from_model(**model);
  } else {
    // A resumed --init-from run gets the special tokens Model::load resolved, for the export.
    const std::string init_dir = meta.is_object() ? meta.value("init_from", std::string()) : std::string();
    if (!init_dir.empty()) (void)resolve_special_tokens(init_dir, &config.value());
    params = TrainParams::random(*config, static_cast<uint64_t>(o.seed));
  }
  if (!params.ok()) return fail(params.status());

  const std::string tok_path = o.tokenizer.empty() ? o.init_from : o.tokenizer;
  auto tokenizer = load_tokenizer(tok_path);
  if (!tokenizer.ok()) return fail(tokenizer.status());
  if ((*tokenizer)->vocab_size() > params->config().vocab_size)
    return fail(Status::Error(str_format("tokenizer %s has %lld tokens, more than the model's vocab_size %lld",
                                         tok_path.c_str(), (long long)(*tokenizer)->vocab_size(),
                                         (long long)params->config().vocab_size)));
  auto data = load_text_data(**tokenizer, o.data, o.val_data, o.val_fraction);
  if (!data.ok()) return fail(data.status());
  const bool have_val = static_cast<int64_t>(data->val.size()) >= o.seq_len + 1;

  auto trainer = Trainer::create(std::move(params).value(), topt);
  if (!trainer.ok()) return fail(trainer.status());
  const uint64_t checksum = stream_checksum(data->train);
  if (o.resume) {
    if (!meta.contains("data_checksum") || meta["data_checksum"] != checksum || meta.value("seed", int64_t{-1}) != o.seed)
      return fail(Status::Error(o.checkpoint_dir + ": the training data or --seed differ from the checkpointed run; "
                                "an exact resume needs the same ones"));
    if (Status s = load_train_checkpoint(o.checkpoint_dir, &trainer->params(), &trainer->optimizer()); !s.ok())
      return fail(s);
  }
  ThreadPool pool(thread_count(static_cast<int>(o.threads)));
  const int64_t start = trainer->optimizer().steps();
  const int64_t end = o.stop_at > 0 ? std::min(o.steps, o.stop_at) : o.steps;
  std::fprintf(stderr, "train: %lld parameters, %zu training tokens, %zu validation tokens, steps %lld..%lld of %lld\n",
               (long long)trainer->params().size(), data->train.size(), data->val.size(), (long long)start + 1,
               (long long)end, (long long)o.steps);
  auto save = [&]() -> Status {
    json m = {{"model_config", model_config_json}, {"seed", o.seed}, {"data_checksum", checksum},
              {"init_from", o.resume ? meta.value("init_from", std::string()) : o.init_from}};
    return save_train_checkpoint(o.checkpoint_dir, trainer->params(), trainer->optimizer(), m);
  };
  const auto t0 = std::chrono::steady_clock::now();
  const uint64_t flops0 = matmul_flops_issued();
  int64_t tokens_done = 0;
  for (int64_t step = start; step < end; ++step) {
    std::vector<TrainBatch> micro;
    for (int64_t m = 0; m < o.grad_accum; ++m) {
      auto b = sample_batch(data->train, o.batch, o.seq_len, static_cast<uint64_t>(o.seed), step, m);
      if (!b.ok()) return fail(b.status());
      micro.push_back(std::move(b).value());
    }
    auto r = trainer->step(pool, micro);
    if (!r.ok()) return fail(r.status());
    if (!std::isfinite(r->loss))
      return fail(Status::Error(str_format("step %lld: loss is not finite (%g); lower --lr", (long long)r->step, r->loss)));
    tokens_done += r->n_tokens;
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double tok_s = elapsed > 0 ? static_cast<double>(tokens_done) / elapsed : 0;
    const double gflop_s = elapsed > 0 ? static_cast<double>(matmul_flops_issued() - flops0) / elapsed / 1e9 : 0;
    const double eta = (elapsed / static_cast<double>(step - start + 1)) * static_cast<double>(end - step - 1);
    if (r->step % o.log_every == 0 || step + 1 == end)
      std::fprintf(stderr, "step %lld/%lld | loss %.4f (ce %.4f, balance %.4f) | lr %.2e | grad norm %.3f | %.0f tok/s, %.1f GFLOP/s | ETA %s\n",
                   (long long)r->step, (long long)o.steps, r->loss, r->ce, r->balance, r->lr, r->grad_norm, tok_s,
                   gflop_s, format_duration(eta).c_str());
    if (have_val && ((o.eval_every > 0 && r->step % o.eval_every == 0) || step + 1 == end)) {
      auto v = validation_loss(pool, *trainer, *data, o);
      if (!v.ok()) return fail(v.status());
      std::fprintf(stderr, "step %lld/%lld | validation loss %.4f (ppl %.2f)\n", (long long)r->step, (long long)o.steps,
                   *v, std::exp(*v));
    }
    if (!o.checkpoint_dir.empty() && ((o.checkpoint_every > 0 && r->step % o.checkpoint_every == 0) || step + 1 == end))
      if (Status s = save(); !s.ok()) return fail(s);
  }
  report_throughput(tokens_done, matmul_flops_issued() - flops0,
                    std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), pool.size());
  const StoredDType stored = o.save_dtype == "bf16" ? StoredDType::kBF16 : StoredDType::kF32;
  if (Status s = export_hf_model(trainer->params(), o.out, stored); !s.ok()) return fail(s);
  if (Status s = copy_tokenizer_files(tok_path, o.out); !s.ok()) return fail(s);
  std::fprintf(stderr, "train: wrote %s (step %lld)\n", o.out.c_str(), (long long)trainer->optimizer().steps());
  return 0;
}

}  // namespace

Runner add_train_command(CLI::App& app) {
  auto o = std::make_shared<TrainCliOptions>();
  auto b = std::make_shared<std::vector<Binding>>();
  CLI::App* sub = app.add_subcommand("train", "Train an MoE++ or vanilla MoE model on text files (fp32, CPU)");
  sub->add_option("--config", o->config_file, "JSON file of flag values ({\"steps\": 100, ...}); flags given here win");
  bind_option(sub, b.get(), "init-from", o->init_from, "Start from the weights of this model directory");
  bind_option(sub, b.get(), "model-config", o->model_config, "Start from random weights for this config.json (MoE++, mixtral, llama_moe)");
  bind_option(sub, b.get(), "tokenizer", o->tokenizer, "Tokenizer file or directory (default: the --init-from directory)");
  bind_option(sub, b.get(), "data", o->data, "Training text files (one document each)");
  bind_option(sub, b.get(), "val-data", o->val_data, "Validation text files (default: hold out --val-fraction of --data)");
  bind_option(sub, b.get(), "val-fraction", o->val_fraction, "Share of the training tokens held out for validation");
  bind_option(sub, b.get(), "out", o->out, "Directory for the trained model (Hugging Face MoE++ layout)");
  bind_option(sub, b.get(), "save-dtype", o->save_dtype, "Weights of the exported model: f32 or bf16 (checkpoints stay f32)");
  bind_option(sub, b.get(), "steps", o->steps, "Optimiser steps in total");
  bind_option(sub, b.get(), "seq-len", o->seq_len, "Tokens per training sequence");
  bind_option(sub, b.get(), "batch", o->batch, "Sequences per micro-batch");
  bind_option(sub, b.get(), "grad-accum", o->grad_accum, "Micro-batches per optimiser step");
  bind_option(sub, b.get(), "lr", o->lr, "Peak learning rate");
  bind_option(sub, b.get(), "min-lr", o->min_lr, "Final learning rate of the cosine decay");
  bind_option(sub, b.get(), "init-lr", o->init_lr, "Learning rate the warm-up starts from");
  bind_option(sub, b.get(), "warmup", o->warmup, "Warm-up steps");
  bind_option(sub, b.get(), "weight-decay", o->weight_decay, "AdamW decoupled weight decay (2-D matrices except the embedding)");
  bind_option(sub, b.get(), "adam-beta1", o->beta1, "AdamW beta1");
  bind_option(sub, b.get(), "adam-beta2", o->beta2, "AdamW beta2");
  bind_option(sub, b.get(), "adam-eps", o->eps, "AdamW epsilon");
  bind_option(sub, b.get(), "clip", o->clip, "Global gradient-norm clip (0: off)");
  bind_option(sub, b.get(), "balance-beta", o->balance_beta, "Weight of the heterogeneous load-balance loss");
  bind_option(sub, b.get(), "tau", o->tau, "Load-balance weight of zero/copy/constant experts");
  bind_option(sub, b.get(), "balance-layers", o->balance_layers, "Combine the layers' balance losses: sum or mean");
  bind_flag(sub, b.get(), "balance-scale-n", o->balance_scale_n, "Multiply the balance loss by the number of experts");
  bind_option(sub, b.get(), "capacity-factor", o->capacity_factor,
              "Expert capacity factor gamma of paper Eq. 8 (0: dropless)");
  bind_flag(sub, b.get(), "capacity-per-slot", o->capacity_per_slot,
            "Capacity counts token-slots (tokens x top_k) instead of tokens");
  bind_option(sub, b.get(), "seed", o->seed, "Seed for the initial weights and the batch order");
  bind_option(sub, b.get(), "threads", o->threads, "Threads (0: physical cores)");
  bind_option(sub, b.get(), "log-every", o->log_every, "Print a progress line every N steps");
  bind_option(sub, b.get(), "eval-every", o->eval_every, "Validation loss every N steps (0: only at the end)");
  bind_option(sub, b.get(), "eval-batches", o->eval_batches, "Validation batches per evaluation");
  bind_option(sub, b.get(), "checkpoint-dir", o->checkpoint_dir, "Directory for resumable checkpoints");
  bind_option(sub, b.get(), "checkpoint-every", o->checkpoint_every, "Checkpoint every N steps (0: only at the end of the run)");
  bind_option(sub, b.get(), "stop-at", o->stop_at, "Stop after this step (checkpoint, export) to resume later (0: run all steps)");
  bind_flag(sub, b.get(), "resume", o->resume, "Continue from --checkpoint-dir exactly where it stopped");
  return [o, b] { return run_train(*o, *b); };
}

}  // namespace moepp::cli

namespace moepp::cli {
MOEPP_REGISTER_COMMAND(70, add_train_command);
}  // namespace moepp::cli
