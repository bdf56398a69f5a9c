// `moepp quantize -m IN -o OUT --type q8|q4|bf16|f32 [--experts T] [--rest T]`: writes a model
// directory whose experts and other large matrices are stored group-quantised (format in
// train/model_io.h), so later commands load it without quantising at every start. Any family
// moepp loads is written in the MoE++ layout, as `moepp convert` does.
#include <filesystem>
#include <memory>
#include <string>

#include "cli_common.h"
#include "commands.h"
#include "generation_flags.h"
#include "models/model.h"
#include "train/model_io.h"

namespace moepp::cli {
namespace {

struct QuantizeOptions {
  std::string in, out, type, experts, rest;
  int threads = 0;
};

int run_quantize(const QuantizeOptions& o) {
  ExportQuant quant;
  StoredDType floats = StoredDType::kBF16;
  if (o.type == "f32" || o.type == "bf16") {
    floats = o.type == "f32" ? StoredDType::kF32 : StoredDType::kBF16;
  } else {
    auto all = parse_quant(o.type, "--type");
    if (!all.ok() || *all == WeightQuant::kNone)
      return fail(Status::Error("--type: expected q8, q4, bf16 or f32, got '" + o.type + "'"));
    quant.experts = quant.rest = *all;
  }
  if (!o.experts.empty()) {
    auto q = parse_quant(o.experts, "--experts");
    if (!q.ok()) return fail(q.status());
    quant.experts = *q;
  }
  if (!o.rest.empty()) {
    auto q = parse_quant(o.rest, "--rest");
    if (!q.ok()) return fail(q.status());
    quant.rest = *q;
  }
  if (Status s = check_exportable(o.in); !s.ok()) return fail(s);  // before the load
  // Quantised as every command quantises at load (the stored model gives the same logits), on a
  // pool; the export then writes the model tensor by tensor.
  ThreadPool pool(thread_count(o.threads));
  LoadOptions load;
  load.expert_quant = quant.experts;
  load.rest_quant = quant.rest;
  load.pool = &pool;
  load.progress = progress_bar("loading");
  quant.pool = &pool;
  quant.progress = progress_bar("writing");
  auto model = Model::load(o.in, load);
  if (!model.ok()) return fail(model.status());
  // Norms, routers and embeddings stay floating point: f32 if the source is f32 and --type
  // does not ask for bf16.
  if (o.type != "bf16" && (*model)->config().torch_dtype != "bfloat16") floats = StoredDType::kF32;
  if (o.type == "f32") floats = StoredDType::kF32;
  if (Status s = export_model(**model, o.out, floats, quant); !s.ok()) return fail(s);
  if (Status s = copy_tokenizer_files(o.in, o.out); !s.ok()) return fail(s);
  std::error_code ec;
  const auto bytes = std::filesystem::file_size(o.out + "/model.safetensors", ec);
  std::fprintf(stderr, "quantize: wrote %s: experts %s, rest %s, other tensors %s; model.safetensors %.1f MB\n",
               o.out.c_str(), quant_name(quant.experts), quant_name(quant.rest),
               floats == StoredDType::kF32 ? "f32" : "bf16", ec ? 0.0 : static_cast<double>(bytes) / 1e6);
  return 0;
}

}  // namespace

Runner add_quantize_command(CLI::App& app) {
  auto o = std::make_shared<QuantizeOptions>();
  CLI::App* sub = app.add_subcommand(
      "quantize", "Write a model with group-quantised weights (q8: int8, q4: 4-bit; 32 values per f32 scale)");
  sub->add_option("-m,--model", o->in, "Model directory to read (any supported family)")->required();
  sub->add_option("-o,--out", o->out, "Directory to write (config.json, model.safetensors, tokenizer files)")->required();
  sub->add_option("--type", o->type, "q8 or q4 for the experts and the rest; bf16 or f32: no quantisation, all floats")
      ->required();
  sub->add_option("--experts", o->experts, "Override for the FFN experts: q8, q4 or none");
  sub->add_option("--rest", o->rest, "Override for attention and lm_head: q8, q4 or none");
  add_threads_option(sub, &o->threads, "Threads that quantise (default: physical cores)");
  sub->footer(
      "Example: moepp quantize -m models/default -o /tmp/default-q4 --type q4 --rest q8\n"
      "The output loads with every command (-m /tmp/default-q4); compare quality with\n"
      "moepp perplexity --save-logits / --kl-base.");
  return [o] { return run_quantize(*o); };
}

}  // namespace moepp::cli

namespace moepp::cli {
MOEPP_REGISTER_COMMAND(76, add_quantize_command);
}  // namespace moepp::cli
