// `moepp convert -m IN -o OUT --dtype bf16`: rewrites a model directory as a Hugging Face MoE++
// checkpoint with f32 or bf16 weights (e.g. a trained f32 export made small enough to ship),
// copying its tokenizer files. Any family moepp loads is written in the MoE++ layout.
#include <memory>
#include <string>

#include "cli_common.h"
#include "commands.h"
#include "models/model.h"
#include "train/model_io.h"

namespace moepp::cli {
namespace {

struct ConvertOptions {
  std::string in, out, dtype = "bf16";
  int threads = 0;
};

int run_convert(const ConvertOptions& o) {
  StoredDType stored;
  if (o.dtype == "bf16") stored = StoredDType::kBF16;
  else if (o.dtype == "f32") stored = StoredDType::kF32;
  else return fail(Status::Error("--dtype: expected bf16 or f32, got '" + o.dtype + "'"));
  if (Status s = check_exportable(o.in); !s.ok()) return fail(s);  // before the load
  ThreadPool pool(thread_count(o.threads));  // converts the weights while loading and writing
  LoadOptions load;
  load.pool = &pool;
  load.progress = progress_bar("loading");
  // A bf16 export holds the model in bf16: the loader rounds f32 and f16 values to bf16 as the
  // writer would (nearest even), so the file is the same at half the memory.
  if (stored == StoredDType::kBF16) load.dtype = ComputeDType::kBF16;
  auto model = Model::load(o.in, load);
  if (!model.ok()) return fail(model.status());
  ExportQuant floats_only;
  floats_only.pool = &pool;
  floats_only.progress = progress_bar("writing");
  if (Status s = export_model(**model, o.out, stored, floats_only); !s.ok()) return fail(s);
  if (Status s = copy_tokenizer_files(o.in, o.out); !s.ok()) return fail(s);
  std::fprintf(stderr, "convert: wrote %s (%lld parameters, %s)\n", o.out.c_str(), (long long)(*model)->param_counts().total,
               o.dtype.c_str());
  return 0;
}

}  // namespace

Runner add_convert_command(CLI::App& app) {
  auto o = std::make_shared<ConvertOptions>();
  CLI::App* sub = app.add_subcommand("convert", "Rewrite a model as a Hugging Face MoE++ checkpoint in f32 or bf16");
  sub->add_option("-m,--model", o->in, "Model directory to read (any supported family)")->required();
  sub->add_option("-o,--out", o->out, "Directory to write (config.json, model.safetensors, tokenizer files)")->required();
  sub->add_option("--dtype", o->dtype, "Stored weight type: bf16 (round to nearest even) or f32")->capture_default_str();
  add_threads_option(sub, &o->threads, "Threads that convert the weights (default: physical cores)");
  return [o] { return run_convert(*o); };
}

}  // namespace moepp::cli

namespace moepp::cli {
MOEPP_REGISTER_COMMAND(75, add_convert_command);
}  // namespace moepp::cli
