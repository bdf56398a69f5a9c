// open_checkpoint and sharded indexes: file preference, shard cross-checks, path traversal.
#include "io/checkpoint_dir.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "io_test_util.h"

namespace moepp {
namespace {

using testing_io::Bytes;
using testing_io::TempDir;
using testing_io::write_file;

const std::string kData = MOEPP_IO_TEST_DATA;

#define EXPECT_HAS(msg, text)                                           \
  do {                                                                  \
    const std::string m_ = (msg);                                       \
    EXPECT_NE(m_.find(text), std::string::npos) << "error was: " << m_; \
  } while (0)

// A safetensors file holding one F32 [n] tensor per name, values 0, 1, 2, ...
Bytes shard(const std::vector<std::string>& names, int n = 2) {
  std::string h = "{";
  Bytes data;
  for (size_t i = 0; i < names.size(); ++i) {
    const size_t b = data.size();
    for (int k = 0; k < n; ++k) {
      float v = static_cast<float>(k);
      const uint8_t* p = reinterpret_cast<const uint8_t*>(&v);
      data.insert(data.end(), p, p + 4);
    }
    h += (i ? "," : "") + std::string("\"") + names[i] + R"(":{"dtype":"F32","shape":[)" + std::to_string(n) +
         R"(],"data_offsets":[)" + std::to_string(b) + "," + std::to_string(data.size()) + "]}";
  }
  return testing_io::safetensors_bytes(h + "}", data);
}

std::string index_json(const std::vector<std::pair<std::string, std::string>>& map) {
  std::string s = R"({"metadata":{"total_size":12345},"weight_map":{)";
  for (size_t i = 0; i < map.size(); ++i)
    s += (i ? "," : "") + std::string("\"") + map[i].first + "\":\"" + map[i].second + "\"";
  return s + "}}";
}

std::string open_error(const std::string& dir) {
  auto r = open_checkpoint(dir);
  return r.ok() ? std::string() : r.status().message();
}

TEST(CheckpointDir, NothingFoundListsCandidates) {
  TempDir d;
  EXPECT_EQ(open_error(d.path()), d.path() + ": no weights found, expected one of model.safetensors.index.json, "
                                             "model.safetensors, pytorch_model.bin.index.json, pytorch_model.bin");
}

TEST(CheckpointDir, SingleSafetensors) {
  TempDir d;
  write_file(d.file("model.safetensors"), shard({"a", "b"}));
  auto r = open_checkpoint(d.path());
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->entries().size(), 2u);
  EXPECT_EQ(r->format(), "safetensors");
}

TEST(CheckpointDir, PreferenceOrder) {
  TempDir d;
  write_file(d.file("pytorch_model.bin"), std::string("not a zip"));
  write_file(d.file("model.safetensors"), shard({"single"}));
  auto r = open_checkpoint(d.path());
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_NE(r->find("single"), nullptr);  // safetensors beats .bin
  write_file(d.file("model-1.safetensors"), shard({"sharded"}));
  write_file(d.file("model.safetensors.index.json"), index_json({{"sharded", "model-1.safetensors"}}));
  auto s = open_checkpoint(d.path());
  ASSERT_TRUE(s.ok()) << s.status().message();
  EXPECT_NE(s->find("sharded"), nullptr);  // the index beats the single file
  EXPECT_EQ(s->find("single"), nullptr);
}

TEST(CheckpointDir, ShardedSafetensors) {
  TempDir d;
  write_file(d.file("model-00001-of-00002.safetensors"), shard({"a", "b"}));
  write_file(d.file("model-00002-of-00002.safetensors"), shard({"c"}, 3));
  write_file(d.file("model.safetensors.index.json"),
             index_json({{"a", "model-00001-of-00002.safetensors"},
                         {"b", "model-00001-of-00002.safetensors"},
                         {"c", "model-00002-of-00002.safetensors"}}));
  auto r = open_checkpoint(d.path());
  ASSERT_TRUE(r.ok()) << r.status().message();
  ASSERT_EQ(r->entries().size(), 3u);
  EXPECT_EQ(r->find("c")->shape, std::vector<int64_t>{3});
  EXPECT_EQ(load_as_f32(r->find("c")->data, DType::kF32, 2), 2.0f);
  EXPECT_EQ(r->find("c")->file, d.file("model-00002-of-00002.safetensors"));
}

TEST(CheckpointDir, MissingShard) {
  TempDir d;
  write_file(d.file("model-1.safetensors"), shard({"a"}));
  write_file(d.file("model.safetensors.index.json"),
             index_json({{"a", "model-1.safetensors"}, {"b", "model-2.safetensors"}}));
  EXPECT_HAS(open_error(d.path()),
             "model.safetensors.index.json: shard 'model-2.safetensors' listed in weight_map not found");
}

TEST(CheckpointDir, NameMissingInShard) {
  TempDir d;
  write_file(d.file("model-1.safetensors"), shard({"a"}));
  write_file(d.file("model.safetensors.index.json"),
             index_json({{"a", "model-1.safetensors"}, {"b", "model-1.safetensors"}}));
  EXPECT_HAS(open_error(d.path()), "model-1.safetensors: tensor 'b' listed in");
  EXPECT_HAS(open_error(d.path()), "weight_map is missing from this shard");
}

TEST(CheckpointDir, UnexpectedTensor) {
  TempDir d;
  write_file(d.file("model-1.safetensors"), shard({"a", "extra"}));
  write_file(d.file("model.safetensors.index.json"), index_json({{"a", "model-1.safetensors"}}));
  EXPECT_HAS(open_error(d.path()), "model-1.safetensors: unexpected tensor 'extra'");
}

TEST(CheckpointDir, TensorInTwoShards) {
  TempDir d;
  write_file(d.file("model-1.safetensors"), shard({"a"}));
  write_file(d.file("model-2.safetensors"), shard({"a", "b"}));
  write_file(d.file("model.safetensors.index.json"),
             index_json({{"a", "model-1.safetensors"}, {"b", "model-2.safetensors"}}));
  EXPECT_HAS(open_error(d.path()), "model-2.safetensors: tensor 'a' also appears in shard 'model-2.safetensors', "
                                   "expected it only in 'model-1.safetensors'");
}

TEST(CheckpointDir, PathTraversalRejected) {
  TempDir d;
  for (const char* bad : {"../model-1.safetensors", "/etc/passwd", "sub/model-1.safetensors", "..", "a\\\\b", ""}) {
    write_file(d.file("model.safetensors.index.json"), index_json({{"a", bad}}));
    SCOPED_TRACE(bad);
    EXPECT_HAS(open_error(d.path()), "expected a plain file name in the same directory");
  }
}

TEST(CheckpointDir, BadIndexJson) {
  auto err = [](const std::string& text) {
    auto r = parse_checkpoint_index(text, "i.json");
    return r.ok() ? std::string() : r.status().message();
  };
  EXPECT_HAS(err("{"), "i.json: invalid JSON");
  EXPECT_HAS(err("[]"), "i.json: expected a JSON object, got array");
  EXPECT_HAS(err(R"({"metadata":{}})"), "i.json: missing field 'weight_map'");
  EXPECT_HAS(err(R"({"weight_map":[]})"), "i.json: weight_map must be an object");
  EXPECT_HAS(err(R"({"weight_map":{}})"), "weight_map is empty");
  EXPECT_HAS(err(R"({"weight_map":{"a":1}})"), "i.json: weight_map['a'] must be a shard file name, got number");
  EXPECT_HAS(err(R"({"weight_map":{"a":"x","a":"y"}})"), "duplicate key 'a'");
  EXPECT_HAS(err(R"({"metadata":3,"weight_map":{"a":"x"}})"), "metadata must be an object");
  // total_size is not checked, unknown top-level keys are tolerated.
  auto ok = parse_checkpoint_index(R"({"metadata":{"total_size":"junk"},"other":1,"weight_map":{"a":"x","b":"x","c":"y"}})",
                                   "i.json");
  ASSERT_TRUE(ok.ok()) << ok.status().message();
  EXPECT_EQ(ok->shards, (std::vector<std::string>{"x", "y"}));
  EXPECT_EQ(ok->weight_map.size(), 3u);
}

TEST(CheckpointDir, ShardedPytorchBinFixture) {
  auto r = open_checkpoint(kData + "/sharded");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->format(), "pytorch");
  ASSERT_EQ(r->entries().size(), 2u);
  EXPECT_EQ(r->find("a")->dtype, DType::kF32);
  EXPECT_EQ(load_as_f32(r->find("a")->data, DType::kF32, 2), 0.0f);  // arange(3)*0.5-1
  EXPECT_EQ(r->find("b")->dtype, DType::kBF16);
  EXPECT_EQ(load_as_f32(r->find("b")->data, DType::kBF16, 1), -0.5f);
}

TEST(CheckpointDir, PytorchBinIndexCrossChecked) {
  TempDir d;
  const std::string s1 = "pytorch_model-00001-of-00002.bin", s2 = "pytorch_model-00002-of-00002.bin";
  std::filesystem::copy_file(kData + "/sharded/" + s1, d.file(s1));
  std::filesystem::copy_file(kData + "/sharded/" + s2, d.file(s2));
  write_file(d.file("pytorch_model.bin.index.json"), index_json({{"a", s1}, {"c", s2}}));
  EXPECT_HAS(open_error(d.path()), s2 + ": unexpected tensor 'b'");
}

TEST(CheckpointDir, SinglePytorchBin) {
  TempDir d;
  std::filesystem::copy_file(kData + "/simple.bin", d.file("pytorch_model.bin"));
  auto r = open_checkpoint(d.path());
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->entries().size(), 6u);
}

}  // namespace
}  // namespace moepp
