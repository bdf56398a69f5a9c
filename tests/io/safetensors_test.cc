// safetensors reader: valid round trips and one hand-corrupted file per validation rule (§8.2).
#include "io/safetensors.h"
#include "base/utf8.h"

#include <gtest/gtest.h>

#include <cmath>

#include "io_test_util.h"

namespace moepp {
namespace {

using testing_io::Bytes;
using testing_io::safetensors_bytes;

// Parses bytes as file "t.safetensors" and returns the error (empty if it parsed).
std::string parse_error(const Bytes& b) {
  auto r = parse_safetensors(b.data(), b.size(), "t.safetensors");
  return r.ok() ? std::string() : r.status().message();
}

std::string header_error(const std::string& header, const Bytes& data) {
  return parse_error(safetensors_bytes(header, data));
}

#define EXPECT_ERROR_HAS(msg, text)                                        \
  do {                                                                     \
    const std::string m_ = (msg);                                          \
    EXPECT_NE(m_.find(text), std::string::npos) << "error was: " << m_;    \
    EXPECT_EQ(m_.rfind("t.safetensors", 0), 0u) << "error was: " << m_;    \
  } while (0)

TEST(Safetensors, RoundTripF32Bf16F16) {
  const std::vector<float> f32 = {1.5f, -2.0f, 3.25f, 0.0f, -0.5f, 1e-3f};
  std::vector<uint16_t> bf16, f16 = {0x3c00, 0xc000, 0x3800, 0x0000};  // 1, -2, 0.5, 0
  for (float v : {1.0f, -2.5f, 0.15625f}) bf16.push_back(f32_to_bf16(v));
  Bytes data = testing_io::as_bytes(f32);
  testing_io::append(&data, testing_io::as_bytes(bf16));
  testing_io::append(&data, testing_io::as_bytes(f16));
  testing_io::append(&data, testing_io::as_bytes(std::vector<float>{7.0f}));
  const std::string h =
      R"({"__metadata__":{"format":"pt"},)"
      R"("a":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},)"
      R"("b":{"dtype":"BF16","shape":[3],"data_offsets":[24,30]},)"
      R"("c":{"dtype":"F16","shape":[2,2],"data_offsets":[30,38]},)"
      R"("s":{"dtype":"F32","shape":[],"data_offsets":[38,42]},)"
      R"("e":{"dtype":"I64","shape":[0,5],"data_offsets":[42,42]}})";
  const Bytes file = safetensors_bytes(h, data);

  auto r = parse_safetensors(file.data(), file.size(), "t.safetensors");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->metadata.at("format"), "pt");
  ASSERT_EQ(r->tensors.size(), 5u);
  std::map<std::string, TensorEntry> by_name;
  for (const auto& t : r->tensors) by_name[t.name] = t;
  const TensorEntry& a = by_name["a"];
  EXPECT_EQ(a.dtype, DType::kF32);
  EXPECT_EQ(a.shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(a.data, file.data() + 8 + h.size());  // zero-copy
  for (size_t i = 0; i < f32.size(); ++i) EXPECT_EQ(load_as_f32(a.data, a.dtype, i), f32[i]);
  const TensorEntry& b = by_name["b"];
  EXPECT_EQ(b.dtype, DType::kBF16);
  EXPECT_EQ(load_as_f32(b.data, b.dtype, 0), 1.0f);
  EXPECT_EQ(load_as_f32(b.data, b.dtype, 1), -2.5f);
  EXPECT_EQ(load_as_f32(b.data, b.dtype, 2), 0.15625f);
  const TensorEntry& c = by_name["c"];
  EXPECT_EQ(c.dtype, DType::kF16);
  EXPECT_EQ(load_as_f32(c.data, c.dtype, 0), 1.0f);
  EXPECT_EQ(load_as_f32(c.data, c.dtype, 1), -2.0f);
  EXPECT_EQ(load_as_f32(c.data, c.dtype, 2), 0.5f);
  EXPECT_EQ(by_name["s"].shape.size(), 0u);
  EXPECT_EQ(load_as_f32(by_name["s"].data, DType::kF32, 0), 7.0f);
  EXPECT_EQ(by_name["e"].nbytes, 0u);
  EXPECT_EQ(by_name["e"].dtype, DType::kI64);
}

TEST(Safetensors, AllSupportedDtypes) {
  const char* names[] = {"F32", "F16", "BF16", "F64", "I64", "I32", "I16", "I8", "U8", "BOOL"};
  const DType dtypes[] = {DType::kF32, DType::kF16, DType::kBF16, DType::kF64, DType::kI64,
                          DType::kI32, DType::kI16, DType::kI8,   DType::kU8,  DType::kBool};
  for (int i = 0; i < 10; ++i) {
    const size_t n = dtype_size(dtypes[i]) * 2;
    const std::string h = std::string(R"({"x":{"dtype":")") + names[i] +
                          R"(","shape":[2],"data_offsets":[0,)" + std::to_string(n) + "]}}";
    const Bytes f = safetensors_bytes(h, Bytes(n, 1));
    auto r = parse_safetensors(f.data(), f.size(), "t.safetensors");
    ASSERT_TRUE(r.ok()) << names[i] << ": " << r.status().message();
    EXPECT_EQ(r->tensors[0].dtype, dtypes[i]);
  }
}

