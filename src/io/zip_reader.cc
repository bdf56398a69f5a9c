// ZIP central-directory reader (PKWARE APPNOTE 6.3): EOCD, ZIP64 EOCD + locator, central and
// local headers, ZIP64 extra fields. Only what torch.save (miniz) writes is accepted.
#include "io/zip_reader.h"

#include <string_view>

namespace moepp {
namespace {

constexpr uint32_t kLocalSig = 0x04034b50;
constexpr uint32_t kCentralSig = 0x02014b50;
constexpr uint32_t kEocdSig = 0x06054b50;
constexpr uint32_t kEocd64Sig = 0x06064b50;
constexpr uint32_t kEocd64LocatorSig = 0x07064b50;
constexpr size_t kEocdSize = 22, kEocd64Size = 56, kLocatorSize = 20;
constexpr size_t kCentralSize = 46, kLocalSize = 30;

uint64_t rd(const uint8_t* p, int n) {
  uint64_t v = 0;
  for (int i = n - 1; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

// Names are used to look up "<root>/data.pkl" and "<root>/data/<key>"; refuse anything a
// careless extractor could turn into a path outside the archive root.
bool is_safe_name(const std::string& name) {
  if (name.empty() || name[0] == '/' || name.find('\\') != std::string::npos ||
      name.find('\0') != std::string::npos || name.find(':') != std::string::npos)
    return false;
  size_t start = 0;
  while (start <= name.size()) {
    size_t end = name.find('/', start);
    if (end == std::string::npos) end = name.size();
    const std::string_view part(name.data() + start, end - start);
    if (part == ".." || part == ".") return false;
    start = end + 1;
  }
  return true;
}

const char* method_name(uint64_t m) {
  switch (m) {
    case 8: return " (deflate)";
    case 9: return " (deflate64)";
    case 12: return " (bzip2)";
    case 14: return " (lzma)";
    case 93: return " (zstd)";
    default: return "";
  }
}

}  // namespace

const ZipEntry* ZipReader::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &entries_[it->second];
}

Result<ZipReader> ZipReader::parse(const uint8_t* data, size_t size, const std::string& file_name) {
  const std::string f = file_name + ": zip";
  if (size < kEocdSize)
    return Status::Error(f + str_format(": file too small for a zip archive, expected at least %zu bytes, got %zu",
                                        kEocdSize, size));
  // The EOCD record ends the file; it may be followed only by its own comment.
  size_t eocd = SIZE_MAX;
  const size_t lowest = size - kEocdSize > 0xFFFF ? size - kEocdSize - 0xFFFF : 0;
  for (size_t pos = size - kEocdSize + 1; pos-- > lowest;) {
    if (rd(data + pos, 4) == kEocdSig && pos + kEocdSize + rd(data + pos + 20, 2) == size) {
      eocd = pos;
      break;
    }
  }
  if (eocd == SIZE_MAX)
    return Status::Error(f + ": end of central directory record not found, expected a zip archive "
                             "(torch.save >= 1.6 format)");
  const uint8_t* e = data + eocd;
  uint64_t disk = rd(e + 4, 2), cd_disk = rd(e + 6, 2), n_disk = rd(e + 8, 2), n_total = rd(e + 10, 2);
  uint64_t cd_size = rd(e + 12, 4), cd_offset = rd(e + 16, 4);
  size_t cd_limit = eocd;  // the central directory must end before the records that follow it
  if (eocd >= kLocatorSize && rd(data + eocd - kLocatorSize, 4) == kEocd64LocatorSig) {
    const uint8_t* loc = data + eocd - kLocatorSize;
    const uint64_t off64 = rd(loc + 8, 8);
    if (rd(loc + 4, 4) != 0 || rd(loc + 16, 4) > 1)
      return Status::Error(f + ": multi-disk zip64 archive, expected a single-file archive");
    if (off64 > eocd - kLocatorSize || eocd - kLocatorSize - off64 < kEocd64Size)
      return Status::Error(f + str_format(": zip64 end of central directory offset %llu out of range, "
                                          "expected <= %zu",
                                          static_cast<unsigned long long>(off64),
                                          eocd - kLocatorSize - kEocd64Size));
    const uint8_t* e64 = data + off64;
    if (rd(e64, 4) != kEocd64Sig)
      return Status::Error(f + str_format(": bad zip64 end of central directory signature at %llu",
                                          static_cast<unsigned long long>(off64)));
    disk = rd(e64 + 16, 4);
    cd_disk = rd(e64 + 20, 4);
    n_disk = rd(e64 + 24, 8);
    n_total = rd(e64 + 32, 8);
    cd_size = rd(e64 + 40, 8);
    cd_offset = rd(e64 + 48, 8);
    cd_limit = static_cast<size_t>(off64);
  }
  if (disk != 0 || cd_disk != 0 || n_disk != n_total)
    return Status::Error(f + ": multi-disk zip archive, expected a single-file archive");
  if (cd_offset > cd_limit || cd_size > cd_limit - cd_offset)
    return Status::Error(f + str_format(": central directory [%llu, +%llu) out of range, expected it "
                                        "to end by byte %zu",
                                        static_cast<unsigned long long>(cd_offset),
                                        static_cast<unsigned long long>(cd_size), cd_limit));
  if (n_total > cd_size / kCentralSize)
    return Status::Error(f + str_format(": central directory of %llu bytes cannot hold %llu entries",
                                        static_cast<unsigned long long>(cd_size),
                                        static_cast<unsigned long long>(n_total)));

  ZipReader z;
  z.data_ = data;
  z.size_ = size;
  z.file_name_ = file_name;
  z.entries_.reserve(static_cast<size_t>(n_total));
  size_t pos = static_cast<size_t>(cd_offset);
  const size_t cd_end = static_cast<size_t>(cd_offset + cd_size);
  for (uint64_t i = 0; i < n_total; ++i) {
    if (cd_end - pos < kCentralSize || rd(data + pos, 4) != kCentralSig)
      return Status::Error(f + str_format(": truncated or corrupt central directory at entry %llu (byte %zu)",
                                          static_cast<unsigned long long>(i), pos));
    const uint8_t* c = data + pos;
    const uint64_t flags = rd(c + 8, 2), method = rd(c + 10, 2);
    uint64_t csize = rd(c + 20, 4), usize = rd(c + 24, 4);
    const size_t name_len = rd(c + 28, 2), extra_len = rd(c + 30, 2), comment_len = rd(c + 32, 2);
    uint64_t start_disk = rd(c + 34, 2), local = rd(c + 42, 4);
    if (cd_end - pos - kCentralSize < name_len + extra_len + comment_len)
      return Status::Error(f + str_format(": central directory entry %llu runs past the directory",
                                          static_cast<unsigned long long>(i)));
    ZipEntry entry;
    entry.name.assign(reinterpret_cast<const char*>(c + kCentralSize), name_len);
    const std::string ef = f + ": entry '" + entry.name + "'";
    // ZIP64 extra field: 8-byte values for exactly the fields saturated in the fixed header.
    const uint8_t* x = c + kCentralSize + name_len;
    size_t xleft = extra_len;
    while (xleft >= 4) {
      const uint64_t id = rd(x, 2), len = rd(x + 2, 2);
      if (len > xleft - 4) return Status::Error(ef + ": extra field runs past its header");
      if (id == 0x0001) {
        const uint8_t* v = x + 4;
        size_t vleft = len;
        auto take = [&](uint64_t* field, int width) {
          if (vleft < static_cast<size_t>(width)) return false;
          *field = rd(v, width);
          v += width;
          vleft -= width;
          return true;
        };
        if ((usize == 0xFFFFFFFF && !take(&usize, 8)) || (csize == 0xFFFFFFFF && !take(&csize, 8)) ||
            (local == 0xFFFFFFFF && !take(&local, 8)) || (start_disk == 0xFFFF && !take(&start_disk, 4)))
          return Status::Error(ef + ": zip64 extra field too short for the saturated fields");
      }
      x += 4 + len;
      xleft -= 4 + len;
    }
    pos += kCentralSize + name_len + extra_len + comment_len;

    if (!is_safe_name(entry.name))
      return Status::Error(ef + ": unsafe entry name, expected a relative path without '..', '.', "
                                "'\\' or ':' components");
    if (flags & 1) return Status::Error(ef + ": encrypted entry, expected a plain stored entry");
    if (method != 0)
      return Status::Error(ef + str_format(": unsupported compression method %llu%s, expected 0 (stored) "
                                           "as torch.save writes",
                                           static_cast<unsigned long long>(method), method_name(method)));
    if (csize != usize)
      return Status::Error(ef + str_format(": stored entry with compressed size %llu != size %llu",
                                           static_cast<unsigned long long>(csize),
                                           static_cast<unsigned long long>(usize)));
    if (start_disk != 0) return Status::Error(ef + ": entry on another disk, expected disk 0");
    // The local header repeats the name and carries its own extra field (torch pads data to
    // 64-byte alignment there), so the data offset comes from it.
    if (local > cd_offset || cd_offset - local < kLocalSize)
      return Status::Error(ef + str_format(": local header offset %llu out of range, expected < %llu",
                                           static_cast<unsigned long long>(local),
                                           static_cast<unsigned long long>(cd_offset - kLocalSize)));
    const uint8_t* l = data + local;
    if (rd(l, 4) != kLocalSig)
      return Status::Error(ef + str_format(": bad local header signature at byte %llu",
                                           static_cast<unsigned long long>(local)));
    const uint64_t lmethod = rd(l + 8, 2), lname = rd(l + 26, 2), lextra = rd(l + 28, 2);
    const uint64_t data_off = local + kLocalSize + lname + lextra;
    if (data_off > cd_offset || usize > cd_offset - data_off)
      return Status::Error(ef + str_format(": data [%llu, +%llu) out of range, expected it to end "
                                           "before the central directory at %llu",
                                           static_cast<unsigned long long>(data_off),
                                           static_cast<unsigned long long>(usize),
                                           static_cast<unsigned long long>(cd_offset)));
    if (lname != name_len || std::string_view(reinterpret_cast<const char*>(l + kLocalSize), lname) !=
                                 std::string_view(entry.name))
      return Status::Error(ef + ": local header name differs from the central directory");
    if (lmethod != 0)
      return Status::Error(ef + str_format(": local header compression method %llu, expected 0 (stored)",
                                           static_cast<unsigned long long>(lmethod)));
    entry.data_offset = data_off;
    entry.size = usize;
    if (!z.index_.emplace(entry.name, z.entries_.size()).second)
      return Status::Error(ef + ": duplicate entry name");
    z.entries_.push_back(std::move(entry));
  }
  return z;
}

}  // namespace moepp
