// Resumable training checkpoints: parameters and AdamW moments (f32 safetensors, exact bits)
// plus a JSON file with the step count and whatever the caller needs to rebuild the run (model
// config, options, seeds). Restoring them and replaying the same batches continues a run
// bit for bit.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "base/status.h"
#include "train/adamw.h"
#include "train/train_params.h"

namespace moepp {

// Writes dir/train_state-<step>.safetensors, then dir/train_state.json (meta plus "step" and
// "state_file") via a temporary file and a rename: the JSON is the commit point, so an
// interrupted save leaves the previous checkpoint usable. Older state files are then removed.
Status save_train_checkpoint(const std::string& dir, const TrainParams& params, AdamW& adamw,
                             const nlohmann::json& meta);

// Reads dir/train_state.json (returned) without touching any state.
Result<nlohmann::json> read_train_checkpoint_meta(const std::string& dir);

// Restores parameters, moments and step count into `params` / `adamw`, which must have the
// layout the checkpoint was written with (names, shapes).
Status load_train_checkpoint(const std::string& dir, TrainParams* params, AdamW* adamw);

}  // namespace moepp