TEST(Safetensors, WhitespaceAndEmptyAccepted) {
  EXPECT_EQ(header_error("  {}   ", {}), "");
  EXPECT_EQ(header_error(R"({"__metadata__":null})", {}), "");
  EXPECT_EQ(header_error(R"( {"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}    )", {9}), "");
  // Extra fields in a tensor object are ignored, like serde does.
  EXPECT_EQ(header_error(R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1],"x":1}})", {9}), "");
}

TEST(Safetensors, HeaderTooSmall) {
  EXPECT_ERROR_HAS(parse_error(Bytes{1, 2, 3}), "header too small");
  EXPECT_ERROR_HAS(parse_error(Bytes{}), "header too small");
}

TEST(Safetensors, HeaderTooLarge) {
  EXPECT_ERROR_HAS(parse_error(safetensors_bytes("{}", {}, 100'000'001)), "header too large");
  EXPECT_ERROR_HAS(parse_error(safetensors_bytes("{}", {}, ~uint64_t{0})), "header too large");
}

TEST(Safetensors, HeaderLengthPastEnd) {
  EXPECT_ERROR_HAS(parse_error(safetensors_bytes("{}", {}, 3)), "invalid header length");
  EXPECT_ERROR_HAS(parse_error(safetensors_bytes("{}", {}, 100'000'000)), "invalid header length");
}

TEST(Safetensors, InvalidUtf8) {
  EXPECT_ERROR_HAS(header_error("{\"a\xff\":1}", {}), "UTF-8");
  EXPECT_ERROR_HAS(header_error("{\"\xc0\xaf\":1}", {}), "UTF-8");        // overlong
  EXPECT_ERROR_HAS(header_error("{\"\xed\xa0\x80\":1}", {}), "UTF-8");    // surrogate
}

TEST(Safetensors, InvalidJson) {
  EXPECT_ERROR_HAS(header_error("{\"a\":", {}), "invalid JSON");
  EXPECT_ERROR_HAS(header_error("{} x", {}), "invalid JSON");
  EXPECT_ERROR_HAS(header_error("", {}), "invalid JSON");
}

TEST(Safetensors, HeaderNotObject) {
  EXPECT_ERROR_HAS(header_error("[1,2]", {}), "header must be a JSON object, got array");
}

TEST(Safetensors, MetadataMustBeStrings) {
  EXPECT_ERROR_HAS(header_error(R"({"__metadata__":{"format":1}})", {}),
                   "__metadata__ value for 'format' must be a string, got number");
  EXPECT_ERROR_HAS(header_error(R"({"__metadata__":[1]})", {}), "__metadata__ must be an object");
}

