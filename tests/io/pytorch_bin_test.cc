// PyTorch .bin reader: real torch.save fixtures (tests/io/data) and hand-built zips and pickles
// for every rejection path of the zip reader and the restricted unpickler.
#include "io/pytorch_bin.h"

#include <gtest/gtest.h>

#include "io/unpickler.h"
#include "io/zip_reader.h"
#include "io_test_util.h"

namespace moepp {
namespace {

using testing_io::Bytes;
using testing_io::Pickle;
using testing_io::torch_archive;
using testing_io::zip_bytes;

const std::string kData = MOEPP_IO_TEST_DATA;

Result<TensorSource> load_fixture(const std::string& name) {
  TensorSource src;
  MOEPP_RETURN_IF_ERROR(add_pytorch_bin_file(kData + "/" + name, &src));
  return src;
}

// Parses an in-memory archive; returns the error message or "" on success.
std::string bin_error(const Bytes& b, TensorSource* out = nullptr) {
  TensorSource scratch;
  Status s = parse_pytorch_bin(b.data(), b.size(), "t.bin", out ? out : &scratch);
  return s.ok() ? std::string() : s.message();
}

#define EXPECT_HAS(msg, text)                                           \
  do {                                                                  \
    const std::string m_ = (msg);                                       \
    EXPECT_NE(m_.find(text), std::string::npos) << "error was: " << m_; \
  } while (0)

std::vector<float> as_f32(const TensorEntry& e) {
  std::vector<float> v;
  for (int64_t i = 0; i < e.numel(); ++i) v.push_back(load_as_f32(e.data, e.dtype, static_cast<size_t>(i)));
  return v;
}

// A valid one-tensor state dict {"w": f32 [2, 3]} with the given stride, storage of 6 floats.
Bytes one_tensor_pickle(const std::vector<int64_t>& size, const std::vector<int64_t>& stride,
                        int64_t offset = 0, int64_t numel = 6, const std::string& type = "FloatStorage") {
  Pickle p;
  p.proto().op('}').mark().str("w").tensor(type, "0", numel, offset, size, stride).op('u').stop();
  return p.bytes();
}

Bytes six_floats() { return testing_io::as_bytes(std::vector<float>{0, 1, 2, 3, 4, 5}); }

// ---- real torch.save output ----

TEST(PytorchBin, SimpleFixtureValues) {
  auto r = load_fixture("simple.bin");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->format(), "pytorch");
  ASSERT_EQ(r->entries().size(), 6u);
  EXPECT_EQ(r->entries()[0].name, "w_f32");  // pickle order is kept
  const TensorEntry* f32 = r->find("w_f32");
  ASSERT_NE(f32, nullptr);
  EXPECT_EQ(f32->dtype, DType::kF32);
  EXPECT_EQ(f32->shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(as_f32(*f32), (std::vector<float>{-1, -0.5, 0, 0.5, 1, 1.5}));
  const TensorEntry* bf16 = r->find("w_bf16");
  EXPECT_EQ(bf16->dtype, DType::kBF16);
  EXPECT_EQ(as_f32(*bf16), (std::vector<float>{-1, -0.5, 0, 0.5}));
  const TensorEntry* f16 = r->find("w_f16");
  EXPECT_EQ(f16->dtype, DType::kF16);
  EXPECT_EQ(f16->shape, (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(as_f32(*f16), (std::vector<float>{-1, -0.5, 0, 0.5}));
  const TensorEntry* ids = r->find("ids");
  EXPECT_EQ(ids->dtype, DType::kI64);
  int64_t v[3];
  std::memcpy(v, ids->data, 24);
  EXPECT_EQ(v[1], -2);
  EXPECT_EQ(r->find("scalar")->shape.size(), 0u);
  EXPECT_EQ(as_f32(*r->find("scalar")), std::vector<float>{7});
  EXPECT_EQ(r->find("empty")->nbytes, 0u);
  EXPECT_EQ(r->find("empty")->shape, (std::vector<int64_t>{0, 3}));
}

TEST(PytorchBin, Protocol4FixtureMatchesProtocol2) {
  auto a = load_fixture("simple.bin");
  auto b = load_fixture("proto4.bin");
  ASSERT_TRUE(a.ok() && b.ok()) << b.status().message();
  ASSERT_EQ(a->entries().size(), b->entries().size());
  for (const TensorEntry& e : a->entries()) {
    const TensorEntry* o = b->find(e.name);
    ASSERT_NE(o, nullptr) << e.name;
    EXPECT_EQ(o->shape, e.shape);
    EXPECT_EQ(o->nbytes, e.nbytes);
    EXPECT_EQ(std::memcmp(o->data, e.data, e.nbytes), 0) << e.name;
  }
}

TEST(PytorchBin, StridedFixtureCopiedCorrectly) {
  auto r = load_fixture("strided.bin");
  ASSERT_TRUE(r.ok()) << r.status().message();
  // base = arange(12).reshape(3, 4)
  EXPECT_EQ(as_f32(*r->find("t")), (std::vector<float>{0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11}));
  EXPECT_EQ(r->find("t")->shape, (std::vector<int64_t>{4, 3}));
  EXPECT_EQ(as_f32(*r->find("row")), (std::vector<float>{4, 5, 6, 7}));
  EXPECT_EQ(as_f32(*r->find("col")), (std::vector<float>{2, 6, 10}));
  // "row" is contiguous at offset 4 of the shared storage: zero-copy, 16 bytes after "same".
  EXPECT_EQ(r->find("row")->data, r->find("same")->data + 16);
}

TEST(PytorchBin, ModuleStateDictWithMetadata) {
  auto r = load_fixture("module.bin");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(as_f32(*r->find("weight")), (std::vector<float>{-1, -0.5, 0, 0.5, 1, 1.5}));
  EXPECT_EQ(as_f32(*r->find("bias")), (std::vector<float>{0.25, -0.25}));
}

TEST(PytorchBin, StateDictWrapperUnwrapped) {
  auto r = load_fixture("wrapped.bin");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_NE(r->find("weight"), nullptr);
  EXPECT_NE(r->find("bias"), nullptr);
}

TEST(PytorchBin, ParameterFixture) {
  auto r = load_fixture("parameter.bin");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(as_f32(*r->find("p")), (std::vector<float>{1, 1}));
}

TEST(PytorchBin, NestedDictRejected) {
  auto r = load_fixture("nested_bad.bin");
  ASSERT_FALSE(r.ok());
  EXPECT_HAS(r.status().message(), "nested_bad.bin: data.pkl: state dict entry 'x' is a dict, expected a tensor");
}

// ---- hand-built archives ----

// Contiguous entries point into the archive bytes, so each test keeps its archive alive.
TEST(PytorchBin, HandBuiltContiguousAndStrided) {
  TensorSource src;
  const Bytes a = torch_archive(one_tensor_pickle({2, 3}, {3, 1}), {{"0", six_floats()}});
  ASSERT_EQ(bin_error(a, &src), "");
  EXPECT_EQ(as_f32(*src.find("w")), (std::vector<float>{0, 1, 2, 3, 4, 5}));
  TensorSource t;
  const Bytes b = torch_archive(one_tensor_pickle({3, 2}, {1, 3}), {{"0", six_floats()}});
  ASSERT_EQ(bin_error(b, &t), "");
  EXPECT_EQ(as_f32(*t.find("w")), (std::vector<float>{0, 3, 1, 4, 2, 5}));
  TensorSource o;  // offset + broadcast (stride 0) view
  const Bytes c = torch_archive(one_tensor_pickle({2, 2}, {0, 1}, 4), {{"0", six_floats()}});
  ASSERT_EQ(bin_error(c, &o), "");
  EXPECT_EQ(as_f32(*o.find("w")), (std::vector<float>{4, 5, 4, 5}));
}

TEST(PytorchBin, Zip64ArchiveParses) {
  testing_io::ZipOptions opt;
  opt.zip64 = true;
  TensorSource src;
  const Bytes a = torch_archive(one_tensor_pickle({2, 3}, {3, 1}), {{"0", six_floats()}}, opt);
  ASSERT_EQ(bin_error(a, &src), "");
  EXPECT_EQ(as_f32(*src.find("w")), (std::vector<float>{0, 1, 2, 3, 4, 5}));
  opt.align = 0;
  ASSERT_EQ(bin_error(torch_archive(one_tensor_pickle({2, 3}, {3, 1}), {{"0", six_floats()}}, opt)), "");
}

TEST(PytorchBin, ViewOutOfStorageRejected) {
  EXPECT_HAS(bin_error(torch_archive(one_tensor_pickle({2, 3}, {3, 1}, 1), {{"0", six_floats()}})),
             "t.bin: tensor 'w': view (offset 1, size (2, 3), stride (3, 1)) reaches element 6, expected < storage size 6");
  EXPECT_HAS(bin_error(torch_archive(one_tensor_pickle({2, 3}, {1LL << 62, 1}), {{"0", six_floats()}})),
             "reaches element");
  EXPECT_HAS(bin_error(torch_archive(one_tensor_pickle({2, 3}, {-3, 1}), {{"0", six_floats()}})),
             "expected non-negative");
  EXPECT_HAS(bin_error(torch_archive(one_tensor_pickle({2, 3}, {3, 1}, -1), {{"0", six_floats()}})),
             "storage_offset -1");
}

TEST(PytorchBin, StorageProblems) {
  EXPECT_HAS(bin_error(torch_archive(one_tensor_pickle({2, 3}, {3, 1}), {{"1", six_floats()}})),
             "t.bin: tensor 'w': storage entry 'archive/data/0' not found");
  EXPECT_HAS(bin_error(torch_archive(one_tensor_pickle({2, 3}, {3, 1}), {{"0", Bytes(20)}})),
             "storage '0' holds 20 bytes, expected 6 elements of F32 (24 bytes)");
  EXPECT_HAS(bin_error(torch_archive(one_tensor_pickle({2, 3}, {3, 1}, 0, 6, "DoubleStorage"), {{"0", six_floats()}})),
             "expected 6 elements of F64");
}

TEST(PytorchBin, NoPickleOrLegacy) {
  EXPECT_HAS(bin_error(zip_bytes({{"archive/version", Bytes{'3'}}})), "t.bin: no <root>/data.pkl entry");
  EXPECT_HAS(bin_error(zip_bytes({{"data.pkl", one_tensor_pickle({2, 3}, {3, 1})}})), "no <root>/data.pkl");
  EXPECT_HAS(bin_error(one_tensor_pickle({2, 3}, {3, 1})), "legacy (pre-1.6, non-zip) torch.save format");
  EXPECT_HAS(bin_error(Bytes{'h', 'i'}), "t.bin: zip: file too small");
}

// ---- zip reader ----

TEST(ZipReader, CompressedEntryRejected) {
  testing_io::ZipOptions opt;
  opt.method = 8;
  EXPECT_HAS(bin_error(torch_archive(one_tensor_pickle({2, 3}, {3, 1}), {{"0", six_floats()}}, opt)),
             "t.bin: zip: entry 'archive/data.pkl': unsupported compression method 8 (deflate), expected 0 (stored)");
}

TEST(ZipReader, UnsafeNamesRejected) {
  for (const char* name : {"../evil", "/abs", "a/../../b", "a\\b", "./x", "c:x"}) {
    const Bytes z = zip_bytes({{name, Bytes{1}}});
    auto r = ZipReader::parse(z.data(), z.size(), "t.bin");
    ASSERT_FALSE(r.ok()) << name;
    EXPECT_HAS(r.status().message(), "unsafe entry name");
  }
  const Bytes dup = zip_bytes({{"a/b", Bytes{1}}, {"a/b", Bytes{2}}});
  auto r = ZipReader::parse(dup.data(), dup.size(), "t.bin");
  ASSERT_FALSE(r.ok());
  EXPECT_HAS(r.status().message(), "duplicate entry name");
}

TEST(ZipReader, EntriesAndZeroCopy) {
  const Bytes z = zip_bytes({{"r/a", Bytes{1, 2, 3}}, {"r/empty", Bytes{}}});
  auto r = ZipReader::parse(z.data(), z.size(), "t.bin");
  ASSERT_TRUE(r.ok()) << r.status().message();
  const ZipEntry* a = r->find("r/a");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->size, 3u);
  EXPECT_EQ(a->data_offset % 64, 0u);  // the builder aligns like torch
  EXPECT_EQ(r->entry_data(*a)[2], 3);
  EXPECT_EQ(r->find("r/empty")->size, 0u);
  EXPECT_EQ(r->find("nope"), nullptr);
}

// Finds the little-endian u32 `sig` scanning backwards (central/EOCD records in our archives).
size_t rfind_sig(const Bytes& b, uint32_t sig) {
  for (size_t i = b.size() - 4; i-- > 0;) {
    uint32_t v;
    std::memcpy(&v, b.data() + i, 4);
    if (v == sig) return i;
  }
  return SIZE_MAX;
}

void poke32(Bytes* b, size_t at, uint32_t v) { std::memcpy(b->data() + at, &v, 4); }

TEST(ZipReader, BadOffsetsRejected) {
  const Bytes good = torch_archive(one_tensor_pickle({2, 3}, {3, 1}), {{"0", six_floats()}});
  const size_t eocd = rfind_sig(good, 0x06054b50);
  const size_t cd = rfind_sig(good, 0x02014b50);  // last central entry (archive/version)
  ASSERT_NE(eocd, SIZE_MAX);
  {
    Bytes b = good;
    poke32(&b, cd + 42, 0x7fffffff);  // local header offset past the end
    EXPECT_HAS(bin_error(b), "entry 'archive/version': local header offset 2147483647 out of range");
  }
  {
    Bytes b = good;
    poke32(&b, cd + 42, 1);  // points at garbage
    EXPECT_HAS(bin_error(b), "bad local header signature");
  }
  {
    Bytes b = good;
    poke32(&b, cd + 20, 0x10000);  // size runs into the central directory
    poke32(&b, cd + 24, 0x10000);
    EXPECT_HAS(bin_error(b), "entry 'archive/version': data");
  }
  {
    Bytes b = good;
    poke32(&b, eocd + 16, static_cast<uint32_t>(b.size()));  // central directory offset past the end
    EXPECT_HAS(bin_error(b), "t.bin: zip: central directory");
  }
  {
    Bytes b = good;
    poke32(&b, eocd + 12, 0xFFFFFF);  // central directory size past the end
    EXPECT_HAS(bin_error(b), "central directory");
  }
  {
    Bytes b = good;
    b[eocd + 10] = 0xFF;  // more entries than the directory holds
    b[eocd + 8] = 0xFF;
    EXPECT_HAS(bin_error(b), "entries");
  }
}

TEST(ZipReader, TruncatedCentralDirectory) {
  const Bytes good = torch_archive(one_tensor_pickle({2, 3}, {3, 1}), {{"0", six_floats()}});
  const size_t eocd = rfind_sig(good, 0x06054b50);
  {
    // Lose the directory's last 20 bytes but keep the end record.
    Bytes b(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(eocd - 20));
    b.insert(b.end(), good.begin() + static_cast<std::ptrdiff_t>(eocd), good.end());
    EXPECT_HAS(bin_error(b), "t.bin: zip: central directory [");
  }
  {
    // Directory size 10 bytes short: the last entry's name runs past it.
    Bytes b = good;
    uint32_t cd_size;
    std::memcpy(&cd_size, b.data() + eocd + 12, 4);
    poke32(&b, eocd + 12, cd_size - 10);
    EXPECT_HAS(bin_error(b), "central directory entry 2 runs past the directory");
  }
  // Cutting the file anywhere must fail cleanly.
  for (size_t n = 0; n < good.size(); ++n) {
    const Bytes cut(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(n));
    EXPECT_NE(bin_error(cut), "") << "prefix " << n;
  }
}

// ---- restricted unpickler ----

std::string pickle_error(const Bytes& pkl) {
  auto r = unpickle_state_dict(pkl.data(), pkl.size(), "t.bin: data.pkl");
  return r.ok() ? std::string() : r.status().message();
}

TEST(Unpickler, ForbiddenGlobalRejected) {
  Pickle p;  // os.system("echo pwned")
  p.proto().global("os", "system").mark().str("echo pwned").op('t').op('R').stop();
  EXPECT_EQ(pickle_error(p.bytes()),
            "t.bin: data.pkl: forbidden global 'os.system' (only state-dict globals are allowed)");
  Pickle q;  // protocol 4 spelling
  q.proto(4).op(0x8c).op(8).raw("builtins").op(0x8c).op(4).raw("eval");
  q.op(0x93).stop();
  EXPECT_EQ(pickle_error(q.bytes()),
            "t.bin: data.pkl: forbidden global 'builtins.eval' (only state-dict globals are allowed)");
  // Through the whole .bin path, the message names the file.
  EXPECT_HAS(bin_error(torch_archive(p.bytes(), {})), "t.bin: data.pkl: forbidden global 'os.system'");
  Pickle r;  // torch.load is not a state-dict global either
  r.proto().global("torch", "load").stop();
  EXPECT_HAS(pickle_error(r.bytes()), "forbidden global 'torch.load'");
}

TEST(Unpickler, UnknownOpcodeNamed) {
  Pickle p;
  p.proto().op('}').op('i').stop();  // INST: not allowed
  EXPECT_EQ(pickle_error(p.bytes()),
            "t.bin: data.pkl: unknown or unsupported opcode 0x69 at byte 3, expected one of the opcodes "
            "torch.save uses for a state dict");
  Pickle q;
  q.proto().op(0xff);
  EXPECT_HAS(pickle_error(q.bytes()), "opcode 0xff at byte 2");
}

TEST(Unpickler, TruncatedPickleFailsCleanly) {
  const Bytes full = one_tensor_pickle({2, 3}, {3, 1});
  ASSERT_EQ(pickle_error(full), "");
  for (size_t n = 0; n < full.size(); ++n) {
    const Bytes cut(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(n));
    const std::string e = pickle_error(cut);
    EXPECT_NE(e, "") << "prefix " << n;
  }
  EXPECT_HAS(pickle_error(Bytes{0x80, 0x02, '}'}), "truncated pickle, expected STOP");
  EXPECT_HAS(pickle_error(Bytes{0x80, 0x02, 'X', 0xff, 0xff, 0xff, 0x7f}), "truncated pickle: opcode 0x58 at byte 2");
  EXPECT_HAS(pickle_error(Bytes{0x80, 0x02, 0x8d, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}),
             "truncated pickle");
}

TEST(Unpickler, StructuralErrors) {
  EXPECT_HAS(pickle_error(Bytes{0x80, 0x02, '.'}), "STOP with an empty stack");
  EXPECT_HAS(pickle_error(Bytes{0x80, 0x02, 's', '.'}), "stack underflow");
  EXPECT_HAS(pickle_error(Bytes{0x80, 0x02, 't', '.'}), "no MARK");
  EXPECT_HAS(pickle_error(Bytes{0x80, 0x02, 'h', 7, '.'}), "memo key 7 not defined");
  EXPECT_HAS(pickle_error(Bytes{0x80, 0x02, ']', '.'}), "top-level object is a list, expected a dict");
  EXPECT_HAS(pickle_error(Bytes{0x80, 0x09, '}', '.'}), "pickle protocol 9");
  EXPECT_HAS(pickle_error(Bytes{0x80, 0x02, '}', 'K', 1, 'K', 2, 's', '.'}), "state dict key is a int");
  EXPECT_HAS(pickle_error(Bytes{0x80, 0x02, '}', 'X', 1, 0, 0, 0, 'a', 'K', 2, 's', '.'}),
             "state dict entry 'a' is a int, expected a tensor");
  // A MARK hides what is below it from pops.
  EXPECT_HAS(pickle_error(Bytes{0x80, 0x02, '}', '(', 's', '.'}), "stack underflow");
  // Calling a storage type or a tensor is not allowed.
  Pickle p;
  p.proto().global("torch", "FloatStorage").op(')').op('R').stop();
  EXPECT_HAS(pickle_error(p.bytes()), "REDUCE: cannot call a storage type");
  Pickle q;  // bad persistent id
  q.proto().mark().str("storage").op('t').op('Q').stop();
  EXPECT_HAS(pickle_error(q.bytes()), "persistent id: expected ('storage', type, key, location, numel)");
  Pickle k;  // storage key with a path in it
  k.proto().mark().str("storage").global("torch", "FloatStorage").str("../x").str("cpu").integer(1).op('t').op('Q').stop();
  EXPECT_HAS(pickle_error(k.bytes()), "expected a storage key without '/'");
}

TEST(Unpickler, DeepNestingIsBounded) {
  // 200k nested empty lists via MARK ... no C++ recursion, no crash.
  Bytes b{0x80, 0x02};
  for (int i = 0; i < 200000; ++i) b.push_back('(');
  b.push_back('.');
  EXPECT_HAS(pickle_error(b), "STOP with an empty stack");
  Bytes c{0x80, 0x02};
  for (int i = 0; i < 200000; ++i) c.push_back(']');
  c.push_back('.');
  EXPECT_NE(pickle_error(c), "");
}

TEST(Unpickler, Long1AndMemoVariants) {
  // LONG1 negative offset must be caught downstream; LONG_BINPUT/LONG_BINGET and MEMOIZE work.
  Bytes b{0x80, 0x04, '}', 0x94, 'X', 1, 0, 0, 0, 'k', 'r', 9, 0, 0, 0, '0', 'j', 9, 0, 0, 0,
          '}', 's', '.'};
  EXPECT_HAS(pickle_error(b), "state dict entry 'k' is a dict");
  Bytes l{0x80, 0x02, '}', 'X', 1, 0, 0, 0, 'k', 0x8a, 9, 1, 2, 3, 4, 5, 6, 7, 8, 9, 's', '.'};
  EXPECT_HAS(pickle_error(l), "LONG1 of 9 bytes");
}

}  // namespace
}  // namespace moepp
