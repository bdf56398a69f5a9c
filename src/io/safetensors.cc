// safetensors reader (docs/checkpoint-formats.md §8): validates the header exactly like the
// reference Rust reader, plus duplicate names, and exposes zero-copy entries.
#include "io/safetensors.h"

#include "base/utf8.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <unordered_set>

namespace moepp {
namespace {

using json = nlohmann::json;

// Records the first duplicate key of any object and the first syntax error; builds nothing.
class DuplicateKeyChecker : public json::json_sax_t {
 public:
  bool null() override { return true; }
  bool boolean(bool) override { return true; }
  bool number_integer(number_integer_t) override { return true; }
  bool number_unsigned(number_unsigned_t) override { return true; }
  bool number_float(number_float_t, const string_t&) override { return true; }
  bool string(string_t&) override { return true; }
  bool binary(binary_t&) override { return true; }
  bool start_object(std::size_t) override {
    keys_.emplace_back();
    return true;
  }
  bool key(string_t& k) override {
    if (!keys_.back().insert(k).second) {
      error_ = "duplicate key '" + k + "'" +
               (keys_.size() == 1 ? std::string(" at top level") : std::string(" in a nested object")) +
               ", expected unique keys";
      return false;
    }
    return true;
  }
  bool end_object() override {
    keys_.pop_back();
    return true;
  }
  bool start_array(std::size_t) override { return true; }
  bool end_array() override { return true; }
  bool parse_error(std::size_t position, const std::string&,
                   const nlohmann::detail::exception& ex) override {
    error_ = str_format("invalid JSON at byte %zu: %s", position, ex.what());
    return false;
  }
  const std::string& error() const { return error_; }

 private:
  std::vector<std::unordered_set<std::string>> keys_;
  std::string error_;
};

struct DTypeName {
  const char* name;
  bool supported;
  DType dtype;
};

// Every dtype the safetensors format defines; the unsupported ones get a precise error.
constexpr DTypeName kDTypes[] = {
    {"F32", true, DType::kF32},   {"F16", true, DType::kF16},     {"BF16", true, DType::kBF16},
    {"F64", true, DType::kF64},   {"I64", true, DType::kI64},     {"I32", true, DType::kI32},
    {"I16", true, DType::kI16},   {"I8", true, DType::kI8},       {"U8", true, DType::kU8},
    {"BOOL", true, DType::kBool}, {"F8_E5M2", false, DType::kU8}, {"F8_E4M3", false, DType::kU8},
    {"F8_E8M0", false, DType::kU8}, {"F8_E4M3FNUZ", false, DType::kU8},
    {"F8_E5M2FNUZ", false, DType::kU8}, {"U16", false, DType::kU8}, {"U32", false, DType::kU8},
    {"U64", false, DType::kU8},   {"C64", false, DType::kU8},     {"F4", false, DType::kU8},
    {"F6_E2M3", false, DType::kU8}, {"F6_E3M2", false, DType::kU8},
};

uint64_t read_le64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

struct RawTensor {
  TensorEntry entry;
  uint64_t begin = 0, end = 0;
};

// Validates one tensor's header object; offsets are checked later, across all tensors.
Status parse_tensor_info(const std::string& file, const std::string& name, const json& info,
                         RawTensor* out) {
  const std::string where = file + ": tensor '" + name + "'";
  if (!info.is_object())
    return Status::Error(where + ": expected an object with dtype, shape and data_offsets, got " +
                         info.type_name());
  auto dt = info.find("dtype");
  if (dt == info.end()) return Status::Error(where + ": missing field 'dtype'");
  if (!dt->is_string())
    return Status::Error(where + ": dtype must be a string, got " + dt->type_name());
  const std::string& dname = dt->get_ref<const std::string&>();
  const DTypeName* found = nullptr;
  for (const DTypeName& d : kDTypes)
    if (dname == d.name) found = &d;
  if (found == nullptr)
    return Status::Error(where + ": unknown dtype '" + dname +
                         "', expected a safetensors dtype such as F32, F16, BF16");
  if (!found->supported)
    return Status::Error(where + ": unsupported dtype '" + dname +
                         "', expected one of F32, F16, BF16, F64, I64, I32, I16, I8, U8, BOOL");
  out->entry.dtype = found->dtype;

  auto sh = info.find("shape");
  if (sh == info.end()) return Status::Error(where + ": missing field 'shape'");
  if (!sh->is_array())
    return Status::Error(where + ": shape must be an array, got " + sh->type_name());
  uint64_t numel = 1;
  bool overflow = false;
  for (size_t i = 0; i < sh->size(); ++i) {
    const json& d = (*sh)[i];
    if (!d.is_number_unsigned())
      return Status::Error(where + str_format(": shape[%zu] must be a non-negative integer, got ", i) +
                           d.dump());
    const uint64_t v = d.get<uint64_t>();
    if (v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
      return Status::Error(where + str_format(": shape[%zu] = %llu too large, expected < 2^63", i,
                                              static_cast<unsigned long long>(v)));
    if (__builtin_mul_overflow(numel, v, &numel)) overflow = true;
    out->entry.shape.push_back(static_cast<int64_t>(v));
  }
  // Like the reference (checked product in order), an overflowing prefix is an error even if a
  // later dimension is 0.
  uint64_t nbytes = 0;
  if (overflow || numel > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) ||
      __builtin_mul_overflow(numel, static_cast<uint64_t>(dtype_size(found->dtype)), &nbytes))
    return Status::Error(where + ": shape " + shape_string(out->entry.shape) +
                         " overflows, expected a byte size that fits in 64 bits");

  auto off = info.find("data_offsets");
  if (off == info.end()) return Status::Error(where + ": missing field 'data_offsets'");
  if (!off->is_array() || off->size() != 2 || !(*off)[0].is_number_unsigned() ||
      !(*off)[1].is_number_unsigned())
    return Status::Error(where + ": data_offsets must be [begin, end] of non-negative integers, got " +
                         off->dump());
  out->begin = (*off)[0].get<uint64_t>();
  out->end = (*off)[1].get<uint64_t>();
  if (out->end < out->begin || out->end - out->begin != nbytes)
    return Status::Error(
        where + str_format(": invalid shape, data type, or offset: shape %s of %s needs %llu bytes, "
                           "got data_offsets [%llu, %llu]",
                           shape_string(out->entry.shape).c_str(), dname.c_str(),
                           static_cast<unsigned long long>(nbytes),
                           static_cast<unsigned long long>(out->begin),
                           static_cast<unsigned long long>(out->end)));
  out->entry.nbytes = static_cast<size_t>(nbytes);
  out->entry.name = name;
  out->entry.file = file;
  return Status::Ok();
}

}  // namespace


Result<json> parse_json_strict(std::string_view text, const std::string& where) {
  if (!is_valid_utf8(text)) return Status::Error(where + ": invalid UTF-8, expected UTF-8 JSON text");
  DuplicateKeyChecker checker;
  if (!json::sax_parse(text.begin(), text.end(), &checker))
    return Status::Error(where + ": " + checker.error());
  json j = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Status::Error(where + ": invalid JSON");
  return j;
}

Result<SafetensorsFile> parse_safetensors(const uint8_t* data, size_t size,
                                          const std::string& file_name) {
  const std::string& f = file_name;
  if (size < 8)
    return Status::Error(f + str_format(": header too small, expected at least 8 bytes, got %zu", size));
  const uint64_t n = read_le64(data);
  if (n > kSafetensorsMaxHeader)
    return Status::Error(f + str_format(": header too large, expected header length <= %llu, got %llu",
                                        static_cast<unsigned long long>(kSafetensorsMaxHeader),
                                        static_cast<unsigned long long>(n)));
  if (n > size - 8)  // 8 + n cannot overflow here: n <= 1e8
    return Status::Error(f + str_format(": invalid header length, expected 8 + %llu <= file size %zu",
                                        static_cast<unsigned long long>(n), size));
  const std::string_view header(reinterpret_cast<const char*>(data + 8), static_cast<size_t>(n));
  if (!is_valid_utf8(header)) return Status::Error(f + ": header is not valid UTF-8");
  MOEPP_ASSIGN_OR_RETURN(json j, parse_json_strict(header, f + ": header"));
  if (!j.is_object())
    return Status::Error(f + ": header must be a JSON object, got " + j.type_name());

  SafetensorsFile out;
  out.data_start = 8 + static_cast<size_t>(n);
  std::vector<RawTensor> raw;
  raw.reserve(j.size());
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (it.key() == "__metadata__") {
      if (it->is_null()) continue;  // serde reads null as "no metadata"
      if (!it->is_object())
        return Status::Error(f + ": __metadata__ must be an object of strings, got " + it->type_name());
      for (auto m = it->begin(); m != it->end(); ++m) {
        if (!m->is_string())
          return Status::Error(f + ": __metadata__ value for '" + m.key() +
                               "' must be a string, got " + m->type_name());
        out.metadata[m.key()] = m->get<std::string>();
      }
      continue;
    }
    RawTensor t;
    MOEPP_RETURN_IF_ERROR(parse_tensor_info(f, it.key(), *it, &t));
    raw.push_back(std::move(t));
  }

