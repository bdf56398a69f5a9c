// torch.save archive -> TensorSource: finds <root>/data.pkl, unpickles it without executing
// anything, and checks every tensor view against the bytes of its storage entry.
#include "io/pytorch_bin.h"

#include <cstring>
#include <limits>

#include "io/unpickler.h"
#include "io/zip_reader.h"

namespace moepp {
namespace {

std::string shape_string(const std::vector<int64_t>& v) {
  std::string s = "(";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + std::to_string(v[i]);
  return s + ")";
}

// Validates the view against its storage and appends the entry (zero-copy if contiguous).
Status add_tensor(const std::string& file, const ZipReader& zip, const std::string& root,
                  const PickledTensor& t, TensorSource* out) {
  const std::string where = file + ": tensor '" + t.name + "'";
  const uint64_t elsize = dtype_size(t.dtype);
  const ZipEntry* storage = zip.find(root + "/data/" + t.storage_key);
  if (storage == nullptr)
    return Status::Error(where + ": storage entry '" + root + "/data/" + t.storage_key +
                         "' not found in the archive");
  uint64_t storage_bytes = 0;
  if (__builtin_mul_overflow(t.storage_numel, elsize, &storage_bytes) || storage_bytes != storage->size)
    return Status::Error(where + str_format(": storage '%s' holds %llu bytes, expected %llu elements of "
                                            "%s (%llu bytes)",
                                            t.storage_key.c_str(), (unsigned long long)storage->size,
                                            (unsigned long long)t.storage_numel, dtype_name(t.dtype),
                                            (unsigned long long)(t.storage_numel * elsize)));
  if (t.storage_offset < 0)
    return Status::Error(where + str_format(": storage_offset %lld, expected >= 0", (long long)t.storage_offset));
  uint64_t numel = 1;
  uint64_t last = static_cast<uint64_t>(t.storage_offset);  // largest element index touched
  bool overflow = false;
  for (size_t d = 0; d < t.size.size(); ++d) {
    if (t.size[d] < 0 || t.stride[d] < 0)
      return Status::Error(where + ": size " + shape_string(t.size) + " stride " + shape_string(t.stride) +
                           ", expected non-negative values");
    overflow |= __builtin_mul_overflow(numel, static_cast<uint64_t>(t.size[d]), &numel);
  }
  if (overflow || numel > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
    return Status::Error(where + ": size " + shape_string(t.size) + " overflows");
  if (numel > 0) {
    for (size_t d = 0; d < t.size.size(); ++d) {
      uint64_t span = 0;
      overflow |= __builtin_mul_overflow(static_cast<uint64_t>(t.size[d] - 1),
                                         static_cast<uint64_t>(t.stride[d]), &span);
      overflow |= __builtin_add_overflow(last, span, &last);
    }
    if (overflow || last >= t.storage_numel)
      return Status::Error(where + str_format(": view (offset %lld, size %s, stride %s) reaches element "
                                              "%s, expected < storage size %llu",
                                              (long long)t.storage_offset, shape_string(t.size).c_str(),
                                              shape_string(t.stride).c_str(),
                                              overflow ? "beyond 2^64" : std::to_string(last).c_str(),
                                              (unsigned long long)t.storage_numel));
  }
  TensorEntry e;
  e.name = t.name;
  e.dtype = t.dtype;
  e.shape = t.size;
  e.file = file;
  e.nbytes = static_cast<size_t>(numel * elsize);  // <= storage bytes, so no overflow
  const uint8_t* base = zip.entry_data(*storage);
  bool contiguous = true;
  int64_t expect = 1;
  for (size_t d = t.size.size(); d-- > 0;) {
    if (t.size[d] != 1 && t.stride[d] != expect) contiguous = false;
    expect *= t.size[d];  // cannot overflow: the product of all sizes fits
  }
  if (numel == 0) {
    e.data = base;
  } else if (contiguous) {
    e.data = base + static_cast<size_t>(t.storage_offset) * elsize;
  } else {
    // Gather element by element in row-major order; rare (torch saves views of bigger storages
    // only when the user did), so simplicity beats speed here.
    std::vector<uint8_t> bytes(e.nbytes);
    const size_t nd = t.size.size();
    std::vector<int64_t> idx(nd, 0);
    for (uint64_t i = 0; i < numel; ++i) {
      uint64_t src = static_cast<uint64_t>(t.storage_offset);
      for (size_t d = 0; d < nd; ++d) src += static_cast<uint64_t>(idx[d] * t.stride[d]);
      std::memcpy(bytes.data() + i * elsize, base + src * elsize, elsize);
      for (size_t d = nd; d-- > 0;) {
        if (++idx[d] < t.size[d]) break;
        idx[d] = 0;
      }
    }
    e.data = out->own(std::move(bytes));
  }
  return out->add(std::move(e));
}

}  // namespace

Status parse_pytorch_bin(const uint8_t* data, size_t size, const std::string& file_name,
                         TensorSource* out) {
  if (size >= 2 && data[0] == 0x80 && data[1] <= 5)
    return Status::Error(file_name + ": legacy (pre-1.6, non-zip) torch.save format, expected a zip "
                                     "archive; re-save it with torch >= 1.6 or convert to safetensors");
  MOEPP_ASSIGN_OR_RETURN(ZipReader zip, ZipReader::parse(data, size, file_name));
  // torch names the root folder after the archive ("archive/", "pytorch_model/", ...).
  const ZipEntry* pkl = nullptr;
  for (const ZipEntry& e : zip.entries()) {
    const size_t slash = e.name.find('/');
    if (slash == std::string::npos || slash == 0 || e.name.substr(slash) != "/data.pkl") continue;
    if (pkl != nullptr)
      return Status::Error(file_name + ": two pickles '" + pkl->name + "' and '" + e.name +
                           "', expected exactly one <root>/data.pkl");
    pkl = &e;
  }
  if (pkl == nullptr)
    return Status::Error(file_name + ": no <root>/data.pkl entry, expected a torch.save archive");
  const std::string root = pkl->name.substr(0, pkl->name.find('/'));
  MOEPP_ASSIGN_OR_RETURN(std::vector<PickledTensor> tensors,
                         unpickle_state_dict(zip.entry_data(*pkl), static_cast<size_t>(pkl->size),
                                             file_name + ": data.pkl"));
  for (const PickledTensor& t : tensors) MOEPP_RETURN_IF_ERROR(add_tensor(file_name, zip, root, t, out));
  if (out->format().empty()) out->set_format("pytorch");
  return Status::Ok();
}

Status add_pytorch_bin_file(const std::string& path, TensorSource* out) {
  MOEPP_ASSIGN_OR_RETURN(std::shared_ptr<MappedFile> file, MappedFile::open(path));
  // Parse into a scratch source so a failure leaves `out` without dangling entries.
  TensorSource local;
  MOEPP_RETURN_IF_ERROR(parse_pytorch_bin(file->data(), file->size(), path, &local));
  local.keep_alive(std::move(file));
  return out->merge(std::move(local));
}

}  // namespace moepp
