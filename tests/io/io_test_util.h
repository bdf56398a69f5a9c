// Helpers for the io tests: temp dirs, and byte builders for safetensors files, zip archives
// and pickles, so every corrupt input is written by the test itself.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

namespace moepp::testing_io {

using Bytes = std::vector<uint8_t>;

// A fresh directory under the test temp dir, removed at destruction.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = std::filesystem::temp_directory_path().string() + "/moepp_io_XXXXXX";
    char* p = ::mkdtemp(tmpl.data());
    path_ = p ? p : "/tmp";
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

inline void write_file(const std::string& path, const Bytes& bytes) {
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}
inline void write_file(const std::string& path, const std::string& text) {
  write_file(path, Bytes(text.begin(), text.end()));
}
inline Bytes read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return Bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

inline void put_le(Bytes* b, uint64_t v, int n) {
  for (int i = 0; i < n; ++i) b->push_back(static_cast<uint8_t>(v >> (8 * i)));
}
inline void append(Bytes* b, const Bytes& more) { b->insert(b->end(), more.begin(), more.end()); }
inline void append(Bytes* b, const std::string& s) { b->insert(b->end(), s.begin(), s.end()); }

template <typename T>
Bytes as_bytes(const std::vector<T>& v) {
  Bytes b(v.size() * sizeof(T));
  std::memcpy(b.data(), v.data(), b.size());
  return b;
}

// safetensors file = u64 header length + header text + data buffer.
inline Bytes safetensors_bytes(const std::string& header, const Bytes& data, uint64_t n_override = 0) {
  Bytes b;
  put_le(&b, n_override ? n_override : header.size(), 8);
  append(&b, header);
  append(&b, data);
  return b;
}

struct ZipOptions {
  uint16_t method = 0;       // 8 = deflate, to test rejection
  bool zip64 = false;        // ZIP64 extra fields + ZIP64 end of central directory
  size_t align = 64;         // torch pads data to 64 bytes with a local extra field
};

// A "stored" zip archive like torch.save writes (data-descriptor-free for simplicity).
inline Bytes zip_bytes(const std::vector<std::pair<std::string, Bytes>>& entries, ZipOptions opt = {}) {
  Bytes out, cd;
  for (const auto& [name, data] : entries) {
    const uint64_t local = out.size();
    put_le(&out, 0x04034b50, 4);
    put_le(&out, 20, 2);
    put_le(&out, 0, 2);
    put_le(&out, opt.method, 2);
    put_le(&out, 0, 4);  // time, date
    put_le(&out, 0, 4);  // crc (not checked)
    put_le(&out, opt.zip64 ? 0xFFFFFFFF : data.size(), 4);
    put_le(&out, opt.zip64 ? 0xFFFFFFFF : data.size(), 4);
    put_le(&out, name.size(), 2);
    const size_t base = out.size() + 2 + name.size() + (opt.zip64 ? 20 : 0);
    size_t pad = opt.align ? (opt.align - (base + 4) % opt.align) % opt.align : 0;
    const size_t extra = (opt.zip64 ? 20 : 0) + (opt.align ? 4 + pad : 0);
    put_le(&out, extra, 2);
    append(&out, name);
    if (opt.zip64) {
      put_le(&out, 1, 2);
      put_le(&out, 16, 2);
      put_le(&out, data.size(), 8);
      put_le(&out, data.size(), 8);
    }
    if (opt.align) {
      put_le(&out, 0x4246, 2);  // "FB", torch's padding field
      put_le(&out, pad, 2);
      out.insert(out.end(), pad, 'Z');
    }
    append(&out, data);

    put_le(&cd, 0x02014b50, 4);
    put_le(&cd, 20, 2);
    put_le(&cd, 20, 2);
    put_le(&cd, 0, 2);
    put_le(&cd, opt.method, 2);
    put_le(&cd, 0, 4);
    put_le(&cd, 0, 4);
    put_le(&cd, opt.zip64 ? 0xFFFFFFFF : data.size(), 4);
    put_le(&cd, opt.zip64 ? 0xFFFFFFFF : data.size(), 4);
    put_le(&cd, name.size(), 2);
    put_le(&cd, opt.zip64 ? 28 : 0, 2);
    put_le(&cd, 0, 2);   // comment
    put_le(&cd, 0, 2);   // disk
    put_le(&cd, 0, 2);   // internal attributes
    put_le(&cd, 0, 4);   // external attributes
    put_le(&cd, opt.zip64 ? 0xFFFFFFFF : local, 4);
    append(&cd, name);
    if (opt.zip64) {
      put_le(&cd, 1, 2);
      put_le(&cd, 24, 2);
      put_le(&cd, data.size(), 8);
      put_le(&cd, data.size(), 8);
      put_le(&cd, local, 8);
    }
  }
  const uint64_t cd_offset = out.size();
  append(&out, cd);
  const uint64_t n = entries.size();
  if (opt.zip64) {
    const uint64_t eocd64 = out.size();
    put_le(&out, 0x06064b50, 4);
    put_le(&out, 44, 8);
    put_le(&out, 45, 2);
    put_le(&out, 45, 2);
    put_le(&out, 0, 4);
    put_le(&out, 0, 4);
    put_le(&out, n, 8);
    put_le(&out, n, 8);
    put_le(&out, cd.size(), 8);
    put_le(&out, cd_offset, 8);
    put_le(&out, 0x07064b50, 4);
    put_le(&out, 0, 4);
    put_le(&out, eocd64, 8);
    put_le(&out, 1, 4);
  }
  put_le(&out, 0x06054b50, 4);
  put_le(&out, 0, 2);
  put_le(&out, 0, 2);
  put_le(&out, opt.zip64 ? 0xFFFF : n, 2);
  put_le(&out, opt.zip64 ? 0xFFFF : n, 2);
  put_le(&out, opt.zip64 ? 0xFFFFFFFF : cd.size(), 4);
  put_le(&out, opt.zip64 ? 0xFFFFFFFF : cd_offset, 4);
  put_le(&out, 0, 2);
  return out;
}

// Pickle opcodes, appended one by one (protocol 2 spellings, as torch.save writes).
class Pickle {
 public:
  Pickle& op(uint8_t c) { b_.push_back(c); return *this; }
  Pickle& proto(uint8_t v = 2) { return op(0x80).op(v); }
  Pickle& mark() { return op('('); }
  Pickle& raw(const std::string& s) {
    append(&b_, s);
    return *this;
  }
  Pickle& str(const std::string& s) {
    op('X');
    put_le(&b_, s.size(), 4);
    append(&b_, s);
    return *this;
  }
  Pickle& global(const std::string& module, const std::string& name) {
    op('c');
    append(&b_, module + "\n" + name + "\n");
    return *this;
  }
  Pickle& integer(int64_t v) {
    if (v >= 0 && v < 256) return op('K').op(static_cast<uint8_t>(v));
    op(0x8a).op(8);
    put_le(&b_, static_cast<uint64_t>(v), 8);
    return *this;
  }
  Pickle& int_tuple(const std::vector<int64_t>& v) {
    mark();
    for (int64_t x : v) integer(x);
    return op('t');
  }
  // _rebuild_tensor_v2(('storage', torch.<type>, key, 'cpu', numel), offset, size, stride, False, {})
  Pickle& tensor(const std::string& storage_type, const std::string& key, int64_t numel, int64_t offset,
                 const std::vector<int64_t>& size, const std::vector<int64_t>& stride) {
    global("torch._utils", "_rebuild_tensor_v2");
    mark();
    mark().str("storage").global("torch", storage_type).str(key).str("cpu").integer(numel).op('t');
    op('Q');
    integer(offset).int_tuple(size).int_tuple(stride).op(0x89).op('}');
    op('t');
    return op('R');
  }
  Pickle& stop() { return op('.'); }
  const Bytes& bytes() const { return b_; }

 private:
  Bytes b_;
};

// A torch-style archive "archive/{data.pkl, data/<key>..., version}".
inline Bytes torch_archive(const Bytes& pickle, const std::vector<std::pair<std::string, Bytes>>& storages,
                           ZipOptions opt = {}) {
  std::vector<std::pair<std::string, Bytes>> entries;
  entries.emplace_back("archive/data.pkl", pickle);
  for (const auto& [key, data] : storages) entries.emplace_back("archive/data/" + key, data);
  entries.emplace_back("archive/version", Bytes{'3', '\n'});
  return zip_bytes(entries, opt);
}

}  // namespace moepp::testing_io