  // Walk in offset order: each tensor starts where the previous ended (no holes, no overlaps).
  std::vector<size_t> order(raw.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return raw[a].begin != raw[b].begin ? raw[a].begin < raw[b].begin : raw[a].end < raw[b].end;
  });
  uint64_t expected = 0;
  for (size_t i : order) {
    const RawTensor& t = raw[i];
    if (t.begin != expected)
      return Status::Error(
          f + str_format(": invalid offset for tensor '%s', expected data_offsets begin %llu "
                         "(tensors must tile the data buffer without holes or overlaps), got [%llu, %llu]",
                         t.entry.name.c_str(), static_cast<unsigned long long>(expected),
                         static_cast<unsigned long long>(t.begin), static_cast<unsigned long long>(t.end)));
    expected = t.end;
  }
  const uint64_t buffer = size - out.data_start;
  if (expected != buffer)
    return Status::Error(
        f + str_format(": incomplete metadata, file not fully covered: expected tensors to cover "
                       "the %llu data bytes, got %llu",
                       static_cast<unsigned long long>(buffer), static_cast<unsigned long long>(expected)));
  out.tensors.reserve(raw.size());
  for (RawTensor& t : raw) {
    t.entry.data = data + out.data_start + t.begin;
    out.tensors.push_back(std::move(t.entry));
  }
  return out;
}

Status add_safetensors_file(const std::string& path, TensorSource* out) {
  MOEPP_ASSIGN_OR_RETURN(std::shared_ptr<MappedFile> file, MappedFile::open(path));
  MOEPP_ASSIGN_OR_RETURN(SafetensorsFile parsed, parse_safetensors(file->data(), file->size(), path));
  // Build a scratch source so a failure leaves `out` without dangling entries.
  TensorSource local;
  local.set_format("safetensors");
  for (TensorEntry& e : parsed.tensors) MOEPP_RETURN_IF_ERROR(local.add(std::move(e)));
  local.keep_alive(std::move(file));
  return out->merge(std::move(local));
}

}  // namespace moepp