TEST(Safetensors, DtypeErrorsNameTheTensor) {
  EXPECT_ERROR_HAS(header_error(R"({"w":{"dtype":"F8_E4M3","shape":[1],"data_offsets":[0,1]}})", {0}),
                   "tensor 'w': unsupported dtype 'F8_E4M3'");
  EXPECT_ERROR_HAS(header_error(R"({"w":{"dtype":"Q4","shape":[1],"data_offsets":[0,1]}})", {0}),
                   "tensor 'w': unknown dtype 'Q4'");
  EXPECT_ERROR_HAS(header_error(R"({"w":{"dtype":5,"shape":[1],"data_offsets":[0,1]}})", {0}),
                   "tensor 'w': dtype must be a string");
  EXPECT_ERROR_HAS(header_error(R"({"w":{"shape":[1],"data_offsets":[0,1]}})", {0}),
                   "tensor 'w': missing field 'dtype'");
  EXPECT_ERROR_HAS(header_error(R"({"w":[1]})", {0}), "tensor 'w': expected an object");
}

TEST(Safetensors, ShapeMustBeNonNegativeIntegers) {
  EXPECT_ERROR_HAS(header_error(R"({"w":{"dtype":"U8","shape":[-1],"data_offsets":[0,0]}})", {}),
                   "tensor 'w': shape[0] must be a non-negative integer, got -1");
  EXPECT_ERROR_HAS(header_error(R"({"w":{"dtype":"U8","shape":[1,2.5],"data_offsets":[0,0]}})", {}),
                   "tensor 'w': shape[1] must be a non-negative integer, got 2.5");
  EXPECT_ERROR_HAS(header_error(R"({"w":{"dtype":"U8","shape":"1","data_offsets":[0,0]}})", {}),
                   "tensor 'w': shape must be an array");
  EXPECT_ERROR_HAS(header_error(R"({"w":{"dtype":"U8","data_offsets":[0,0]}})", {}),
                   "tensor 'w': missing field 'shape'");
}

TEST(Safetensors, NumelAndByteOverflow) {
  EXPECT_ERROR_HAS(
      header_error(R"({"w":{"dtype":"U8","shape":[4294967296,4294967296,0],"data_offsets":[0,0]}})", {}),
      "tensor 'w': shape [4294967296, 4294967296, 0] overflows");
  EXPECT_ERROR_HAS(header_error(R"({"w":{"dtype":"F32","shape":[4611686018427387904],"data_offsets":[0,0]}})", {}),
                   "tensor 'w': shape [4611686018427387904] overflows");
  EXPECT_ERROR_HAS(header_error(R"({"w":{"dtype":"U8","shape":[18446744073709551615],"data_offsets":[0,0]}})", {}),
                   "tensor 'w': shape[0] = 18446744073709551615 too large");
}

TEST(Safetensors, DataOffsetsShape) {
  EXPECT_ERROR_HAS(header_error(R"({"w":{"dtype":"U8","shape":[1],"data_offsets":[0]}})", {0}),
                   "tensor 'w': data_offsets must be [begin, end]");
  EXPECT_ERROR_HAS(header_error(R"({"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1,2]}})", {0}),
                   "tensor 'w': data_offsets must be [begin, end]");
  EXPECT_ERROR_HAS(header_error(R"({"w":{"dtype":"U8","shape":[1],"data_offsets":[-1,0]}})", {0}),
                   "tensor 'w': data_offsets must be [begin, end]");
  EXPECT_ERROR_HAS(header_error(R"({"w":{"dtype":"U8","shape":[1]}})", {0}),
                   "tensor 'w': missing field 'data_offsets'");
}

TEST(Safetensors, SizeMustMatchShapeAndDtype) {
  EXPECT_ERROR_HAS(header_error(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}})", Bytes(4)),
                   "tensor 'w': invalid shape, data type, or offset");
  EXPECT_ERROR_HAS(header_error(R"({"w":{"dtype":"U8","shape":[1],"data_offsets":[1,0]}})", Bytes(1)),
                   "tensor 'w': invalid shape, data type, or offset");
}

