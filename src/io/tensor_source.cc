// TensorSource: the named-entry table shared by every checkpoint reader, and the memory behind it.
#include "io/tensor_source.h"

namespace moepp {

Status TensorSource::add(TensorEntry entry) {
  if (index_.count(entry.name) != 0) {
    const TensorEntry& first = entries_[index_.at(entry.name)];
    return Status::Error(entry.file + ": duplicate tensor '" + entry.name +
                         "', expected each name once, got it again (first in " + first.file + ")");
  }
  index_.emplace(entry.name, entries_.size());
  entries_.push_back(std::move(entry));
  return Status::Ok();
}

const uint8_t* TensorSource::own(std::vector<uint8_t> bytes) {
  // A unique_ptr per buffer keeps earlier data pointers valid when owned_ grows.
  owned_.push_back(std::make_unique<std::vector<uint8_t>>(std::move(bytes)));
  return owned_.back()->data();
}

Status TensorSource::merge(TensorSource&& other) {
  // Check every name first so a failed merge leaves *this unchanged.
  for (const TensorEntry& e : other.entries_) {
    if (index_.count(e.name) != 0) {
      const TensorEntry& first = entries_[index_.at(e.name)];
      return Status::Error(e.file + ": duplicate tensor '" + e.name +
                           "', expected each name in one file only, got it also in " + first.file);
    }
  }
  for (TensorEntry& e : other.entries_) {
    index_.emplace(e.name, entries_.size());
    entries_.push_back(std::move(e));
  }
  for (auto& f : other.files_) files_.push_back(std::move(f));
  for (auto& b : other.owned_) owned_.push_back(std::move(b));
  if (format_.empty()) format_ = other.format_;
  other.entries_.clear();
  other.index_.clear();
  other.files_.clear();
  other.owned_.clear();
  return Status::Ok();
}

}  // namespace moepp