TEST(Safetensors, OffsetsMustTileWithoutHolesOrOverlaps) {
  // Hole between a and b.
  EXPECT_ERROR_HAS(header_error(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                                R"("b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
                                Bytes(12)),
                   "invalid offset for tensor 'b', expected data_offsets begin 4");
  // Overlap.
  EXPECT_ERROR_HAS(header_error(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                                R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                                Bytes(12)),
                   "invalid offset for tensor 'b'");
  // Aliased: two tensors on the same bytes.
  EXPECT_ERROR_HAS(header_error(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                                R"("b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})",
                                Bytes(4)),
                   "invalid offset for tensor");
  // First tensor not at 0.
  EXPECT_ERROR_HAS(header_error(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", Bytes(8)),
                   "invalid offset for tensor 'a', expected data_offsets begin 0");
  // Out of order in the header but contiguous once sorted: fine.
  EXPECT_EQ(header_error(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]},)"
                         R"("b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})",
                         Bytes(8)),
            "");
}

TEST(Safetensors, FileMustBeFullyCovered) {
  EXPECT_ERROR_HAS(header_error(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", Bytes(5)),
                   "incomplete metadata, file not fully covered");
  EXPECT_ERROR_HAS(header_error(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", Bytes(4)),
                   "incomplete metadata, file not fully covered");
  EXPECT_ERROR_HAS(header_error("{}", Bytes(1)), "incomplete metadata");
}

TEST(Safetensors, DuplicateNamesRejected) {
  EXPECT_ERROR_HAS(header_error(R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},)"
                                R"("a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}})",
                                Bytes(2)),
                   "duplicate key 'a'");
  EXPECT_ERROR_HAS(header_error(R"({"a":{"dtype":"U8","dtype":"U8","shape":[1],"data_offsets":[0,1]}})", Bytes(1)),
                   "duplicate key 'dtype'");
}

// Every truncation of a valid file must fail cleanly (run under ASan/UBSan).
TEST(Safetensors, EveryPrefixFailsCleanly) {
  const std::string h = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"BF16","shape":[1],"data_offsets":[8,10]}})";
  const Bytes full = safetensors_bytes(h, Bytes(10, 7));
  ASSERT_EQ(parse_error(full), "");
  for (size_t n = 0; n < full.size(); ++n) {
    const Bytes cut(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(n));
    EXPECT_NE(parse_error(cut), "") << "prefix " << n;
  }
}

TEST(Safetensors, AddFileKeepsMappingAndFailsAtomically) {
  testing_io::TempDir dir;
  const std::vector<float> v = {1, 2, 3};
  testing_io::write_file(dir.file("ok.safetensors"),
                         safetensors_bytes(R"({"x":{"dtype":"F32","shape":[3],"data_offsets":[0,12]}})",
                                           testing_io::as_bytes(v)));
  TensorSource src;
  ASSERT_TRUE(add_safetensors_file(dir.file("ok.safetensors"), &src).ok());
  EXPECT_EQ(src.format(), "safetensors");
  const TensorEntry* x = src.find("x");
  ASSERT_NE(x, nullptr);
  EXPECT_EQ(load_as_f32(x->data, x->dtype, 2), 3.0f);
  EXPECT_EQ(x->file, dir.file("ok.safetensors"));
  // Adding the same file again collides on "x" and must leave src untouched.
  Status s = add_safetensors_file(dir.file("ok.safetensors"), &src);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("duplicate tensor 'x'"), std::string::npos) << s.message();
  EXPECT_EQ(src.entries().size(), 1u);
  EXPECT_FALSE(add_safetensors_file(dir.file("missing.safetensors"), &src).ok());
}

TEST(Utf8, Validator) {
  EXPECT_TRUE(is_valid_utf8("plain"));
  EXPECT_TRUE(is_valid_utf8("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"));
  EXPECT_FALSE(is_valid_utf8("\xc3"));
  EXPECT_FALSE(is_valid_utf8("\xf4\x90\x80\x80"));  // > U+10FFFF
  EXPECT_FALSE(is_valid_utf8("\xe0\x80\x80"));      // overlong
}

}  // namespace
}  // namespace moepp
